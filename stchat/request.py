"""One grounding question, validated once: :class:`GroundingRequest`, its units and the one limits table.

The CLI (``stchat ground``), the app and :class:`stchat.chat.StableChat` all build a
:class:`GroundingRequest`; construction checks everything that needs no file (task, query length, token
budget, decoding, seed, frame range, coordinate shapes), :meth:`GroundingRequest.resolve` checks the media
and turns times and regions into the model's fractions. Every failure is one line of the
:mod:`stchat.errors` hierarchy.

Units are explicit everywhere. A time is seconds on the file clock (``2s``, ``2.5s``) or a fraction of the
sampled frame range (``0.25``); a region is fractions of the frame (``0.1``) or pixels (``64px``). The
frame range ``split`` is always two whole frame numbers ``FIRST LAST`` (inclusive).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from stchat.errors import AnswerError, PromptError, VideoError
from stchat.processing.prompt import MAX_QUERY_CHARS, MAX_QUERY_TOKENS
from stchat.processing.tasks import compose_query
from stchat.tasks import TaskSpec, get_task, span_tasks
from stchat.video.info import VideoInfo
from stchat.video.readers import get_reader
from stchat.video.sampling import resolve_split

DECODINGS = ("greedy", "official")
OFFICIAL_TEMPERATURE = 0.01  # demo.py / multi_task_inference.py (Q22)
# The official call passes ``top_p=None``, which in HF ``generate`` overrides the checkpoint's
# generation_config and switches top-p off. ``generate_ids`` reads None as "use the config", so "off" is
# said with 1.0. top_k is not passed officially: the checkpoint's value, else HF's 50 (Q22).
OFFICIAL_SAMPLING: dict[str, Any] = {"do_sample": True, "temperature": OFFICIAL_TEMPERATURE, "top_p": 1.0}
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"})
_SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts


@dataclass(frozen=True)
class Limits:
    """Every size limit a user can meet, in one place (the CLI, the app and the API read this)."""

    max_new_tokens: int = 8192  # the hard cap of one generation
    default_max_new_tokens: int = 1024
    slider_max_new_tokens: int = 2048  # the app's slider range: long answers are rare and slow on CPU
    max_query_chars: int = MAX_QUERY_CHARS
    max_query_tokens: int = MAX_QUERY_TOKENS
    max_answer_file_bytes: int = 4 * 1024**2  # far beyond any answer.json; a wrong file cannot fill memory


LIMITS = Limits()

# --------------------------------------------------------------------------------------------- units
UNITS = ("s", "fraction")
_TIME_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|sec|secs|seconds)?\s*$", re.IGNORECASE)
_PX_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*px\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class TimeSpan:
    """A time span in one explicit unit: ``"s"`` (seconds, file clock) or ``"fraction"`` of the range."""

    start: float
    end: float
    unit: str = "fraction"

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise PromptError(f"a time unit is 's' or 'fraction', not {self.unit!r}")
        for v in (self.start, self.end):
            if not np.isfinite(v) or v < 0 or (self.unit == "fraction" and v > 1):
                what = "seconds >= 0" if self.unit == "s" else "fractions in [0, 1]"
                raise PromptError(f"time span {self.start:g}–{self.end:g}: times must be {what}")
        if self.end <= self.start:
            raise PromptError(f"time span {self.text()}: the start must be before its end")

    @classmethod
    def parse(cls, values: Sequence[str | float]) -> TimeSpan:
        """Two times, each ``2s`` (seconds) or ``0.25`` (fraction); both in the same unit."""
        if len(values) != 2:
            raise PromptError(f"a time span is two times (start end); got {len(values)}")
        (s, su), (e, eu) = parse_time(values[0]), parse_time(values[1])
        if su != eu:
            raise PromptError("give both ends of the span in the same unit (e.g. 2s 6s, or 0.25 0.75)")
        return cls(s, e, su)

    @classmethod
    def parse_text(cls, text: str | None, unit: str = "s") -> TimeSpan | None:
        """``""`` -> None; ``"2, 7"``, ``"[2, 7]"``, ``"2-7"``, ``"2 7"`` in ``unit`` (the app: seconds)."""
        pair = _typed_pair(text, r"\d+(?:\.\d+)?", "time span", "start, end (e.g. 2, 7)")
        return None if pair is None else cls(float(pair[0]), float(pair[1]), unit)

    def text(self) -> str:
        suffix = " s" if self.unit == "s" else ""
        return f"{self.start:g}–{self.end:g}{suffix}"

    def fractions(self, timeline: Timeline | None) -> tuple[float, float]:
        if self.unit == "fraction":
            return self.start, self.end
        if timeline is None:
            raise PromptError("a span in seconds needs a video file (or fps for frame arrays)")
        if self.start > timeline.duration_s:
            raise PromptError(
                f"time span starts at {self.start:g} s, after the video ends ({timeline.duration_s:.2f} s)"
            )
        s, e = timeline.fraction(self.start), timeline.fraction(self.end)
        if e <= s:
            raise PromptError(f"time span {self.text()} falls outside the chosen frame range")
        return s, e


def parse_time(value: str | float) -> tuple[float, str]:
    """``"2s"`` -> (2.0, "s"); ``"0.25"`` or ``0.25`` -> (0.25, "fraction")."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), "fraction"
    m = _TIME_RE.match(str(value))
    if m is None:
        raise PromptError(f"time {value!r} not understood: write seconds as 2s or a fraction as 0.25")
    return float(m.group(1)), "s" if m.group(2) else "fraction"


def parse_region(values: Sequence[str | float]) -> tuple[tuple[float, ...], str]:
    """Four corners ``x1 y1 x2 y2``, all fractions (``0.1``) or all pixels (``64px``)."""
    if len(values) != 4:
        raise PromptError(f"a region is four numbers x1 y1 x2 y2; got {len(values)}")
    px = [_PX_RE.match(str(v)) for v in values]
    if all(px):
        return tuple(float(m.group(1)) for m in px if m), "px"
    if any(px):
        raise PromptError("give all four region corners in the same unit (fractions, or all with px)")
    try:
        return tuple(float(v) for v in values), "fraction"
    except ValueError:
        raise PromptError(f"region {' '.join(map(str, values))!r} not understood") from None


def _typed_pair(text: str | None, number: str, what: str, form: str) -> tuple[str, str] | None:
    """Two numbers typed ``a, b``, ``[a, b]``, ``a-b`` or ``a b``; None for empty text."""
    text = (text or "").strip()
    if not text:
        return None
    m = re.fullmatch(rf"\[?\s*({number})\s*(?:,|-|\s)\s*({number})\s*\]?", text)
    if m is None:
        raise PromptError(f"{what} {text!r} not understood: write it as {form}")
    return m.group(1), m.group(2)


def parse_frame_range(text: str | None) -> tuple[int, int] | None:
    """``""`` -> whole video; ``"0, 829"``, ``"[0, 829]"`` or ``"0-829"`` -> inclusive frame range."""
    pair = _typed_pair(text, r"\d+", "frame range", "first, last (e.g. 0, 829)")
    if pair is None:
        return None
    first, last = int(pair[0]), int(pair[1])
    if last < first:
        raise PromptError(f"frame range [{first}, {last}]: the last frame comes before the first")
    return first, last


def check_split(split: object) -> tuple[int, int] | None:
    """``None`` or two whole frame numbers ``first <= last``; anything else is a clear error."""
    if split is None:
        return None
    if isinstance(split, (str, bytes)) or not isinstance(split, Sequence | np.ndarray) or len(split) != 2:
        raise VideoError(f"a frame range needs two whole numbers [first, last]; got {split!r}")
    out = []
    for v in split:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)):
            raise VideoError(f"a frame range needs two whole numbers [first, last]; got {list(split)!r}")
        if isinstance(v, (float, np.floating)) and not float(v).is_integer():
            raise VideoError(f"frame numbers must be whole numbers; got {float(v):g}")
        out.append(int(v))
    return out[0], out[1]  # the order and the video's length are checked where the video is known


@dataclass(frozen=True)
class Timeline:
    """Frame times of one video and the sampled range: what turns seconds into the model's fractions."""

    times: np.ndarray  # seconds of every source frame (file clock)
    first: int
    last: int
    duration_s: float

    def fraction(self, t: float) -> float:
        """The frame showing at ``t`` s, as a fraction ``(frame - first) / (last - first)`` of the range.

        Rounded to 3 decimals, as the official benchmark front-end writes input times
        (docs/official_quirks.md, "Prompt wording").
        """
        frame = int(np.clip(np.searchsorted(self.times, t + 1e-6, side="right") - 1, self.first, self.last))
        return 0.0 if self.last == self.first else round((frame - self.first) / (self.last - self.first), 3)


def _seconds_fraction(t: float, timeline: Timeline | None) -> float:
    if timeline is None:
        raise PromptError("a time in seconds needs a video file (or fps for frame arrays)")
    if t > timeline.duration_s:
        raise PromptError(f"time {t:g} s is after the video ends ({timeline.duration_s:.2f} s)")
    return timeline.fraction(t)


@dataclass(frozen=True)
class MediaContext:
    """What the media says about units: its frame times (seconds -> fractions) and frame size (px)."""

    timeline: Timeline | None
    size: tuple[int, int] | None
    info: VideoInfo | None = None


def media_context(media: Any, split: Sequence[int] | None, fps: float | None = None) -> MediaContext:
    """Check the media can be read and the frame range fits it; no frame is decoded."""
    split = check_split(split)
    if isinstance(media, np.ndarray):
        if media.ndim != 4:
            return MediaContext(None, (int(media.shape[1]), int(media.shape[0])) if media.ndim >= 2 else None)
        first, last = _range(media.shape[0], split)
        if fps is None:
            return MediaContext(None, (int(media.shape[2]), int(media.shape[1])))
        times = np.arange(media.shape[0], dtype=np.float64) / float(fps)
        timeline = Timeline(times, first, last, media.shape[0] / float(fps))
        return MediaContext(timeline, (int(media.shape[2]), int(media.shape[1])))
    if isinstance(media, Image.Image):
        return MediaContext(None, media.size)
    path = Path(media)
    if is_image_path(path):
        if split is not None:
            raise VideoError("a frame range only applies to videos, not images")
        return MediaContext(None, _image_size(path))
    if not path.is_file():
        raise VideoError(f"video not found: {path}" if not path.exists() else f"not a file: {path}")
    if path.suffix.lower() == ".npy":
        return MediaContext(None, None)
    reader = get_reader()
    info = reader.probe(path)
    first, last = _range(info.frame_count, split)
    timeline = Timeline(reader.frame_times(path), first, last, info.duration_s)
    return MediaContext(timeline, (info.width, info.height), info)


def _range(n: int, split: tuple[int, int] | None) -> tuple[int, int]:
    try:
        return resolve_split(n, split)
    except ValueError as exc:
        raise VideoError(str(exc)) from None


def _image_size(path: Path) -> tuple[int, int]:
    """Decode the image once (a broken file fails here, not after the model loaded); its size."""
    if not path.is_file():
        raise VideoError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            im.load()
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise VideoError(f"cannot read image {path}: {exc}") from None


# -------------------------------------------------------------------------------------------- request
_DEMO_SPAN = re.compile(r"\{\s*<t(\d*\.?\d+)>\s*,\s*<t(\d*\.?\d+)>\s*\}")


def is_image_path(media: object) -> bool:
    return isinstance(media, (str, Path)) and Path(media).suffix.lower() in IMAGE_SUFFIXES


@dataclass(frozen=True)
class GroundingRequest:
    """One question about one video or image (see module doc). Frozen and validated on construction."""

    media: Any  # a file path, a PIL image, or uint8 frames (T, H, W, 3) / an image array (H, W, 3)
    task: str = "stvg"
    query: str = ""
    span: TimeSpan | None = None
    start: tuple[float, str] | None = None  # ELC event start: (value, unit)
    region: tuple[tuple[float, ...], str] | None = None  # (corners, "fraction" | "px")
    split: tuple[int, int] | None = None
    max_new_tokens: int = LIMITS.default_max_new_tokens
    decoding: str = "greedy"
    seed: int | None = None
    fps: float | None = None  # frame times of raw frame arrays
    speculative: bool = True  # greedy: grammar drafter + exact verification (stchat.speculative)

    def __post_init__(self) -> None:
        spec = get_task(self.task)
        object.__setattr__(self, "task", spec.name)
        if not isinstance(self.query, str):
            raise PromptError(f"the query must be text, got {type(self.query).__name__}")
        if len(self.query) > LIMITS.max_query_chars:
            raise PromptError(
                f"the query is too long ({len(self.query)} characters; the limit is {LIMITS.max_query_chars})"
            )
        object.__setattr__(self, "max_new_tokens", check_max_new_tokens(self.max_new_tokens))
        if not isinstance(self.speculative, (bool, np.bool_)):
            raise PromptError(f"speculative must be True or False; got {self.speculative!r}")
        object.__setattr__(self, "speculative", bool(self.speculative))
        check_decoding(self.decoding, self.seed)
        object.__setattr__(self, "split", check_split(self.split))
        if self.span is not None and not isinstance(self.span, TimeSpan):
            object.__setattr__(self, "span", TimeSpan.parse(list(self.span)))
        if self.start is not None and not isinstance(self.start, tuple):
            object.__setattr__(self, "start", parse_time(self.start))
        if self.region is not None and not (len(self.region) == 2 and self.region[1] in ("fraction", "px")):
            object.__setattr__(self, "region", parse_region(list(self.region)))
        if self.fps is not None and not (
            isinstance(self.fps, (int, float, np.number)) and 0 < float(self.fps) < float("inf")
        ):
            raise VideoError(f"fps must be a positive number; got {self.fps!r}")
        self._check_task_inputs(spec)

    @property
    def spec(self) -> TaskSpec:
        return get_task(self.task)

    def _check_task_inputs(self, spec: TaskSpec) -> None:
        typed = _DEMO_SPAN.search(self.query) if spec.needs_span else None
        if self.span is not None and not spec.needs_span:
            raise PromptError(f"a time span is only used by tasks {', '.join(span_tasks())}; clear it for "
                              f"{spec.name}")
        if typed is not None and self.span is not None:
            raise PromptError("give the time span once: either in the question or as the span")
        if spec.needs_span and typed is None and self.span is None:
            raise PromptError(f"task {spec.name} is about a time span: give one (e.g. --span 2s 6s)")
        if spec.modality is not None and is_image_path(self.media) != (spec.modality == "image"):
            need = "an image" if spec.modality == "image" else "a video"
            raise PromptError(f"task {spec.name!r} needs {need}; {Path(self.media).name} is not one")
        if self.split is not None and is_image_path(self.media):
            raise VideoError("a frame range only applies to videos, not images")

    def asked_span(self, timeline: Timeline | None = None) -> tuple[float, float] | None:
        """The span the question is about, as fractions of the range (given, or typed in the query)."""
        if self.span is not None:
            return self.span.fractions(timeline)
        typed = _DEMO_SPAN.search(self.query) if self.spec.needs_span else None
        return None if typed is None else (float(typed.group(1)), float(typed.group(2)))

    def question(self, timeline: Timeline | None = None, size: tuple[int, int] | None = None) -> str:
        """The question to send (the task template applied, times and regions in fractions)."""
        span = self.span.fractions(timeline) if self.span is not None else None
        start = None
        if self.start is not None:
            value, unit = self.start
            start = value if unit == "fraction" else _seconds_fraction(value, timeline)
        region = None
        if self.region is not None:
            corners, unit = self.region
            if unit == "px":
                if size is None:
                    raise PromptError("a region in pixels needs the frame size: give fractions instead")
                w, h = size
                corners = (corners[0] / w, corners[1] / h, corners[2] / w, corners[3] / h)
            region = corners
        query = "" if (span is not None and not self.spec.takes_text) else self.query
        return compose_query(self.task, query, span=span, start=start, region=region)

    @property
    def needs_context(self) -> bool:
        """True when a time is in seconds or a region in pixels: the media must be read to convert it."""
        return (
            (self.span is not None and self.span.unit == "s")
            or (self.start is not None and self.start[1] == "s")
            or (self.region is not None and self.region[1] == "px")
        )

    def with_(self, **changes: Any) -> GroundingRequest:
        return replace(self, **changes)


def check_max_new_tokens(value: Any) -> int:
    """A whole number in [1, LIMITS.max_new_tokens] (text from an API or a float slider value accepted)."""
    if isinstance(value, (bool, np.bool_)):
        number = float("nan")
    else:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
    if not number.is_integer() or not 1 <= number <= LIMITS.max_new_tokens:  # NaN, inf fail is_integer()
        raise PromptError(
            f"max new tokens (--max-new-tokens) must be a whole number between 1 and "
            f"{LIMITS.max_new_tokens}; got {value!r}"
        )
    return int(number)


def check_decoding(decoding: str, seed: object) -> None:
    if decoding not in DECODINGS:
        raise PromptError(f"unknown decoding {decoding!r}: choose one of {', '.join(DECODINGS)}")
    if seed is not None and (
        isinstance(seed, (bool, np.bool_))
        or not isinstance(seed, (int, np.integer))
        or not _SEED_RANGE[0] <= int(seed) <= _SEED_RANGE[1]
    ):
        raise PromptError(f"seed must be an integer in [-2**63, 2**64 - 1]; got {seed!r}")


# ------------------------------------------------------------------------------------------ answer files
#: Keys under which ``answer.json`` and hand-written files keep the answer text, most raw first.
ANSWER_KEYS = ("raw_text", "raw_answer", "raw", "answer", "output", "text", "normalized_text",
               "normalised_text")


def read_answer_file(path: str | Path) -> str | dict[str, Any]:
    """An answer file: plain text (the model's answer), or JSON (``answer.json`` or a dict/str carrying
    the answer text). Returns the text, or the JSON object when it is a full ``answer.json`` record."""
    p = Path(path)
    try:
        if not p.is_file():
            raise AnswerError(f"answer file {p.name} not found (or not a file)")
        if p.stat().st_size > LIMITS.max_answer_file_bytes:
            limit = LIMITS.max_answer_file_bytes // 1024**2
            raise AnswerError(f"answer file {p.name} is over {limit} MB: not a model answer")
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AnswerError(f"answer file {p.name} is not UTF-8 text") from None
    except OSError as exc:
        raise AnswerError(f"cannot read answer file {p.name}: {exc.strerror or exc}") from None
    if p.suffix.lower() == ".json" or text.lstrip().startswith('{"'):
        return _answer_from_json(text, p.name)
    return text


def _answer_from_json(text: str, name: str) -> str | dict[str, Any]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"answer file {name} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except RecursionError:  # ``[[[[...]]]]`` nested deeper than the JSON decoder recurses
        raise AnswerError(f"answer file {name} is JSON nested too deeply to be a model answer") from None
    if isinstance(data, str):
        return data
    if isinstance(data, Mapping):
        if "parsed" in data and "raw_text" in data:
            return dict(data)  # a full answer.json record
        for key in ANSWER_KEYS:
            if isinstance(data.get(key), str):
                return data[key]
    raise AnswerError(f"answer file {name} has no answer text (expected one of: {', '.join(ANSWER_KEYS)})")


def answer_text(content: str | dict[str, Any]) -> str:
    """The answer text of what :func:`read_answer_file` returned."""
    return content if isinstance(content, str) else str(content["raw_text"])
