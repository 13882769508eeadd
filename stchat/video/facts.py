"""What a probe checks and reports, importable without PyAV, numpy or even ``dataclasses``.

``stchat probe``'s fast path (:mod:`stchat.video.quickprobe`) runs in a fresh process where every import
counts (``dataclasses`` pulls in ``inspect``: a sixth of the command's start-up), so the limits, the
checks, the one-line damage warning and the JSON form of the facts live here, shared with
:class:`stchat.video.info.VideoInfo` and the full probe in :mod:`stchat.video.io`.
"""

from __future__ import annotations

import os
from collections import namedtuple

from stchat.errors import VideoError

TYPE_CHECKING = False  # not typing's: typing and pathlib were 15 ms of `stchat probe` (stchat/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    PathLike = str | os.PathLike[str]


# A namedtuple rather than a frozen dataclass or typing.NamedTuple: immutable and keyword-built all the
# same, without importing ``dataclasses`` or ``typing`` (see the module doc).
class VideoLimits(
    namedtuple(
        "VideoLimits",
        ("max_file_bytes", "max_duration_s", "max_width", "max_height", "max_frames"),
        defaults=(4 * 1024**3, 4 * 3600.0, 7680, 7680, 2_000_000),
    )
):
    """What we agree to read (bytes, seconds, pixels, frames); anything larger is refused with a clear
    :class:`VideoError`."""

    __slots__ = ()


DEFAULT_LIMITS = VideoLimits()


def fail(path: PathLike, what: str) -> VideoError:
    return VideoError(f"{os.path.basename(os.path.normpath(path))}: {what}")  # Path(path).name


def check_file(path: PathLike, limits: VideoLimits) -> None:
    if not os.path.exists(path):
        raise fail(path, "file not found")
    if not os.path.isfile(path):
        raise fail(path, "not a regular file")
    size = os.path.getsize(path)
    if size == 0:
        raise fail(path, "file is empty")
    if size > limits.max_file_bytes:
        raise fail(path, f"file is {size / 1e6:.0f} MB, over the {limits.max_file_bytes / 1e6:.0f} MB limit")


def check_limits(
    path: PathLike, duration_s: float, width: int, height: int, frame_count: int, limits: VideoLimits
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
