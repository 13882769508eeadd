"""What stchat agrees to read, and the cheap checks of a video file before any decoder is involved.

Kept free of PyAV (and numpy) so that ``stchat probe``'s fast path (:mod:`stchat.video.quickprobe`) can
apply the same limits without importing a decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from stchat.errors import VideoError
from stchat.video.info import VideoInfo


@dataclass(frozen=True)
class VideoLimits:
    """What we agree to read; anything larger is refused with a clear :class:`VideoError`."""

    max_file_bytes: int = 4 * 1024**3
    max_duration_s: float = 4 * 3600.0
    max_width: int = 7680
    max_height: int = 7680
    max_frames: int = 2_000_000


DEFAULT_LIMITS = VideoLimits()


def fail(path: Path, what: str) -> VideoError:
    return VideoError(f"{path.name}: {what}")


def check_file(path: Path, limits: VideoLimits) -> None:
    if not path.exists():
        raise fail(path, "file not found")
    if not path.is_file():
        raise fail(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise fail(path, "file is empty")
    if size > limits.max_file_bytes:
        raise fail(path, f"file is {size / 1e6:.0f} MB, over the {limits.max_file_bytes / 1e6:.0f} MB limit")


def check_limits(path: Path, info: VideoInfo, limits: VideoLimits) -> None:
    if info.duration_s > limits.max_duration_s:
        raise fail(path, f"is {info.duration_s:.0f} s long, over the {limits.max_duration_s:.0f} s limit")
    if info.width > limits.max_width or info.height > limits.max_height:
        raise fail(
            path, f"is {info.width}x{info.height}, over the {limits.max_width}x{limits.max_height} limit"
        )
    if info.frame_count > limits.max_frames:
        raise fail(path, f"has {info.frame_count} frames, over the {limits.max_frames} limit")
