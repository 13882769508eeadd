"""Cut a frame range out of a video into a browser-safe MP4, with its audio in sync.

Two encoders are here. :func:`cut_frames` (PyAV, the one the pipeline uses) decodes exactly the frames
``first..last`` (seeking to the nearest keyframe, no full decode), optionally passes each through an
annotation hook, encodes H.264 yuv420p with ``+faststart``, and copies the segment's AAC/MP3 audio
packets (re-encoding to AAC from the exact sample under the first frame only when copying is impossible;
see :mod:`stchat.video.audio` for the packet-boundary rule). :func:`cut_seconds_moviepy` is the MoviePy
route, kept for the benchmark (``benchmarks/pipeline.py``) that decided between them: MoviePy pipes raw
frames through an ffmpeg subprocess, cuts by time rather than by frame, and writes a temporary audio file.

Annotated clips are produced from the *source* with the same annotation hook that draws the full
annotated video, rather than by re-decoding ``annotated.mp4``: one lossy generation fewer. When both are
wanted, :func:`encode_ranges` makes them in one decode pass, each frame drawn once and handed to both
encoders; frames stay in the decoder's yuv420p throughout (no YUV -> RGB -> YUV round trip).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from stchat.errors import VideoError
from stchat.render import YuvPlanes
from stchat.video.audio import AudioPackets, audio_format, can_copy_audio, iter_audio
from stchat.video.info import VideoInfo
from stchat.video.io import frame_rgb, frame_times, iter_video_frames, probe
from stchat.video.writer import Mp4Writer

# (frame index, time on the file clock, RGB frame) -> RGB frame to encode (may be a different size).
FrameHook = Callable[[int, float, np.ndarray], np.ndarray]
Progress = Callable[[float], None]

# 90 kHz is the MPEG clock: it holds 25, 30 and 30000/1001 fps frame times exactly.
TIME_BASE = Fraction(1, 90000)
_AUDIO_LEAD_S = 0.5  # how far audio may run ahead of video in the mux, for interleaving


@dataclass(frozen=True)
class ClipResult:
    path: Path
    first_frame: int
    last_frame: int
    start_s: float  # file-clock time of the first frame
    end_s: float  # file-clock time where the last frame stops showing
    has_audio: bool

    @property
    def n_frames(self) -> int:
        return self.last_frame - self.first_frame + 1

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


def frame_end_time(times: np.ndarray, info: VideoInfo, frame: int) -> float:
    """When frame ``frame`` stops showing: the next frame's time, or one nominal frame after the last."""
    if frame + 1 < len(times):
        return float(times[frame + 1])
    return float(times[frame]) + float(1 / info.fps)


def seconds_to_frames(times: np.ndarray, start_s: float, end_s: float) -> tuple[int, int]:
    """Frames whose presentation time lies in ``[start_s, end_s)`` (half a millisecond of slack)."""
    eps = 5e-4
    first = int(np.searchsorted(times, start_s - eps, side="left"))
    last = int(np.searchsorted(times, end_s - eps, side="left")) - 1
    if first >= len(times) or last < first:
        raise VideoError(f"no frame lies in [{start_s:.3f}, {end_s:.3f}) s")
    return first, last


@dataclass(frozen=True)
class ClipSpec:
    """One output of an encoding pass: source frames ``first..last`` (inclusive) into ``path``.

    ``origin_s`` is the file-clock time that becomes 0 in the output; by default the first frame's time.
    Passing 0.0 for a whole-video render keeps a stream that starts late (video at 0.033 s, audio at 0)
    exactly as offset as in the source.
    """

    path: Path
    first: int
    last: int
    origin_s: float | None = None


@dataclass
class _Output:
    spec: ClipSpec
    start_s: float
    end_s: float
    origin: float
    blocks: Iterator[np.ndarray]
    packets: AudioPackets | None = None  # copied audio (then ``blocks`` is empty)
    audio_done: int = 0
    writer: Mp4Writer | None = None

    def close_audio(self) -> None:
        if self.packets is not None:
            self.packets.close()


def _planes(frame: av.VideoFrame) -> YuvPlanes:
    """Writable numpy views of a yuv420p frame's planes (no copy)."""
    views = []
    for plane in frame.planes:
        arr = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        views.append(arr[:, : plane.width])
    return views[0], views[1], views[2]


def _yuv_ok(frame: av.VideoFrame, rotation: int, annotate: FrameHook | None) -> bool:
    """Can this frame be drawn and encoded in its own yuv420p, skipping RGB altogether?"""
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2 or rotation:
        return False
    if annotate is None:
        return True
    supports = getattr(annotate, "supports_yuv", None)
    return bool(supports is not None and supports())


def encode_ranges(
    src: str | Path,
    specs: Sequence[ClipSpec],
    annotate: FrameHook | None = None,
    audio: bool = True,
    crf: int = 20,
    preset: str = "superfast",
    progress: Progress | None = None,
) -> list[ClipResult]:
    """Encode every spec's frame range from ONE decode of the source (each frame drawn once).

    The full annotated video and the clip share this pass: a frame inside the clip is drawn once and
    handed to both encoders. Frames stay in the decoder's yuv420p when the annotator can draw there
    (:meth:`stchat.render.Renderer.render_yuv`); without an annotator the decoded picture goes to the
    encoder untouched. Anything else (rotation, 10-bit, odd sizes) takes the RGB path.
    """
    info = probe(src)
    times = frame_times(src)
    n = len(times)
    if not specs:
        raise VideoError("nothing to encode")
    for spec in specs:
        if not (0 <= spec.first <= spec.last < n):
            raise VideoError(f"frame range [{spec.first}, {spec.last}] is outside the video's {n} frames")
    copy = audio and info.has_audio and can_copy_audio(src)
    fmt = audio_format(src) if (audio and info.has_audio and not copy) else None
    outputs: list[_Output] = []
    for spec in specs:
        start_s = float(times[spec.first])
        end_s = frame_end_time(times, info, spec.last)
        origin = start_s if spec.origin_s is None else min(spec.origin_s, start_s)
        blocks = iter_audio(src, origin, end_s, fmt) if fmt is not None else iter(())
        packets = AudioPackets(src, start_s, end_s, origin) if copy else None
        outputs.append(_Output(spec, start_s, end_s, origin, blocks, packets))
    lo = min(s.first for s in specs)
    hi = max(s.last for s in specs)
    total = hi - lo + 1
    try:
        for k, (i, frame) in enumerate(iter_video_frames(src, range(lo, hi + 1))):
            active = [o for o in outputs if o.spec.first <= i <= o.spec.last]
            if not active:
                continue
            t = float(times[i])
            if _yuv_ok(frame, info.rotation, annotate):
                if annotate is None:
                    out_frame = frame
                else:
                    w, h = annotate.canvas_size(frame.width, frame.height)  # type: ignore[attr-defined]
                    out_frame = av.VideoFrame(w, h, "yuv420p")
                    annotate.render_yuv(_planes(frame), _planes(out_frame), i, t)  # type: ignore[attr-defined]
                rgb = None
            else:
                rgb = frame_rgb(frame, info.rotation, fast=True)
                rgb = annotate(i, t, rgb) if annotate is not None else rgb
                out_frame = None
            for o in active:
                pts = round((t - o.origin) / TIME_BASE)
                if o.writer is None:
                    shape = rgb.shape if rgb is not None else (out_frame.height, out_frame.width)
                    w, h = shape[1], shape[0]
                    template = o.packets.stream if o.packets is not None else None
                    o.writer = Mp4Writer(o.spec.path, w, h, info.fps, TIME_BASE, fmt, crf, preset, template)
                if rgb is None:
                    o.writer.write_video_frame(out_frame, pts)
                else:
                    o.writer.write_frame(rgb, pts)
                if o.packets is not None:  # audio about half a second ahead of video: a well interleaved file
                    for packet in o.packets.until(t - o.origin + _AUDIO_LEAD_S):
                        o.writer.write_audio_packet(packet)
                elif fmt is not None:
                    want = math.ceil((t - o.origin + _AUDIO_LEAD_S) * fmt.sample_rate)
                    while o.audio_done < want:
                        block = next(o.blocks, None)
                        if block is None:
                            break
                        o.writer.write_audio(block)
                        o.audio_done += block.shape[1]
            if progress is not None and (k % 10 == 0 or k == total - 1):
                progress((k + 1) / total)
        for o in outputs:
            if o.writer is None:
                raise VideoError(
                    f"{Path(src).name}: no frame could be decoded in [{o.spec.first}, {o.spec.last}]"
                )
            for block in o.blocks:
                o.writer.write_audio(block)
            if o.packets is not None:
                for packet in o.packets.until(None):
                    o.writer.write_audio_packet(packet)
            o.writer.close()
    except BaseException:
        for o in outputs:
            if o.writer is not None:
                try:
                    o.writer.__exit__(RuntimeError, None, None)
                finally:
                    Path(o.spec.path).unlink(missing_ok=True)
        raise
    finally:
        for o in outputs:
            o.close_audio()
    has_audio = fmt is not None or copy
    return [
        ClipResult(Path(o.spec.path), o.spec.first, o.spec.last, o.start_s, o.end_s, has_audio)
        for o in outputs
    ]


def cut_frames(
    src: str | Path,
    out: str | Path,
    first: int,
    last: int,
    annotate: FrameHook | None = None,
    audio: bool = True,
    origin_s: float | None = None,
    crf: int = 20,
    preset: str = "superfast",
    progress: Progress | None = None,
) -> ClipResult:
    """Encode source frames ``first..last`` (inclusive) to ``out`` (see :class:`ClipSpec`)."""
    spec = ClipSpec(Path(out), first, last, origin_s)
    return encode_ranges(src, [spec], annotate, audio, crf, preset, progress)[0]


def cut_seconds(
    src: str | Path, out: str | Path, start_s: float, end_s: float, **kwargs: object
) -> ClipResult:
    """Cut the frames shown in ``[start_s, end_s)`` (file clock) with :func:`cut_frames`."""
    first, last = seconds_to_frames(frame_times(src), start_s, end_s)
    return cut_frames(src, out, first, last, **kwargs)  # type: ignore[arg-type]


def cut_seconds_moviepy(
    src: str | Path, out: str | Path, start_s: float, end_s: float, crf: int = 20, preset: str = "veryfast"
) -> Path:
    """The MoviePy route for the same cut (benchmark comparison; time-based, through an ffmpeg pipe)."""
    from moviepy import VideoFileClip  # imported here: slow to import and only the benchmark needs it

    out = Path(out)
    with VideoFileClip(str(src)) as clip:
        sub = clip.subclipped(start_s, end_s)
        sub.write_videofile(
            str(out),
            codec="libx264",
            audio_codec="aac" if clip.audio is not None else None,
            audio=clip.audio is not None,
            preset=preset,
            ffmpeg_params=["-crf", str(crf), "-pix_fmt", "yuv420p", "-movflags", "+faststart"],
            temp_audiofile=str(out.with_suffix(".tmp-audio.m4a")),
            logger=None,
        )
    return out
