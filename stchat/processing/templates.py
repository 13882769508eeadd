"""The question template of each built-in task (official demo wording), one function per task.

The wording is the official ``demo/README.md`` queries and the benchmark dataset templates
(docs/official_quirks.md, "Prompt wording"); the model answers in the task's output format only when
asked this way. Coordinates are written in the demo syntax (``<t0.25>``, ``<w0.5>``, ``<h0.75>``), which
``build_prompt`` turns into placeholders. Where the official code picks a template at random (Q17, Q18)
the first one is used, so prompts are reproducible.

Every template takes one :class:`TaskArgs` and returns the question, raising ``PromptError`` on bad input.
The table that says which template belongs to which task is :mod:`stchat.tasks`; this module is a leaf
(it imports no other stchat module but the errors), so the table can import it.

Golden cases built with these templates: ``video_stvg`` (stvg), ``video_svg`` (svg), ``video_elc`` (elc),
``image_rec`` (rec) and ``image_reg`` (reg).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from stchat.errors import PromptError

STVG_SUFFIX = (
    "Please firstly give the timestamps, and then give the spatial bounding box corresponding to each "
    "timestamp in the time period."
)
SVG_SUFFIX = "Please give the spatial bounding box corresponding to each timestamp in the time period."
ELC_SUFFIX = (
    "Please firstly give the end timestamp, then give the event associated with the object/subject, "
    "finally give the spatial bounding box corresponding to each timestamp in the time period."
)
LOCATE_IN_VIDEO = "Please describe the location of the corresponding subject/object in this video."
TVG_TEMPLATE = (
    "Give you a textual query: '<event>'. When does the described content occur in the video? "
    "Please return the start and end timestamps."
)
DGC_QUESTION = (
    "Can you provide a thorough description of this image? "
    "Please output with interleaved bounding boxes for the corresponding phrases."
)


@dataclass(frozen=True)
class TaskArgs:
    """What a template may use: the user's words and the coordinates, all as fractions in [0, 1]."""

    task: str
    query: str = ""
    span: Sequence[float] | None = None
    start: float | None = None
    region: Sequence[float] | None = None


def num(value: float, what: str) -> str:
    """A coordinate as the official front-ends write it (three decimals), after checking it is in [0, 1]."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PromptError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise PromptError(f"{what} must be a fraction in [0, 1], got {value!r}")
    # Three decimals, as the official front-ends round; ``g`` keeps "0.591" and writes 0 as "0".
    return f"{round(v, 3):g}"


def span_text(args: TaskArgs) -> tuple[str, str]:
    span = args.span
    if span is None or len(span) != 2:
        raise PromptError(f"task {args.task!r} needs a time span (start, end) as fractions of the clip")
    s, e = num(span[0], "span start"), num(span[1], "span end")
    if float(s) >= float(e):
        raise PromptError(f"the span start ({s}) must be before its end ({e})")
    return s, e


def region_text(args: TaskArgs) -> tuple[str, str, str, str]:
    region = args.region
    if region is None or len(region) != 4:
        raise PromptError(f"task {args.task!r} needs a region (x1, y1, x2, y2) as fractions of the frame")
    x1, y1, x2, y2 = (num(v, n) for v, n in zip(region, ("x1", "y1", "x2", "y2"), strict=True))
    if float(x1) >= float(x2) or float(y1) >= float(y2):
        raise PromptError(f"the region [{x1}, {y1}, {x2}, {y2}] is empty: need x1 < x2 and y1 < y2")
    return x1, y1, x2, y2


def phrase_text(args: TaskArgs) -> str:
    """The user's description, without the trailing punctuation the templates add themselves."""
    text = " ".join(args.query.split()).rstrip(" .?!")
    if not text:
        raise PromptError(f"task {args.task!r} needs a description of what to find")
    return text


def stvg(args: TaskArgs) -> str:
    return (
        f"At which time interval in the video can we see {phrase_text(args)} occurring? "
        f"{LOCATE_IN_VIDEO}{STVG_SUFFIX}"
    )


def svg(args: TaskArgs) -> str:
    s, e = span_text(args)
    question = " ".join(args.query.split())
    if not question:
        raise PromptError("task 'svg' needs a question about the subject, e.g. 'who holds the bat?'")
    if question[-1] not in ".?!":
        question += "?"
    return f"Between {{<t{s}>,<t{e}>}}, {question} {LOCATE_IN_VIDEO}{SVG_SUFFIX}"


def elc(args: TaskArgs) -> str:
    if args.start is None:
        raise PromptError("task 'elc' needs the event start time as a fraction of the clip")
    t = num(args.start, "start")
    x1, y1, x2, y2 = region_text(args)
    return (
        f"Starts in <t{t}>, what happened about the subject/object within the specified region "
        f"[<w{x1}>, <h{y1}>, <w{x2}>, <h{y2}>]? Where is the corresponding subject/object located?"
        f"{ELC_SUFFIX}"
    )


def tvg(args: TaskArgs) -> str:
    # The official Charades-STA caption clean-up (strip dots, then spaces, lower-case), after first
    # trimming outer whitespace, which a typed query has and a benchmark caption does not.
    event = args.query.strip().strip(".").strip(" ").lower()
    event = " ".join(event.split())
    if not event:
        raise PromptError("task 'tvg' needs a description of the moment to find")
    return TVG_TEMPLATE.replace("<event>", event)


def tr(args: TaskArgs) -> str:
    s, e = span_text(args)
    return f"Describe what took place during the period {{<t{s}>,<t{e}>}} in the video."


def rec(args: TaskArgs) -> str:
    return f"Please describe the location of {phrase_text(args)} in this image."


def reg(args: TaskArgs) -> str:
    x1, y1, x2, y2 = region_text(args)
    box = f"[<w{x1}>,<h{y1}>,<w{x2}>,<h{y2}>]"
    return f"What object can be observed within the region {box} in the image?"


def dgc(args: TaskArgs) -> str:
    return DGC_QUESTION


def caption(args: TaskArgs) -> str:
    question = args.query.strip()  # a free question: the user's own words
    if not question:
        raise PromptError("ask a question (the query is empty)")
    return question
