"""Faithful re-implementations of the official evaluation parsers and IoU primitives.

These reproduce ``inference/src/utils.py`` of LLaVA-ST (docs/official_quirks.md#answer-syntax, #metrics)
behaviour for behaviour,
because the published benchmark numbers were computed with them: same regexes (non-negative decimals
only, spaces removed before box and pair parsing, the mandatory ``,`` between a pair's time and ``:``),
same fallbacks (``[0, 0]`` for a missing span, ``None`` for a missing box), same float formulas. They
are deliberately *not* the lenient parser of :mod:`stchat.parse`.

The one place where we deviate is documented on :func:`temporal_iou`: the official function divides by
zero for two zero-length spans at the same point; ours returns :data:`ZERO_UNION_TIOU` and the scorer
counts these cases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_DEC = r"(\d+(?:\.\d+)?)"
_SPAN_RE = re.compile(r"{\s*" + _DEC + r"\,\s*" + _DEC + r"\s*}")
_BOX_RE = re.compile(r"\[" + _DEC + r",\s*" + _DEC + r",\s*" + _DEC + r",\s*" + _DEC + r"\]")
_PAIR_RE = re.compile(_DEC + r"\,\:\s*\[" + _DEC + r",\s*" + _DEC + r",\s*" + _DEC + r",\s*" + _DEC + r"\]")

#: Value we give ``temporal_iou`` when the official formula would divide by zero (both spans collapse
#: onto one point, e.g. GT ``[0.5, 0.5]`` and prediction ``[0.5, 0.5]``, or a missing prediction
#: ``[0, 0]`` against a GT span ``[0, 0]``). We follow the official *box* ``iou``, which returns 0 when
#: the union is 0, so a degenerate span never counts as a hit. The official evaluator crashes there.
ZERO_UNION_TIOU = 0.0


_TOKEN_SPLIT = re.compile(r"<(?:WIDTH|HEIGHT|TEMP)-(\d+)>")


class _TokenIndex(dict[str, str]):
    """Digits of a coordinate token -> ``f"{int(digits)},"`` (what the official callback writes), memoised.

    ``str(int(d))`` is the official conversion (leading zeros dropped, Unicode digits read as digits);
    the memo is capped so a file full of distinct numbers cannot grow it without bound.
    """

    def __missing__(self, digits: str) -> str:
        value = f"{int(digits)},"
        if len(self) < 4096:
            self[digits] = value
        return value


_TOKEN_INDEX = _TokenIndex()


def token_text(text: str) -> str:
    """``replace_and_normalize(text, return_token=True)``, character for character, for the scorer.

    The scorer converts every answer this way (~100 tokens each); splitting on the tokens and mapping
    their digits through a memo avoids one Python callback per token, the scorer's largest single cost.
    """
    parts = _TOKEN_SPLIT.split(text)
    parts[1::2] = map(_TOKEN_INDEX.__getitem__, parts[1::2])
    return "".join(parts).replace(",]", "]").replace(",}", "}")


def find_stpairs(text: str) -> list[tuple[str, ...]]:
    """Every ``t,:[a,b,c,d]`` match (groups as text) after removing spaces, duplicates included.

    ``parse_stpair_from_text`` is ``{float(t): [floats]}`` of these; the scorer needs the raw count too
    (duplicate timestamps), so it scans once and builds the dict itself.
    """
    return _PAIR_RE.findall(text.replace(" ", ""))


def find_span(text: str) -> list[float] | None:
    """First ``{a, b}`` (non-negative decimals) as ``[a, b]``, or ``None`` (unlike a parsed ``{0, 0}``)."""
    m = _SPAN_RE.search(text)
    return None if m is None else [float(m.group(1)), float(m.group(2))]


def parse_span_from_text(text: str) -> list[float]:
    """First ``{a, b}`` (non-negative decimals) as ``[a, b]``; ``[0, 0]`` (ints, as official) when none."""
    span = find_span(text)
    return [0, 0] if span is None else span


def count_stpairs(text: str) -> int:
    """Number of ``t,:[box]`` matches before duplicates collapse (for counting duplicate timestamps)."""
    return len(_PAIR_RE.findall(text.replace(" ", "")))


def parse_box_from_text(text: str) -> list[float] | None:
    """First ``[a,b,c,d]`` after removing every space; ``None`` when none."""
    m = _BOX_RE.search(text.replace(" ", ""))
    return None if m is None else [float(g) for g in m.groups()]


def parse_stpair_from_text(text: str) -> dict[float, list[float]]:
    """Every ``t,:[a,b,c,d]`` after removing spaces, as ``{float(t): box}``; a repeated t keeps the last."""
    pairs: dict[float, list[float]] = {}
    for groups in _PAIR_RE.findall(text.replace(" ", "")):
        pairs[float(groups[0])] = [float(g) for g in groups[1:]]
    return pairs


def temporal_union_is_zero(a: Sequence[float], b: Sequence[float]) -> bool:
    """True where the official ``temporal_iou`` raises ``ZeroDivisionError``."""
    return max(a[1], b[1]) - min(a[0], b[0]) == 0


def temporal_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Official temporal IoU: ``max(min1 - max0, 0) / (max1 - min0)``, then ``max(0, ·)``.

    Reversed spans are not repaired (they give 0 in practice). Zero denominator: see :data:`ZERO_UNION_TIOU`.
    """
    max0 = max(a[0], b[0])
    min0 = min(a[0], b[0])
    max1 = max(a[1], b[1])
    min1 = min(a[1], b[1])
    denom = max1 - min0
    if denom == 0:
        return ZERO_UNION_TIOU
    return max(0, max(min1 - max0, 0) / denom)


def iou(box1: Sequence[float], box2: Sequence[float]) -> float:
    """Official box IoU: no +1 pixel convention, signed areas for reversed boxes, 0 when the union is 0."""

    # The official expressions in the official order (areas inlined: this runs per matched frame).
    inter = max(0, min(box1[2], box2[2]) - max(box1[0], box2[0])) * max(
        0, min(box1[3], box2[3]) - max(box1[1], box2[1])
    )
    inter = max(0, inter)
    union = (box1[2] - box1[0]) * (box1[3] - box1[1]) + (box2[2] - box2[0]) * (box2[3] - box2[1]) - inter
    return inter / union if union != 0 else 0


def sampled_frame_ids(split: Sequence[int], num_frames: int = 100) -> list[int]:
    """Official ``load_video`` / ``eval_stvg`` frame ids (float64, banker's rounding; reference Q23)."""
    duration = split[1] - split[0] + 1
    return [split[0] + round((i / (num_frames - 1)) * (duration - 1)) for i in range(num_frames)]


def pred_frame_key(split: Sequence[int], k: float, num_frames: int = 100) -> str:
    """Original-frame key of a predicted token index ``k``, exactly as ``eval_stvg`` builds it.

    Note ``round(split0 + k/99·(d−1))`` rounds *after* adding ``split0``, unlike the sampling formula
    ``split0 + round(i/99·(d−1))``: with banker's rounding the two disagree on exact halves when ``split0``
    is odd. An integer token index never lands on an exact half, but a literal decimal the model wrote as
    a time (``0.5,: [..]`` survives ``return_token=True`` normalisation as index 0.5) can; we keep the
    official key so such a frame misses its GT key exactly as in the official evaluator.
    """
    duration = split[1] - split[0] + 1
    return str(round(split[0] + float(k) / (num_frames - 1) * (duration - 1)))


def pred_box_pixels(box_tokens: Sequence[float], width: float, height: float) -> list[int]:
    """Integer pixel box from token indices, as ``eval_stvg``: ``round((k/99)·W)`` etc. (banker's)."""
    v = [i / 99 for i in box_tokens]
    return [round(i) for i in (v[0] * width, v[1] * height, v[2] * width, v[3] * height)]


def gt_time(frame: float, split: Sequence[int]) -> float:
    """GT frame id → normalised time rounded to 3 decimals, as ``eval_stvg`` (division by ``d − 1``)."""
    duration = split[1] - split[0] + 1
    return round((frame - split[0]) / (duration - 1), 3)
