"""Typed results passed between the pipeline stages (parse -> map -> render -> clip).

All coordinates here are *normalised* as the model speaks them: times are fractions of the sampled
frame range in [0, 1] (``k / 99`` for temporal token ``k``), boxes are ``(x1, y1, x2, y2)`` fractions of
the displayed frame's width and height. Mapping to frames, seconds and pixels is ``stchat.mapping``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Box = tuple[float, float, float, float]

TASKS = ("stvg", "svg", "elc", "tvg", "tr", "rec", "reg", "dgc", "caption")


@dataclass(frozen=True)
class Phrase:
    """A phrase of a dense grounded caption (DGC) with its box."""

    text: str
    box: Box


@dataclass
class ParsedAnswer:
    """What a model answer says, for one task. Parsing never raises: problems go to ``warnings``."""

    task: str
    text: str  # the normalised answer text the fields were read from
    span: tuple[float, float] | None = None  # (start, end) fractions: STVG, TVG, TR, ELC (end only known)
    boxes: dict[float, Box] = field(default_factory=dict)  # time fraction -> box (STVG/SVG/ELC keyframes)
    box: Box | None = None  # REC single box (REG answers are text: ``caption``)
    end_time: float | None = None  # ELC "Ends in t"
    caption: str | None = None  # ELC event caption, TR/caption free text
    phrases: list[Phrase] = field(default_factory=list)  # DGC
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the answer carries what its task needs (something to draw or show)."""
        if self.task in ("stvg",):
            return self.span is not None or bool(self.boxes)
        if self.task in ("svg", "elc"):
            return bool(self.boxes) or self.span is not None
        if self.task == "tvg":
            return self.span is not None
        if self.task == "rec":
            return self.box is not None
        if self.task == "dgc":
            return bool(self.phrases)
        return bool(self.text.strip())
