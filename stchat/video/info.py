"""``VideoInfo``: the facts about a video file that results carry, without importing a decoder.

Kept apart from :mod:`stchat.video.io` (PyAV, OpenCV) so that result types, answer files and the task
table can name and read it back cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from typing import Any

from stchat.video.facts import damage_warning, json_form


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video file; ``width``/``height`` are the displayed size (after rotation)."""

    path: str
    container: str
    video_codec: str
    duration_s: float
    fps: Fraction
    fps_float: float
    frame_count: int
    width: int
    height: int
    coded_width: int
    coded_height: int
    rotation: int  # clockwise degrees the decoded picture is turned for display (0/90/180/270)
    has_audio: bool
    audio_codec: str | None
    audio_sample_rate: int | None
    audio_channels: int | None
    start_time_s: float  # presentation time of frame 0 on the file clock
    vfr: bool
    sample_aspect_ratio: Fraction | None
    # What the header claims, next to what can be read (duration_s, frame_count). They differ for a cut-off
    # download or a damaged file; ``truncated`` is then True and :meth:`warning` says so in one line.
    declared_duration_s: float | None = None
    declared_frame_count: int | None = None
    truncated: bool = False

    def warning(self) -> str | None:
        """One line for a damaged/truncated file (what is readable), else None."""
        return damage_warning(self.__dict__)

    def to_dict(self) -> dict[str, object]:
        return json_form(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VideoInfo:
        """Inverse of :meth:`to_dict` (unknown keys ignored, so newer files still read)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["fps"] = Fraction(str(values["fps"]))
        sar = values.get("sample_aspect_ratio")
        values["sample_aspect_ratio"] = None if sar is None else Fraction(str(sar).replace(":", "/"))
        return cls(**values)
