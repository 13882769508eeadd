"""Task + user words -> the question text the model was trained on (official demo wording).

The wording is the official ``demo/README.md`` queries and the benchmark dataset templates (reference
§3.4-3.5); the model answers in the task's output format only when asked this way. Coordinates are
written in the demo syntax (``<t0.25>``, ``<w0.5>``, ``<h0.75>``), which ``build_prompt`` turns into
placeholders. Where the official code picks a template at random (Q17, Q18) the first one is used, so
prompts are reproducible.

Golden cases built with these templates: ``video_stvg`` (stvg), ``video_svg`` (svg), ``video_elc`` (elc),
``image_rec`` (rec) and ``image_reg`` (reg).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

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

VIDEO_TASKS = ("stvg", "svg", "elc", "tvg", "tr")
IMAGE_TASKS = ("rec", "reg", "dgc")
ALL_TASKS = VIDEO_TASKS + IMAGE_TASKS + ("caption",)
# Tasks whose question is fixed apart from coordinates: the user's words have nowhere to go.
_NO_TEXT_TASKS = ("elc", "tr", "reg", "dgc")


def task_modality(task: str) -> str | None:
    """``"video"`` / ``"image"`` for the grounding tasks; ``None`` for ``caption`` (either works)."""
    if task in VIDEO_TASKS:
        return "video"
    if task in IMAGE_TASKS:
        return "image"
    return None


def _num(value: float, what: str) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise PromptError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= 1.0:
        raise PromptError(f"{what} must be a fraction in [0, 1], got {value!r}")
    # Three decimals, as the official front-ends round; ``g`` keeps "0.591" and writes 0 as "0".
    return f"{round(v, 3):g}"


def _span(span: Sequence[float] | None, task: str) -> tuple[str, str]:
    if span is None or len(span) != 2:
        raise PromptError(f"task {task!r} needs a time span (start, end) as fractions of the clip")
    s, e = _num(span[0], "span start"), _num(span[1], "span end")
    if float(s) >= float(e):
        raise PromptError(f"the span start ({s}) must be before its end ({e})")
    return s, e


def _region(region: Sequence[float] | None, task: str) -> tuple[str, str, str, str]:
    if region is None or len(region) != 4:
        raise PromptError(f"task {task!r} needs a region (x1, y1, x2, y2) as fractions of the frame")
    x1, y1, x2, y2 = (_num(v, n) for v, n in zip(region, ("x1", "y1", "x2", "y2"), strict=True))
    if float(x1) >= float(x2) or float(y1) >= float(y2):
        raise PromptError(f"the region [{x1}, {y1}, {x2}, {y2}] is empty: need x1 < x2 and y1 < y2")
    return x1, y1, x2, y2


def _phrase(query: str, task: str) -> str:
    """The user's description, without the trailing punctuation the templates add themselves."""
    text = " ".join(query.split()).rstrip(" .?!")
    if not text:
        raise PromptError(f"task {task!r} needs a description of what to find")
    return text


def task_query(
    task: str,
    query: str = "",
    *,
    span: Sequence[float] | None = None,
    start: float | None = None,
    region: Sequence[float] | None = None,
) -> str:
    """The official-style question for ``task`` (see module doc); raises ``PromptError`` on bad input."""
    task = task.lower()
    if task not in ALL_TASKS:
        raise PromptError(f"unknown task {task!r}: choose one of {', '.join(ALL_TASKS)}")
    if not isinstance(query, str):
        raise PromptError(f"the query must be text, got {type(query).__name__}")
    if task in _NO_TEXT_TASKS and query.strip():
        raise PromptError(
            f"task {task!r} asks a fixed question and takes no description; leave the query empty "
            "(or use task 'caption' to ask your own question)"
        )

    if task == "stvg":
        return (
            f"At which time interval in the video can we see {_phrase(query, task)} occurring? "
            f"{LOCATE_IN_VIDEO}{STVG_SUFFIX}"
        )
    if task == "svg":
        s, e = _span(span, task)
        question = " ".join(query.split())
        if not question:
            raise PromptError("task 'svg' needs a question about the subject, e.g. 'who holds the bat?'")
        if question[-1] not in ".?!":
            question += "?"
        return f"Between {{<t{s}>,<t{e}>}}, {question} {LOCATE_IN_VIDEO}{SVG_SUFFIX}"
    if task == "elc":
        if start is None:
            raise PromptError("task 'elc' needs the event start time as a fraction of the clip")
        t = _num(start, "start")
        x1, y1, x2, y2 = _region(region, task)
        return (
            f"Starts in <t{t}>, what happened about the subject/object within the specified region "
            f"[<w{x1}>, <h{y1}>, <w{x2}>, <h{y2}>]? Where is the corresponding subject/object located?"
            f"{ELC_SUFFIX}"
        )
    if task == "tvg":
        # The official Charades-STA caption clean-up (strip dots, then spaces, lower-case), after first
        # trimming outer whitespace, which a typed query has and a benchmark caption does not.
        event = query.strip().strip(".").strip(" ").lower()
        event = " ".join(event.split())
        if not event:
            raise PromptError("task 'tvg' needs a description of the moment to find")
        return TVG_TEMPLATE.replace("<event>", event)
    if task == "tr":
        s, e = _span(span, task)
        return f"Describe what took place during the period {{<t{s}>,<t{e}>}} in the video."
    if task == "rec":
        return f"Please describe the location of {_phrase(query, task)} in this image."
    if task == "reg":
        x1, y1, x2, y2 = _region(region, task)
        box = f"[<w{x1}>,<h{y1}>,<w{x2}>,<h{y2}>]"
        return f"What object can be observed within the region {box} in the image?"
    if task == "dgc":
        return DGC_QUESTION
    question = query.strip()  # caption / free question: the user's own words
    if not question:
        raise PromptError("ask a question (the query is empty)")
    return question


# The official instruction sentence of each task: a query that already contains it is a full question.
_MARKERS = {
    "stvg": (STVG_SUFFIX,),
    "svg": (SVG_SUFFIX,),
    "elc": (ELC_SUFFIX,),
    "tvg": ("Give you a textual query:",),
    "rec": ("in this image",),
}
_DEMO_COORDINATE = re.compile(r"<[twh]\d")


def compose_query(
    task: str,
    query: str,
    *,
    span: Sequence[float] | None = None,
    start: float | None = None,
    region: Sequence[float] | None = None,
) -> str:
    """The question to send for ``task``: the user's full question, or ``task_query`` of their words.

    Rules, in order: ``caption`` -> the query as is; coordinates passed as arguments, or an empty
    query -> ``task_query``; a query that already carries demo coordinates (``<t0.2>``), a question
    mark or the task's official instruction sentence -> as is (the official demo sends what the user
    typed); otherwise the query is a description (``"a red square moving right"``) and STVG / TVG / REC
    wrap it in their official template.
    """
    task = task.lower()
    if not isinstance(query, str):
        raise PromptError(f"the query must be text, got {type(query).__name__}")
    if task == "caption":
        return task_query(task, query)
    if span is not None or start is not None or region is not None or not query.strip():
        return task_query(task, query, span=span, start=start, region=region)
    stripped = query.strip()
    full = (
        "?" in stripped
        or _DEMO_COORDINATE.search(stripped) is not None
        or any(m in stripped for m in _MARKERS.get(task, ()))
    )
    if full or task not in ("stvg", "tvg", "rec"):
        return query  # verbatim, outer spaces included: the official demo tokenises what was typed
    return task_query(task, stripped)
