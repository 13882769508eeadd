"""What a probe checks and reports, importable without PyAV, numpy or even ``dataclasses``.

``stchat probe``'s fast path (:mod:`stchat.video.quickprobe`) runs in a fresh process where every import
counts (``dataclasses`` pulls in ``inspect``: a sixth of the command's start-up), so the limits, the
checks, the one-line damage warning and the JSON form of the facts live here, shared with
:class:`stchat.video.info.VideoInfo` and the full probe in :mod:`stchat.video.io`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from stchat.errors import VideoError


# A NamedTuple rather than a frozen dataclass: immutable and keyword-built all the same, without the
# ``dataclasses`` import (see the module doc).
class VideoLimits(NamedTuple):
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


def check_limits(
    path: Path, duration_s: float, width: int, height: int, frame_count: int, limits: VideoLimits
) -> None:
    if duration_s > limits.max_duration_s:
        raise fail(path, f"is {duration_s:.0f} s long, over the {limits.max_duration_s:.0f} s limit")
    if width > limits.max_width or height > limits.max_height:
        raise fail(path, f"is {width}x{height}, over the {limits.max_width}x{limits.max_height} limit")
    if frame_count > limits.max_frames:
        raise fail(path, f"has {frame_count} frames, over the {limits.max_frames} limit")


def damage_warning(facts: Mapping[str, object]) -> str | None:
    """One line for a damaged/truncated file (what is readable), else None. ``facts``: VideoInfo's fields."""
    if not facts["truncated"]:
        return None
    name = str(facts["path"]).replace("\\", "/").rsplit("/", 1)[-1]
    claims = []
    if facts["declared_duration_s"] is not None:
        claims.append(f"{facts['declared_duration_s']:.1f} s")
    if facts["declared_frame_count"]:
        claims.append(f"{facts['declared_frame_count']} frames")
    said = f"its header says {', '.join(claims)} but " if claims else ""
    return (
        f"{name} is damaged or truncated: {said}only {facts['duration_s']:.1f} s ({facts['frame_count']} "
        "frames) can be read; times refer to the readable part"
    )


def json_form(facts: Mapping[str, Any]) -> dict[str, object]:
    """VideoInfo's fields as JSON values: the frame rate as ``"num/den"``, the aspect ratio as ``"w:h"``."""
    out = dict(facts)
    fps = facts["fps"]  # a Fraction
    out["fps"] = f"{fps.numerator}/{fps.denominator}"
    sar = facts["sample_aspect_ratio"]
    out["sample_aspect_ratio"] = None if sar is None else str(sar).replace("/", ":")
    return out
