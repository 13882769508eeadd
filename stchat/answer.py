"""Typed results passed between the pipeline stages (ask -> parse -> map -> render), and their JSON form.

All coordinates here are *normalised* as the model speaks them: times are fractions of the sampled
frame range in [0, 1] (``k / 99`` for temporal token ``k``), boxes are ``(x1, y1, x2, y2)`` fractions of
the displayed frame's width and height. Mapping to frames, seconds and pixels is ``stchat.mapping``'s job.

:class:`GroundingResult` is the one object that flows from the model to the page: ``StableChat.ground``
makes it, ``answer.json`` is its :meth:`~GroundingResult.to_dict`, ``stchat render --answer-json`` reads
it back with :meth:`~GroundingResult.from_dict`, and the renderer takes it whole.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stchat.errors import AnswerError
from stchat.tasks import find_task
from stchat.video.info import VideoInfo

Box = tuple[float, float, float, float]
Span = tuple[float, float]

#: Version of the ``answer.json`` layout; :meth:`GroundingResult.from_dict` refuses newer ones.
ANSWER_FORMAT = 1


@dataclass(frozen=True)
class Phrase:
    """A phrase of a dense grounded caption (DGC) with its box."""

    text: str
    box: Box


def _box(value: Sequence[float] | None) -> Box | None:
    return None if value is None else tuple(float(v) for v in value)  # type: ignore[return-value]


def _span(value: Sequence[float] | None) -> Span | None:
    return None if value is None else (float(value[0]), float(value[1]))


@dataclass
class ParsedAnswer:
    """What a model answer says, for one task. Parsing never raises: problems go to ``warnings``."""

    task: str
    text: str  # the normalised answer text the fields were read from
    span: Span | None = None  # (start, end) fractions: STVG, TVG, TR, ELC (end only known)
    boxes: dict[float, Box] = field(default_factory=dict)  # time fraction -> box (STVG/SVG/ELC keyframes)
    box: Box | None = None  # REC single box (REG answers are text: ``caption``)
    end_time: float | None = None  # ELC "Ends in t"
    caption: str | None = None  # ELC event caption, TR/caption free text
    phrases: list[Phrase] = field(default_factory=list)  # DGC
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Parsers and JSON give phrases as (text, box) pairs.
        self.phrases = [p if isinstance(p, Phrase) else Phrase(str(p[0]), _box(p[1])) for p in self.phrases]

    @property
    def ok(self) -> bool:
        """True when the answer carries what its task needs (something to draw or show)."""
        spec = find_task(self.task)
        usable = spec.usable if spec is not None else ("text",)
        return any(self._has(name) for name in usable)

    def _has(self, name: str) -> bool:
        if name == "text":
            return bool(self.text.strip())
        return bool(getattr(self, name)) if name in ("boxes", "phrases") else getattr(self, name) is not None

    def with_asked_span(self, asked: Span | None) -> ParsedAnswer:
        """The answer with the span the *question* gave, when its task is about that span and the answer
        names none (TR describes the span, SVG boxes things in it): that span is the moment to cut."""
        spec = find_task(self.task)
        if asked is None or self.span is not None or spec is None or not spec.span_fallback:
            return self
        note = f"the clip is the span you asked about ({asked[0]:g}–{asked[1]:g} of the range)"
        return dataclasses.replace(self, span=_span(asked), warnings=[*self.warnings, note])

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "text": self.text, "span": self.span,
            "boxes": {repr(float(k)): list(v) for k, v in self.boxes.items()},
            "box": self.box, "end_time": self.end_time, "caption": self.caption,
            "phrases": [{"text": p.text, "box": list(p.box)} for p in self.phrases],
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ParsedAnswer:
        # Time keys are written with repr(), which round-trips a float exactly.
        return cls(
            task=str(data["task"]), text=str(data.get("text", "")), span=_span(data.get("span")),
            boxes={float(k): _box(v) for k, v in (data.get("boxes") or {}).items()},  # type: ignore[misc]
            box=_box(data.get("box")), end_time=data.get("end_time"), caption=data.get("caption"),
            phrases=[(p["text"], p["box"]) for p in data.get("phrases") or ()],  # type: ignore[misc]
            warnings=list(data.get("warnings") or ()),
        )


@dataclass(frozen=True)
class GroundingResult:
    """Everything one question produced: texts, the parsed answer, and where the frames came from."""

    task: str
    query: str  # the question actually sent (after the task template)
    raw_text: str  # decoded answer, coordinate tokens intact, ``<|im_end|>`` removed
    normalized_text: str  # official ``replace_and_normalize`` of raw_text (what the official demo prints)
    parsed: ParsedAnswer
    output_ids: list[int]
    modality: str | None
    frame_indices: list[int] | None  # the 100 sampled source frame indices (video)
    frame_times_s: list[float] | None  # their presentation times in seconds (video file input)
    video_info: VideoInfo | None  # for a video file, else None
    media_size: tuple[int, int] | None  # (width, height) of the source frame / image
    split: tuple[int, int] | None
    variables: dict[str, list[float]]
    decoding: str
    seed: int | None
    timings: dict[str, float]
    asked_span: Span | None = None  # the span the question gave (fractions of the range), if any
    media: str | None = None  # the media file asked about, when it was a file
    generated_tokens: int = 0  # answer tokens, EOS included (0: not generated here, e.g. a pasted answer)
    decoder_passes: int = 0  # decoder forward passes, prefill included (< generated_tokens with speculation)

    @property
    def text(self) -> str:
        return self.normalized_text

    @property
    def answer(self) -> ParsedAnswer:
        """What to draw: the parsed answer, with the asked span where the task falls back to it."""
        return self.parsed.with_asked_span(self.asked_span)

    def to_dict(self) -> dict[str, Any]:
        """The ``answer.json`` record (plain JSON types; :meth:`from_dict` reads it back exactly)."""
        return {
            "format": ANSWER_FORMAT, "task": self.task, "query": self.query, "raw_text": self.raw_text,
            "normalized_text": self.normalized_text, "parsed": self.parsed.to_dict(),
            "output_ids": list(self.output_ids), "modality": self.modality,
            "frame_indices": self.frame_indices, "frame_times_s": self.frame_times_s,
            "video_info": None if self.video_info is None else self.video_info.to_dict(),
            "media_size": self.media_size, "split": self.split, "variables": self.variables,
            "decoding": self.decoding, "seed": self.seed, "timings": self.timings,
            "asked_span": self.asked_span, "media": self.media,
            "generated_tokens": self.generated_tokens, "decoder_passes": self.decoder_passes,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GroundingResult:
        fmt = data.get("format", ANSWER_FORMAT)
        if not isinstance(fmt, int) or fmt > ANSWER_FORMAT:
            raise AnswerError(f"answer file format {fmt!r} is newer than this stchat reads ({ANSWER_FORMAT})")
        try:
            info = data.get("video_info")
            size, split = data.get("media_size"), data.get("split")
            return cls(
                task=str(data["task"]), query=str(data["query"]), raw_text=str(data["raw_text"]),
                normalized_text=str(data["normalized_text"]), parsed=ParsedAnswer.from_dict(data["parsed"]),
                output_ids=[int(i) for i in data.get("output_ids") or ()], modality=data.get("modality"),
                frame_indices=data.get("frame_indices"), frame_times_s=data.get("frame_times_s"),
                video_info=None if info is None else VideoInfo.from_dict(info),
                media_size=None if size is None else (int(size[0]), int(size[1])),
                split=None if split is None else (int(split[0]), int(split[1])),
                variables=dict(data.get("variables") or {}), decoding=str(data.get("decoding", "greedy")),
                seed=data.get("seed"), timings=dict(data.get("timings") or {}),
                asked_span=_span(data.get("asked_span")), media=data.get("media"),
                generated_tokens=int(data.get("generated_tokens") or 0),
                decoder_passes=int(data.get("decoder_passes") or 0),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise AnswerError(f"not a stchat answer record ({type(exc).__name__}: {exc})") from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)
