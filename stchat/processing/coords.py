"""Coordinates in query text -> placeholder tokens + the ``variables`` dict the model reads.

Two official front-ends exist and produce *different* token sequences for the same box
(docs/official_quirks.md#coordinates-in-prompts,
quirk Q16), so both are reproduced and callers pick one:

* **demo** (``demo/utils.py: format_conversations``): the user writes ``<t0.5>``, ``<w0.2>``, ``<h0.8>``;
  each becomes ``<TEMP-INPUT0.5>`` etc. with the value rounded to 3 decimals, surrounding text verbatim.
* **benchmark** (``multi_task_inference.py: LocalDataset``): plain numbers. ``[a, b, c, d]`` becomes
  ``" [<W..><H..><W..><H..>]"`` (leading space, no commas, values clipped to [0, 1] where out-of-range
  values turn into the *integers* 0 / 1), ``{s, e}`` becomes ``" {<T..><T..>} "`` (a space each side)
  or the literal ``{<error>}`` when ``s >= e``, and ``Starts in X`` becomes ``" Starts in <T..> "``.

Both end in ``get_variables``, which strips every value out of its placeholder, in order of appearance.
The official code reads the values with ``eval``; here ``ast.literal_eval`` reads the same literals
without executing anything a query could smuggle in.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Iterable, Mapping

from stchat.errors import PromptError

# The six placeholder kinds, in the order the official get_variables processes them, with the
# ``variables`` key each one fills.
PLACEHOLDER_KEYS: tuple[tuple[str, str], ...] = (
    ("TEMP-INPUT", "temporal_input_locations"),
    ("TEMP-OUTPUT", "temporal_output_locations"),
    ("HEIGHT-INPUT", "spatial_height_input_locations"),
    ("HEIGHT-OUTPUT", "spatial_height_output_locations"),
    ("WIDTH-INPUT", "spatial_width_input_locations"),
    ("WIDTH-OUTPUT", "spatial_width_output_locations"),
)
VARIABLE_KEYS: tuple[str, ...] = tuple(v for _, v in PLACEHOLDER_KEYS)

_NUM = r"(\d+(?:\.\d+)?)"  # official number syntax: non-negative, no sign, no exponent
_DEMO_COORD = re.compile(r"<([twh])" + _NUM + ">")
_DEMO_KIND = {"t": "TEMP", "w": "WIDTH", "h": "HEIGHT"}
# Something that starts like a demo coordinate but is not one (``<t0.5``, ``<t-0.2>``, ``<w .3>``):
# the official code leaves such text alone and the model reads it as words, which is never intended.
_DEMO_COORD_LIKE = re.compile(r"<\s*[twh]\s*[-+.\d]")

_BOX = re.compile(r"\[\s*" + _NUM + r",\s*" + _NUM + r",\s*" + _NUM + r",\s*" + _NUM + r"\s*\]")
_SPAN = re.compile(r"{\s*" + _NUM + r"\,\s*" + _NUM + r"\s*}")
_STARTS_IN = re.compile(r"Starts in " + _NUM)


def empty_variables() -> dict[str, list[float]]:
    """The variables of a query without coordinates: six empty lists."""
    return {k: [] for k in VARIABLE_KEYS}


def _role_mode(role: str) -> str:
    # Human turns carry INPUT placeholders, model turns OUTPUT ones (official format_conversations).
    return "INPUT" if role == "human" else "OUTPUT"


# --------------------------------------------------------------------------------------------------
# demo front-end


def format_demo_text(text: str, mode: str = "INPUT") -> str:
    """``<tX>``/``<wX>``/``<hX>`` -> ``<TEMP-{mode}X'>``/``<WIDTH-..>``/``<HEIGHT-..>``, X' = round(X, 3).

    The value is written with Python's float ``str`` as the official f-string does (``<t1>`` -> ``1.0``).
    """

    def _sub(m: re.Match[str]) -> str:
        return f"<{_DEMO_KIND[m.group(1)]}-{mode}{round(float(m.group(2)), 3)}>"

    return _DEMO_COORD.sub(_sub, text)


def check_demo_syntax(text: str) -> None:
    """Reject coordinates that are malformed or outside [0, 1] with a one-line ``PromptError``.

    The official demo silently keeps malformed ones as plain words and clips out-of-range ones inside the
    model; both only ever come from typing mistakes (a time in seconds, a pixel coordinate), so they are
    refused here instead of producing a confidently wrong answer.
    """
    for m in _DEMO_COORD.finditer(text):
        value = float(m.group(2))
        if not 0.0 <= value <= 1.0:
            raise PromptError(
                f"coordinate {m.group(0)} is outside [0, 1]: times and box corners are fractions of the "
                "clip / frame (e.g. <t0.25>, <w0.5>)"
            )
    rest = _DEMO_COORD.sub("", text)
    bad = _DEMO_COORD_LIKE.search(rest)
    if bad:
        snippet = rest[bad.start() : bad.start() + 12].split(">")[0]
        raise PromptError(
            f"malformed coordinate {snippet!r}: write <tX>, <wX> or <hX> with X a plain number in [0, 1], "
            "e.g. <t0.25>"
        )


# --------------------------------------------------------------------------------------------------
# benchmark front-end


def _clip01(x: float) -> float | int:
    # Official clip: out-of-range values become the *integers* 0 / 1, in-range ones stay floats,
    # so ``<WIDTH-INPUT1>`` (not ``1.0``) is what the official text holds.
    return x if 0 <= x <= 1 else (0 if x < 0 else 1)


def format_box_in_text(text: str, in_out: str = "INPUT") -> str:
    """Benchmark boxes ``[a, b, c, d]`` -> ``" [<WIDTH-..a><HEIGHT-..b><WIDTH-..c><HEIGHT-..d>]"`` (Q16)."""

    def _sub(m: re.Match[str]) -> str:
        a, b, c, d = (round(_clip01(float(g)), 3) for g in m.groups())
        return f" [<WIDTH-{in_out}{a}><HEIGHT-{in_out}{b}><WIDTH-{in_out}{c}><HEIGHT-{in_out}{d}>]"

    return _BOX.sub(_sub, text)


def format_span_in_text(text: str, in_out: str = "INPUT") -> str:
    """Benchmark spans ``{s, e}`` -> ``" {<TEMP-..s><TEMP-..e>} "``; ``s >= e`` -> ``{<error>}`` (Q16)."""

    def _sub(m: re.Match[str]) -> str:
        s, e = float(m.group(1)), float(m.group(2))
        if s >= e:
            # Official behaviour: the span is replaced by this literal text (and a message printed);
            # the query still runs, without any temporal input.
            return "{<error>}"
        return f" {{<TEMP-{in_out}{round(s, 3)}><TEMP-{in_out}{round(e, 3)}>}} "

    return _SPAN.sub(_sub, text)


def format_float_in_text(text: str, in_out: str = "INPUT") -> str:
    """Benchmark ``Starts in X`` -> ``" Starts in <TEMP-..X> "`` (ELC queries)."""

    def _sub(m: re.Match[str]) -> str:
        return f" Starts in <TEMP-{in_out}{round(float(m.group(1)), 3)}> "

    return _STARTS_IN.sub(_sub, text)


def format_benchmark_text(text: str, in_out: str = "INPUT") -> str:
    """The three benchmark formatters in the official order: boxes, spans, then ``Starts in``."""
    text = format_box_in_text(text, in_out)
    text = format_span_in_text(text, in_out)
    return format_float_in_text(text, in_out)


# --------------------------------------------------------------------------------------------------
# get_variables


def _literal_number(raw: str, key: str) -> float:
    # The literal keeps its Python type, as the official ``eval`` does: a clipped box corner is the int
    # ``1``/``0`` (see ``_clip01``), and result files hold ``1`` there, as the official ones do, not ``1.0``.
    try:
        value = ast.literal_eval(raw.strip()) if raw.strip() else None
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise PromptError(f"cannot read the value of <{key}{raw}>: expected a finite number")
    return value


def separate_token_number(text: str, key: str) -> tuple[str, list[float]]:
    """Strip the values out of every ``<KEYvalue>`` in ``text``, in order of appearance."""
    values: list[float] = []

    def _sub(m: re.Match[str]) -> str:
        values.append(_literal_number(m.group(1), key))
        return f"<{key}>"

    # Official regex ``<KEY(.*?)>``; replacing each match in turn equals its replace-first loop.
    out = re.sub(rf"<{re.escape(key)}(.*?)>", _sub, text)
    return out, values


def get_variables(
    conversations: Iterable[Mapping[str, str | None]],
) -> tuple[list[dict[str, str | None]], dict[str, list[float]]]:
    """Official ``get_variables``: returns new conversations (bare placeholders) and the six lists.

    Lists accumulate over all turns in turn order, and within a turn in text order.
    """
    collected: dict[str, list[float]] = {key: [] for key, _ in PLACEHOLDER_KEYS}
    out: list[dict[str, str | None]] = []
    for con in conversations:
        new = dict(con)
        text = con.get("value")
        if text is not None:
            for key, _ in PLACEHOLDER_KEYS:
                text, values = separate_token_number(text, key)
                collected[key].extend(values)
            new["value"] = text
        out.append(new)
    return out, {name: collected[key] for key, name in PLACEHOLDER_KEYS}


def format_conversations(
    conversations: Iterable[Mapping[str, str | None]], front_end: str = "demo"
) -> tuple[list[dict[str, str | None]], dict[str, list[float]]]:
    """Run one front-end over every turn, then ``get_variables`` (demo: ``format_conversations``)."""
    formatted: list[dict[str, str | None]] = []
    for con in conversations:
        new = dict(con)
        text = con.get("value")
        if text is not None:
            mode = _role_mode(str(con.get("from")))
            if front_end == "demo":
                check_demo_syntax(text)
                new["value"] = format_demo_text(text, mode)
            elif front_end == "benchmark":
                new["value"] = format_benchmark_text(text, mode)
            else:
                raise PromptError(f"unknown coordinate front-end {front_end!r}: use 'demo' or 'benchmark'")
        formatted.append(new)
    return get_variables(formatted)


def format_query(query: str, front_end: str = "demo") -> tuple[str, dict[str, list[float]]]:
    """One human query -> (text with bare placeholders, variables)."""
    convs, variables = format_conversations([{"from": "human", "value": query}], front_end)
    value = convs[0]["value"]
    assert value is not None
    return value, variables
