"""stchat's friendly training format: plain normalised coordinates in the text -> official placeholders.

Human turns go through the official *benchmark* front-end (``stchat.processing.coords``, the very code
the inference prompt builder runs): ``[x1, y1, x2, y2]`` boxes, ``{s, e}`` spans and ``Starts in t``
become ``*-INPUT`` placeholders, with the benchmark's spacing (Q16) so that training prompts tokenise as
inference prompts do.

Assistant turns are written in the shape the released model emits (docs/official_quirks.md#answer-syntax),
with ``*-OUTPUT``
placeholders: ``{s,e}`` -> ``{<TEMP-OUTPUT><TEMP-OUTPUT>}``, ``[a,b,c,d]`` ->
``[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]`` (no commas, no spaces), a timestamped
box ``0.25: [..]`` -> ``<TEMP-OUTPUT>: [..]`` and ``Ends in 0.9`` -> ``Ends in <TEMP-OUTPUT>``. Values
are clipped to [0, 1] (the objective clips anyway) and kept at full precision: two-hot targets can
express positions between grid points. Finally the shared ``get_variables`` strips the values out in
order of appearance, over all turns.
"""

from __future__ import annotations

import re

from stchat.errors import PromptError
from stchat.processing.coords import format_benchmark_text, get_variables
from stchat.train.objective import TrainDataError

_NUM = r"(\d+(?:\.\d+)?)"
_BOX = re.compile(r"\[\s*" + r",\s*".join([_NUM] * 4) + r"\s*\]")
_SPAN = re.compile(r"\{\s*" + _NUM + r"\s*,\s*" + _NUM + r"\s*\}")
_PAIR_TIME = re.compile(_NUM + r"(\s*:\s*\[)")
_ENDS_IN = re.compile(r"Ends in " + _NUM)


def _v(raw: str) -> float:
    return min(max(float(raw), 0.0), 1.0)


def format_answer(text: str) -> str:
    """Assistant text with plain coordinates -> text with valued ``*-OUTPUT`` placeholders."""

    def _box(m: re.Match[str]) -> str:
        a, b, c, d = (_v(g) for g in m.groups())
        if c < a or d < b:
            raise TrainDataError(f"box {m.group(0)} has x2 < x1 or y2 < y1")
        return f"[<WIDTH-OUTPUT{a}><HEIGHT-OUTPUT{b}><WIDTH-OUTPUT{c}><HEIGHT-OUTPUT{d}>]"

    def _span(m: re.Match[str]) -> str:
        s, e = _v(m.group(1)), _v(m.group(2))
        if s > e:
            raise TrainDataError(f"span {m.group(0)} ends before it starts")
        return f"{{<TEMP-OUTPUT{s}><TEMP-OUTPUT{e}>}}"

    # Boxes first: their inner numbers must not be read as pair times or spans.
    text = _BOX.sub(_box, text)
    text = _PAIR_TIME.sub(lambda m: f"<TEMP-OUTPUT{_v(m.group(1))}>{m.group(2)}", text)
    text = _SPAN.sub(_span, text)
    return _ENDS_IN.sub(lambda m: f"Ends in <TEMP-OUTPUT{_v(m.group(1))}>", text)


def friendly_to_official(conversations: list[dict[str, str]]
                         ) -> tuple[list[dict[str, str]], dict[str, list[float]]]:
    """Conversations in stchat format -> (official conversations with bare placeholders, variables)."""
    if any(re.search(r"<(?:TEMP|HEIGHT|WIDTH)-(?:INPUT|OUTPUT)", m["value"]) for m in conversations):
        raise TrainDataError("stchat-format samples hold plain numbers, not <TEMP-INPUT>-style placeholders")
    formatted = []
    for m in conversations:
        gpt = m["from"] == "gpt"
        value = format_answer(m["value"]) if gpt else format_benchmark_text(m["value"], "INPUT")
        if not gpt and value.count("{<error>}") > m["value"].count("{<error>}"):
            # The benchmark front-end turns a span with start >= end into this literal (Q16): the sample
            # would train a question that carries no time at all.
            bad = [x.group(0) for x in _SPAN.finditer(m["value"]) if float(x.group(1)) >= float(x.group(2))]
            raise TrainDataError(f"span {bad[0] if bad else ''} in a question must start before it ends "
                                 "(the official front-end would replace it with {<error>})")
        formatted.append({"from": m["from"], "value": value})
    try:
        convs, variables = get_variables(formatted)
    except PromptError as exc:
        raise TrainDataError(str(exc)) from None
    return [{"from": c["from"], "value": str(c["value"])} for c in convs], variables
