"""The answer parsers of the built-in tasks: normalised model text -> the answer's fields.

Each ``parse_<task>(text, warnings)`` returns a dict of :class:`stchat.answer.ParsedAnswer` field values
(phrases as ``(text, box)`` pairs) and appends what was odd to ``warnings``; :mod:`stchat.tasks` says which
parser serves which task and :func:`stchat.parse.parse_answer` puts the pieces together. This module is a
leaf (it imports no task table and no result type), so the table can import it.

The parsers accept every output shape the official parsers accept (docs/official_quirks.md, "Answer
syntax") and are more lenient
where that costs nothing: spaces anywhere, doubled commas (``[<WIDTH-a>, <HEIGHT-b>, ...]`` normalises to
``[0.1,, 0.2,, ...]``), ``t: [box]`` as well as the official ``t,: [box]`` pair form, signed numbers (then
clamped with a warning). Raw model text with coordinate tokens (``<TEMP-012>`` ...) is first normalised with
the official ``replace_and_normalize``, so the raw-token form and its normalised form parse to the same
result.

They never raise on model text: anything odd (start > end, values outside [0, 1], duplicate timestamps,
reversed boxes, missing parts, garbage) yields a result whose ``warnings`` say what was wrong. The
benchmark scorer does **not** use this parser: it uses the faithful re-implementations of the official
parsers in :mod:`stchat.eval.official`, quirks included.
"""

from __future__ import annotations

import re
from typing import Any

from stchat.processing.decode import replace_and_normalize

Box = tuple[float, float, float, float]
Fields = dict[str, Any]

_NUM = r"-?\d+(?:\.\d+)?"
# Separator between numbers: one or more commas (the official normaliser writes a comma after every
# token, so a model that also writes commas produces ",,"), or plain whitespace. Possessive quantifiers
# keep garbage text from making the regexes backtrack.
_SEP = r"(?:\s*+,[\s,]*+|\s++)"
_BOX = rf"\[\s*+({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})[\s,]*+\]"
_SPAN = rf"\{{\s*+({_NUM}){_SEP}({_NUM})[\s,]*+\}}"
_BOX_RE = re.compile(_BOX)
_SPAN_RE = re.compile(_SPAN)
# ``t,: [box]`` (official, the comma comes from replace_and_normalize) or ``t: [box]``. The look-behind
# keeps the key from starting inside another number.
_PAIR_RE = re.compile(rf"(?<![\d.])({_NUM})[\s,]*+:\s*+{_BOX}")
_ENDS_IN_RE = re.compile(rf"ends\s+in\s*({_NUM})", re.IGNORECASE)
# A period that ends a sentence, not the decimal point of a number.
_SENTENCE_END_RE = re.compile(r"\.(?!\d)")
# Coordinate tokens whose index has so many digits that ``int()`` would refuse it (Python caps int
# conversion at 4300 digits); a real model never emits them, garbage text may.
_HUGE_TOKEN_RE = re.compile(r"<(WIDTH|HEIGHT|TEMP)-\d{7,}>")
_COORD_TOKEN_RE = re.compile(r"<(?:WIDTH|HEIGHT|TEMP)-\d+>")
_SPECIAL_TOKENS = ("<|im_end|>", "<|endoftext|>")

# Rounding used when comparing time keys for duplicates: two keys that print the same at 5 decimals
# (the normaliser's precision) are the same sampled frame.
_KEY_DECIMALS = 5


def normalize_answer_text(text: str) -> tuple[str, list[str]]:
    """Strip end-of-turn tokens and turn coordinate tokens into official 5-decimal fractions."""
    warnings: list[str] = []
    for tok in _SPECIAL_TOKENS:
        text = text.replace(tok, "")
    if _HUGE_TOKEN_RE.search(text):
        warnings.append("coordinate token with an absurd index ignored")
        text = _HUGE_TOKEN_RE.sub("", text)
    if _COORD_TOKEN_RE.search(text):
        text = replace_and_normalize(text)
    return text, warnings


def _clamp(value: float, what: str, warnings: list[str]) -> float:
    if value != value:  # NaN cannot come from digits, but stay total
        warnings.append(f"{what} is not a number: set to 0")
        return 0.0
    if value < 0.0 or value > 1.0:
        clamped = min(max(value, 0.0), 1.0)
        warnings.append(f"{what} {value:g} outside [0, 1]: clamped to {clamped:g}")
        return clamped
    return value


def _span_from(match: re.Match[str], warnings: list[str]) -> tuple[float, float]:
    s = _clamp(float(match.group(1)), "span start", warnings)
    e = _clamp(float(match.group(2)), "span end", warnings)
    if s > e:
        warnings.append(f"span start {s:g} > end {e:g}: swapped")
        s, e = e, s
    elif s == e:
        warnings.append(f"zero-length span at {s:g}")
    return (s, e)


def _box_from(groups: tuple[str, ...], what: str, warnings: list[str]) -> Box:
    x1, y1, x2, y2 = (_clamp(float(g), what, warnings) for g in groups)
    if x1 > x2 or y1 > y2:
        warnings.append(f"{what} has reversed corners: reordered")
        x1, x2 = min(x1, x2), max(x1, x2)
        y1, y2 = min(y1, y2), max(y1, y2)
    if x1 == x2 or y1 == y2:
        warnings.append(f"{what} has zero area")
    return (x1, y1, x2, y2)


def _first_span(text: str, warnings: list[str]) -> tuple[float, float] | None:
    m = _SPAN_RE.search(text)
    return _span_from(m, warnings) if m else None


def _first_box(text: str, warnings: list[str]) -> Box | None:
    m = _BOX_RE.search(text)
    return _box_from(m.groups(), "box", warnings) if m else None


def _st_pairs(text: str, warnings: list[str]) -> dict[float, Box]:
    """Every ``t: [box]`` pair; a repeated timestamp keeps its last box, as the official parser does."""
    boxes: dict[float, Box] = {}
    seen: dict[float, float] = {}  # rounded key -> key actually stored
    for m in _PAIR_RE.finditer(text):
        t = _clamp(float(m.group(1)), "timestamp", warnings)
        box = _box_from(m.groups()[1:], f"box at {t:.5f}", warnings)
        key = round(t, _KEY_DECIMALS)
        if key in seen:
            warnings.append(f"duplicate timestamp {t:.5f}: last box kept")
            del boxes[seen[key]]
        seen[key] = t
        boxes[t] = box
    return dict(sorted(boxes.items()))


def _elc_caption(text: str) -> str | None:
    """The event caption of an ELC answer ``Ends in t, <caption>. <pairs>``.

    The official scorer takes ``outputs.split(".")[0].split(",")[-1]`` of the *raw* token text; on
    normalised text that would cut at the decimal point of ``0.5``, so we cut at the first sentence-ending
    period instead and drop the ``Ends in t,`` lead. For well-formed answers both give the same words.
    """
    m = _ENDS_IN_RE.search(text)
    rest = text[m.end() :] if m else text
    pair = _PAIR_RE.search(rest)
    if pair:
        rest = rest[: pair.start()]
    end = _SENTENCE_END_RE.search(rest)
    if end:
        rest = rest[: end.start()]
    caption = rest.strip(" ,;:\n\t")
    return caption or None


def _dgc_phrases(text: str, warnings: list[str]) -> list[tuple[str, Box]]:
    """Phrases with boxes: like the official demo, every ``]`` closes one piece holding at most one box."""
    phrases: list[tuple[str, Box]] = []
    for piece in text.split("]"):
        m = _BOX_RE.search(piece + "]")
        if m is None:
            continue
        phrase = piece[: m.start()].strip(" ,.;:\n\t")
        box = _box_from(m.groups(), f"box of {phrase[:30]!r}", warnings)
        phrases.append((phrase, box))
    return phrases


def _st_fields(text: str, warnings: list[str]) -> Fields:
    """``{s, e}`` span and ``t: [box]`` pairs, shared by STVG, SVG and ELC."""
    boxes = _st_pairs(text, warnings)
    return {"boxes": boxes, "span": _first_span(text, warnings)}


def _check_st_boxes(fields: Fields, warnings: list[str]) -> Fields:
    boxes, span = fields["boxes"], fields["span"]
    if not boxes:
        warnings.append("no 'time: [box]' pairs found")
    elif span is not None:
        outside = [t for t in boxes if not span[0] <= t <= span[1]]
        if outside:
            warnings.append(f"{len(outside)} box timestamp(s) outside the answered span")
    return fields


def parse_stvg(text: str, warnings: list[str]) -> Fields:
    fields = _st_fields(text, warnings)
    _required(fields["span"], warnings, "no {start, end} span found")
    return _check_st_boxes(fields, warnings)


def parse_svg(text: str, warnings: list[str]) -> Fields:
    return _check_st_boxes(_st_fields(text, warnings), warnings)


def parse_elc(text: str, warnings: list[str]) -> Fields:
    fields = _st_fields(text, warnings)
    m = _ENDS_IN_RE.search(text)
    if m:
        fields["end_time"] = _clamp(float(m.group(1)), "end time", warnings)
    else:
        warnings.append("no 'Ends in' time found")
    fields["caption"] = _elc_caption(text)
    if fields["caption"] is None:
        warnings.append("no event caption found")
    return _check_st_boxes(fields, warnings)


def _required(value: Any, warnings: list[str], missing: str) -> Any:
    if value is None:
        warnings.append(missing)
    return value


def parse_tvg(text: str, warnings: list[str]) -> Fields:
    return {"span": _required(_first_span(text, warnings), warnings, "no {start, end} span found")}


def parse_tr(text: str, warnings: list[str]) -> Fields:
    return {"span": _first_span(text, warnings), "caption": text.strip()}


def parse_rec(text: str, warnings: list[str]) -> Fields:
    return {"box": _required(_first_box(text, warnings), warnings, "no [x1, y1, x2, y2] box found")}


def parse_reg(text: str, warnings: list[str]) -> Fields:
    return {"box": _first_box(text, warnings), "caption": text.strip()}


def parse_dgc(text: str, warnings: list[str]) -> Fields:
    phrases = _dgc_phrases(text, warnings)
    if not phrases:
        warnings.append("no phrase boxes found")
    return {"phrases": phrases}


def parse_caption(text: str, warnings: list[str]) -> Fields:
    return {"caption": text.strip()}
