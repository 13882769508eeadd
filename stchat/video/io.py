"""Video probing and frame-accurate reading with PyAV (FFmpeg), in displayed orientation.

Frame index ``i`` means the ``i``-th frame in presentation order among the frames the demuxer delivers --
the same numbering decord (the official reader, docs/official_quirks.md#frame-sampling) uses. Its time is the
frame's own
presentation timestamp, measured on the *file clock* (seconds from the container's start, which is what a
player shows), so it is exact for variable frame rates and for streams that start late (two official
demo clips start their video at 0.033 s while their audio starts at 0).

Reading is frame-accurate *and* avoids decoding what is not needed: the packet index (one demux pass, no
decoding) gives every frame's timestamp and the keyframes; to reach a frame we seek to the last keyframe
at or before it and decode forward, comparing decoded timestamps with the wanted one. A seek that lands
late (a broken index) falls back to decoding from the start, so exactness never depends on the index.

Deviation from the official code, on purpose: rotation metadata is applied (decord ignores it), so the
model, the boxes and the renderer all see the frame as players display it. None of the official clips
carries rotation, so this changes nothing for them.
"""

from __future__ import annotations

import bisect
import functools
import os
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av

from stchat.errors import VideoError
from stchat.video.facts import DEFAULT_LIMITS, VideoLimits
from stchat.video.facts import check_file as _check_file
from stchat.video.facts import check_limits as _check_limits
from stchat.video.facts import fail as _fail
from stchat.video.info import VideoInfo

if TYPE_CHECKING:
    import numpy as np

# Demuxers FFmpeg uses for still images: a renamed photo opens "fine" as a one-frame stream.
_IMAGE_FORMATS = {"image2", "mjpeg", "apng", "webp"}


# How far a container's duration may run past the last video frame before we stop believing it
# (audio legitimately runs a little past the video in many files).
_HEADER_SLACK_S = 2.0

# Read on instead of seeking when the next keyframe is at most this many frames ahead: the packets in
# between are demuxed but not decoded, which is cheaper than a seek (that flushes the decoder threads).
_RESUME_FRAMES = 150


@dataclass(frozen=True)
class _Index:
    """The demuxed packet index of the video stream (no decoding)."""

    # Plain tuples, not numpy: ``stchat probe`` never imports numpy (a third of its start-up time).
    pts: tuple[int, ...]  # presentation order, stream time base
    key_pts: tuple[int, ...]  # sorted pts of keyframes
    key_dts: tuple[int, ...]  # dts of the same keyframes
    time_base: Fraction
    clock_origin: Fraction  # container start in seconds: frame time = pts * tb - origin
    seekable: bool  # False: timestamps missing/duplicated, read by counting decoded frames
    declared_frames: int  # what the header says (0: it does not say)
    damaged: bool  # packets were missing, cut off or unreadable


def _ffmpeg_reason(exc: BaseException) -> str:
    msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(msg).split())


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise _fail(path, f"not a readable video ({_ffmpeg_reason(exc)})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(path, f"cannot open ({_ffmpeg_reason(exc)})") from None


def _video_stream(path: Path, container: av.container.InputContainer) -> av.VideoStream:
    fmt = container.format.name
    if fmt in _IMAGE_FORMATS or fmt.endswith("_pipe"):
        raise _fail(path, f"is an image ({fmt.removesuffix('_pipe')}), not a video")
    if not container.streams.video:
        what = "audio only" if container.streams.audio else "no streams"
        raise _fail(path, f"has no video stream ({what})")
    return container.streams.video[0]


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=32)
def _index_cached(key: tuple[str, int, int]) -> _Index:
    path = Path(key[0])
    with _open(path) as container:
        vs = _video_stream(path, container)
        tb = vs.time_base or Fraction(1, 90000)
        pts: list[int | None] = []
        keys: list[tuple[int, int]] = []
        declared = vs.frames or 0
        truncated = False
        try:
            for packet in container.demux(vs):
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.is_corrupt:  # cut off by the end of a truncated file: not decodable
                    truncated = True
                    continue
                pts.append(packet.pts)
                if packet.is_keyframe and packet.pts is not None:
                    keys.append((packet.pts, packet.dts if packet.dts is not None else packet.pts))
        except av.FFmpegError:
            truncated = True  # a damaged tail: keep the packets read so far
        origin = Fraction(container.start_time or 0, 1_000_000)
    if not pts:
        raise _fail(path, "has no video frames")
    seekable = None not in pts and len(set(pts)) == len(pts) and bool(keys)
    arr: list[int] = sorted(p for p in pts if p is not None) if seekable else []
    if not seekable:
        arr = _decoded_pts(path)
    elif truncated or len(arr) < declared:
        arr = _contiguous_prefix(arr)
    keys.sort()
    return _Index(
        pts=tuple(arr),
        key_pts=tuple(k[0] for k in keys),
        key_dts=tuple(k[1] for k in keys),
        time_base=Fraction(tb),
        clock_origin=origin,
        seekable=seekable,
        declared_frames=declared,
        damaged=truncated or (declared > 0 and len(arr) < declared),
    )


def _contiguous_prefix(pts: list[int]) -> list[int]:
    """For a cut-off file: the frames before the first hole in display order.

    Packets arrive in decode order, so a file cut mid-GOP holds a late P frame whose preceding B frames
    are gone; counting it would renumber every frame after the hole. We stop at the hole instead.
    """
    if len(pts) < 3:
        return pts
    diffs = [b - a for a, b in zip(pts, pts[1:], strict=False)]
    step = statistics.median(diffs)
    gap = next((i for i, d in enumerate(diffs) if d > 1.5 * step), None)
    return pts[: gap + 1] if gap is not None else pts


def _decoded_pts(path: Path) -> list[int]:
    """Timestamps of every decoded frame, for files whose packets lack usable pts (some AVI, raw streams)."""
    out: list[int] = []
    with _open(path) as container:
        vs = container.streams.video[0]
        step = 1
        if vs.average_rate and vs.time_base:
            step = max(1, round(1 / (vs.average_rate * vs.time_base)))
        try:
            for frame in container.decode(vs):
                ts = frame.pts if frame.pts is not None else (out[-1] + step if out else 0)
                out.append(ts if not out or ts > out[-1] else out[-1] + step)
        except av.FFmpegError:
            pass
    if not out:
        raise _fail(path, "no video frame could be decoded")
    return out


def _index(path: Path) -> _Index:
    try:
        return _index_cached(_file_key(path))
    except VideoError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _fail(path, f"cannot read video ({_ffmpeg_reason(exc)})") from None


def _seconds(idx: _Index) -> list[float]:
    # pts * tb - origin as one integer fraction: int / int is correctly rounded, so this equals
    # float(Fraction) exactly, without building a Fraction per frame (10x faster on long videos).
    tb, origin = idx.time_base, idx.clock_origin
    num = tb.numerator * origin.denominator
    off = origin.numerator * tb.denominator
    den = tb.denominator * origin.denominator
    return [(p * num - off) / den for p in idx.pts]


def _frame_seconds(idx: _Index) -> np.ndarray:
    import numpy as np  # lazily: probing does without it

    return np.array(_seconds(idx), dtype=np.float64)


def _normalise_rotation(deg: float) -> int:
    """PyAV reports the display matrix angle counter-clockwise; we store the clockwise turn, 0..270."""
    return int(round(-deg / 90.0)) * 90 % 360


def _apply_rotation(rgb: np.ndarray, rotation: int) -> np.ndarray:
    if rotation == 0:
        return rgb
    import numpy as np  # lazily: probing does without it

    # np.rot90 turns counter-clockwise for positive k; a clockwise turn of r degrees is k = -r/90.
    return np.ascontiguousarray(np.rot90(rgb, k=-(rotation // 90)))


def probe(path: str | os.PathLike[str], limits: VideoLimits = DEFAULT_LIMITS) -> VideoInfo:
    """Read a video's facts (decodes one frame to prove the stream is decodable and find its rotation)."""
    p = Path(path)
    _check_file(p, limits)
    idx = _index(p)
    with _open(p) as container:
        vs = _video_stream(p, container)
        cc = vs.codec_context
        try:
            first = next(container.decode(vs), None)
        except av.FFmpegError as exc:
            raise _fail(p, f"video cannot be decoded ({_ffmpeg_reason(exc)})") from None
        if first is None:
            raise _fail(p, "no video frame could be decoded")
        rotation = _normalise_rotation(getattr(first, "rotation", 0) or 0)
        coded_w, coded_h = first.width, first.height
        audio = container.streams.audio[0] if container.streams.audio else None
        sar = vs.sample_aspect_ratio
        container_duration = container.duration
        codec_name = cc.name
        avg_rate = vs.average_rate
        fmt = container.format.name
    times = _seconds(idx)
    n = len(times)
    diffs = [b - a for a, b in zip(times, times[1:], strict=False)]
    vfr = bool(diffs and (max(diffs) - min(diffs)) > 0.002)
    if avg_rate:
        fps = Fraction(avg_rate)
    elif n > 1 and times[-1] > times[0]:
        fps = Fraction((n - 1) / (times[-1] - times[0])).limit_denominator(1001)
    else:
        fps = Fraction(1)
    frame_dur = float(1 / fps) if fps else 0.0
    video_end = float(times[-1]) + frame_dur
    declared_s = container_duration / 1_000_000 if container_duration else None
    duration = declared_s if declared_s is not None else video_end
    truncated = idx.damaged
    if duration > video_end + max(_HEADER_SLACK_S, 0.01 * video_end):
        # The header claims far more than the frames hold (a forged or stale duration field, a cut-off
        # download): the frames are the truth. Otherwise a 2 s clip "lasting" 5 h would be refused by
        # the duration limit and drawn as a sliver on the timeline.
        duration = video_end
        truncated = True
    elif truncated:
        duration = min(duration, video_end)  # a damaged file lasts as long as what can be read of it
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    info = VideoInfo(
        path=os.fspath(path),  # as given (quickprobe reports it without importing pathlib)
        container=fmt,
        video_codec=codec_name,
        duration_s=round(float(duration), 6),
        fps=fps,
        fps_float=round(float(fps), 6),
        frame_count=n,
        width=width,
        height=height,
        coded_width=coded_w,
        coded_height=coded_h,
        rotation=rotation,
        has_audio=audio is not None,
        audio_codec=audio.codec_context.name if audio is not None else None,
        audio_sample_rate=audio.rate if audio is not None else None,
        audio_channels=audio.channels if audio is not None else None,
        start_time_s=round(float(times[0]), 6),
        vfr=vfr,
        sample_aspect_ratio=Fraction(sar) if sar else None,
        declared_duration_s=None if declared_s is None else round(float(declared_s), 6),
        declared_frame_count=idx.declared_frames or None,
        truncated=truncated,
    )
    _check_limits(p, info.duration_s, info.width, info.height, info.frame_count, limits)
    return info


def frame_times(path: str | os.PathLike[str], limits: VideoLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Presentation time (seconds on the file clock) of every frame index; exact for VFR too."""
    p = Path(path)
    _check_file(p, limits)
    return _frame_seconds(_index(p))


def iter_video_frames(
    path: str | os.PathLike[str], indices: Sequence[int], limits: VideoLimits = DEFAULT_LIMITS
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield ``(index, decoded frame)`` for the wanted indices in increasing order, unconverted.

    The frame is the decoder's own picture (usually yuv420p, not yet rotated): the renderer draws and
    encodes it without a round trip through RGB.
    """
    p = Path(path)
    _check_file(p, limits)
    idx = _index(p)
    n = len(idx.pts)
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        return
    if wanted[0] < 0 or wanted[-1] >= n:
        bad = wanted[0] if wanted[0] < 0 else wanted[-1]
        raise _fail(p, f"frame {bad} is out of range (the video has {n} frames)")
    decoder = _SeekingDecoder(p, idx, wanted) if idx.seekable else _CountingDecoder(p)
    with decoder:
        for i in wanted:
            yield i, decoder.get(i)


def iter_frames(
    path: str | os.PathLike[str],
    indices: Sequence[int],
    rotation: int | None = None,
    limits: VideoLimits = DEFAULT_LIMITS,
    fast_rgb: bool = False,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, rgb)`` for the wanted frame indices in increasing order (duplicates once).

    ``fast_rgb`` converts yuv420p with OpenCV instead of swscale: about twice as fast, within a level or
    two. Fine for drawing; frames for the model keep swscale's conversion (what decord uses).
    """
    if rotation is None:
        rotation = probe(path, limits).rotation
    for i, frame in iter_video_frames(path, indices, limits):
        yield i, frame_rgb(frame, rotation, fast_rgb)


def frame_rgb(frame: av.VideoFrame, rotation: int = 0, fast: bool = False) -> np.ndarray:
    """A decoded frame as displayed RGB (``fast``: OpenCV's conversion, see :func:`iter_frames`)."""
    rgb = _fast_rgb(frame) if fast else None
    if rgb is None:
        rgb = frame.to_ndarray(format="rgb24")
    return _apply_rotation(rgb, rotation)


def _fast_rgb(frame: av.VideoFrame) -> np.ndarray | None:
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2:
        return None
    import cv2  # lazily: probing (``stchat probe``) should not pay OpenCV's import

    return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)


def read_frames(
    path: str | os.PathLike[str], indices: Sequence[int], limits: VideoLimits = DEFAULT_LIMITS
) -> np.ndarray:
    """Frames at ``indices`` (any order, repeats allowed): ``(T, H, W, 3)`` uint8 RGB, as displayed."""
    order = [int(i) for i in indices]
    if not order:
        raise _fail(Path(path), "no frame indices requested")
    slots: dict[int, list[int]] = {}
    for pos, i in enumerate(order):
        slots.setdefault(i, []).append(pos)
    import numpy as np  # lazily: probing does without it

    out: np.ndarray | None = None
    # Fill one preallocated array: stacking 100 separate 720p frames afterwards costs a second copy.
    for i, rgb in iter_frames(path, order, limits=limits):
        if out is None:
            out = np.empty((len(order), *rgb.shape), dtype=np.uint8)
        out[slots[i]] = rgb
    assert out is not None
    return out


class _SeekingDecoder:
    """Decode forward from the last keyframe at or before each wanted frame, matched on exact pts.

    Consecutive wanted frames in one GOP are read in one forward pass; only a wanted frame past the next
    keyframe triggers a seek. Three things keep the work near the minimum (the pixels never change):

    * the seek aims at the keyframe's *pts*. MP4's index holds presentation-shifted timestamps, so aiming
      at the keyframe's dts (which B-frames put before its pts) lands one GOP early on most seeks;
    * packets that are not wanted are sent with ``skip_frame = NONREF``: the decoder drops them if no
      other frame references them (most B-frames), and decodes them as usual otherwise. A dropped frame
      is by definition never used by another, so every decoded picture is bit-identical;
    * reading on to a wanted frame a few GOPs ahead, the packets before its keyframe are not sent to the
      decoder at all -- what a seek would skip, without the seek's decoder flush;
    * FFmpeg's frame threads (``thread_type = AUTO``) decode several frames at once.
    """

    def __init__(self, path: Path, idx: _Index, wanted: Sequence[int] = ()) -> None:
        self._path = path
        self._idx = idx
        self._container = _open(path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        threads = _decode_threads()
        if threads:
            self._stream.codec_context.thread_count = threads
        self._ctx = self._stream.codec_context
        self._skip_ok = _skip_nonref_ok(self._ctx.name)
        self._wanted_pts = {int(idx.pts[i]) for i in wanted}
        self._skip_mode = "DEFAULT"
        self._frames: Iterator[av.VideoFrame] | None = None
        self._last_pts: int | None = None  # pts of the last frame the decoder produced
        self._sent_key: int | None = None  # pts of the last keyframe packet sent to the decoder
        self._drop_until: int | None = None  # send nothing until the keyframe packet with this pts
        self.decoded = 0  # frames the decoder produced (for the benchmark and tests)

    def __enter__(self) -> _SeekingDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.close()

    def _set_skip(self, mode: str) -> None:
        if mode != self._skip_mode:
            self._ctx.skip_frame = mode
            self._skip_mode = mode

    def _decode_packets(self) -> Iterator[av.VideoFrame]:
        for packet in self._container.demux(self._stream):
            pts = packet.pts
            if packet.is_keyframe and pts is not None:
                if self._drop_until is not None and pts >= self._drop_until:
                    self._drop_until = None
                self._sent_key = pts
            if (self._drop_until is not None or packet.is_corrupt) and packet.size:
                continue  # not needed; or cut off by a truncated file's end (it would fail the decoder)
            if self._skip_ok:
                self._set_skip("NONREF" if pts is not None and pts not in self._wanted_pts else "DEFAULT")
            for frame in self._ctx.decode(packet):
                self.decoded += 1
                yield frame

    def _seek(self, key_pos: int) -> None:
        if key_pos < 0:
            self._container.seek(0, stream=self._stream, backward=True, any_frame=False)
        else:
            target = int(self._idx.key_pts[key_pos])
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._decode_packets()
        self._last_pts = None
        self._sent_key = None
        self._drop_until = None

    def _near(self, last_pts: int, key_pts: int) -> bool:
        """Decoding on to a keyframe a few frames ahead beats a seek (which flushes the decoder threads)."""
        pts = self._idx.pts
        gap = bisect.bisect_left(pts, key_pts) - bisect.bisect_left(pts, last_pts)
        return gap <= _RESUME_FRAMES

    def get(self, i: int) -> av.VideoFrame:
        target = int(self._idx.pts[i])
        self._wanted_pts.add(target)
        key_pos = bisect.bisect_right(self._idx.key_pts, target) - 1
        key_pts = int(self._idx.key_pts[key_pos]) if key_pos >= 0 else None
        resume = (
            self._frames is not None
            and self._last_pts is not None
            and self._last_pts < target
            and (key_pts is None or self._last_pts >= key_pts or self._near(self._last_pts, key_pts))
        )
        if not resume:
            self._seek(key_pos)
        elif key_pts is not None and (self._sent_key is None or self._sent_key < key_pts):
            self._drop_until = key_pts  # the GOPs before the wanted frame's keyframe are not needed
        frame = self._decode_until(target)
        # A seek that lands after the frame (an index that lies): one keyframe earlier, then the start.
        if frame is None and key_pos > 0:
            self._seek(key_pos - 1)
            frame = self._decode_until(target)
        if frame is None:
            self._seek(-1)
            frame = self._decode_until(target)
        if frame is None:
            raise _fail(self._path, f"frame {i} cannot be decoded (damaged or truncated file)")
        return frame

    def _decode_until(self, target: int) -> av.VideoFrame | None:
        assert self._frames is not None
        try:
            for frame in self._frames:
                pts = frame.pts
                if pts is None:
                    continue
                self._last_pts = pts
                if pts == target:
                    return frame
                if pts > target:
                    return None
        except av.FFmpegError as exc:
            raise _fail(self._path, f"decoding failed ({_ffmpeg_reason(exc)})") from None
        self._frames = None
        return None


# Codecs whose decoders honour skip_frame=NONREF by dropping exactly the frames nothing references.
_SKIP_NONREF_CODECS = {"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4"}


def _skip_nonref_ok(codec: str) -> bool:
    return codec in _SKIP_NONREF_CODECS and os.environ.get("STCHAT_DECODE_SKIP_NONREF", "1") != "0"


def _decode_threads() -> int:
    """Decoder threads: ``STCHAT_DECODE_THREADS`` or 0 (FFmpeg picks: one per core, plus one)."""
    try:
        return max(0, int(os.environ.get("STCHAT_DECODE_THREADS", "0")))
    except ValueError:
        return 0


class _CountingDecoder:
    """For streams without usable timestamps: decode from the start and count frames (decord's view)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._container = _open(path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        self._pos = -1

    def __enter__(self) -> _CountingDecoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self._container.close()

    def get(self, i: int) -> av.VideoFrame:
        if i <= self._pos:
            raise _fail(self._path, "frames must be requested in increasing order")
        try:
            for frame in self._frames:
                self._pos += 1
                if self._pos == i:
                    return frame
        except av.FFmpegError as exc:
            raise _fail(self._path, f"decoding failed ({_ffmpeg_reason(exc)})") from None
        raise _fail(self._path, f"frame {i} cannot be decoded (damaged or truncated file)")
