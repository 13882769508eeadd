"""Cut a frame range out of a video into a browser-safe MP4, with its audio in sync.

Two encoders are here. :func:`cut_frames` (PyAV, the one the pipeline uses) decodes exactly the frames
``first..last`` (seeking to the nearest keyframe, no full decode), optionally passes each through an
annotation hook, encodes H.264 yuv420p + AAC with ``+faststart``, and re-encodes the audio from the exact
sample under the first frame. :func:`cut_seconds_moviepy` is the MoviePy route, kept for the benchmark
(``benchmarks/pipeline.py``) that decided between them: MoviePy pipes raw frames through an ffmpeg
subprocess, cuts by time rather than by frame, and writes a temporary audio file.

Annotated clips are produced by cutting the *source* with the same annotation hook that draws the full
annotated video, rather than by re-decoding ``annotated.mp4``: the pixels are the same annotated frames,
one lossy generation fewer, and no extra decode of the big file.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from stchat.errors import VideoError
from stchat.video.audio import audio_format, iter_audio
from stchat.video.io import VideoInfo, frame_times, iter_frames, probe
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
    """Encode source frames ``first..last`` (inclusive) to ``out``.

    ``origin_s`` is the file-clock time that becomes 0 in the output; by default the first frame's time.
    Passing 0.0 for a whole-video render keeps a stream that starts late (video at 0.033 s, audio at 0)
    exactly as offset as in the source.
    """
    info = probe(src)
    times = frame_times(src)
    n = len(times)
    if not (0 <= first <= last < n):
        raise VideoError(f"frame range [{first}, {last}] is outside the video's {n} frames")
    start_s = float(times[first])
    end_s = frame_end_time(times, info, last)
    origin = start_s if origin_s is None else min(origin_s, start_s)
    fmt = audio_format(src) if (audio and info.has_audio) else None
    blocks = iter_audio(src, origin, end_s, fmt) if fmt is not None else iter(())
    audio_done = 0
    writer: Mp4Writer | None = None
    total = last - first + 1
    try:
        frames = iter_frames(src, range(first, last + 1), rotation=info.rotation, fast_rgb=True)
        for k, (i, rgb) in enumerate(frames):
            t = float(times[i])
            frame = annotate(i, t, rgb) if annotate is not None else rgb
            if writer is None:
                writer = Mp4Writer(out, frame.shape[1], frame.shape[0], info.fps, TIME_BASE, fmt, crf, preset)
            writer.write_frame(frame, round((t - origin) / TIME_BASE))
            if fmt is not None:  # keep audio about half a second ahead of video: a well interleaved file
                want = math.ceil((t - origin + _AUDIO_LEAD_S) * fmt.sample_rate)
                while audio_done < want:
                    block = next(blocks, None)
                    if block is None:
                        break
                    writer.write_audio(block)
                    audio_done += block.shape[1]
            if progress is not None and (k % 10 == 0 or k == total - 1):
                progress((k + 1) / total)
        if writer is None:
            raise VideoError(f"{Path(src).name}: no frame could be decoded in [{first}, {last}]")
        for block in blocks:
            writer.write_audio(block)
        writer.close()
    except BaseException:
        if writer is not None:
            try:
                writer.__exit__(RuntimeError, None, None)
            finally:
                Path(out).unlink(missing_ok=True)
        raise
    return ClipResult(Path(out), first, last, start_s, end_s, fmt is not None)


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
