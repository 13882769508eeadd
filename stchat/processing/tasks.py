"""Task + user words -> the question text the model was trained on (official demo wording).

The templates themselves are in :mod:`stchat.processing.templates`; which one serves which task, and
whether a task takes the user's words at all, is in the task table :mod:`stchat.tasks`. This module
applies them: :func:`task_query` always builds the task's question, :func:`compose_query` decides
whether the user typed a full question or a description to wrap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from stchat.errors import PromptError
from stchat.processing.templates import TaskArgs
from stchat.tasks import get_task


def task_modality(task: str) -> str | None:
    """``"video"`` / ``"image"`` for the grounding tasks; ``None`` when either works (``caption``)."""
    return get_task(task).modality


def task_query(
    task: str,
    query: str = "",
    *,
    span: Sequence[float] | None = None,
    start: float | None = None,
    region: Sequence[float] | None = None,
) -> str:
    """The official-style question for ``task`` (see module doc); raises ``PromptError`` on bad input."""
    spec = get_task(task)
    if not isinstance(query, str):
        raise PromptError(f"the query must be text, got {type(query).__name__}")
    if not spec.takes_text and query.strip():
        raise PromptError(
            f"task {spec.name!r} asks a fixed question and takes no description; leave the query empty "
            "(or use task 'caption' to ask your own question)"
        )
    return spec.template(TaskArgs(spec.name, query, span, start, region))


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

    Rules, in order: a task with no fixed wording (``caption``) -> the query as is; coordinates passed
    as arguments, or an empty query -> ``task_query``; a query that already carries demo coordinates
    (``<t0.2>``), a question mark or the task's official instruction sentence -> as is (the official
    demo sends what the user typed); otherwise the query is a description (``"a red square moving
    right"``) and the tasks that wrap descriptions (STVG, TVG, REC) put it in their official template.
    """
    spec = get_task(task)
    if not isinstance(query, str):
        raise PromptError(f"the query must be text, got {type(query).__name__}")
    if spec.modality is None:  # a free question (caption): the user's words are the question
        return task_query(spec.name, query)
    if span is not None or start is not None or region is not None or not query.strip():
        return task_query(spec.name, query, span=span, start=start, region=region)
    stripped = query.strip()
    full = (
        "?" in stripped
        or _DEMO_COORDINATE.search(stripped) is not None
        or any(m in stripped for m in spec.markers)
    )
    if full or not spec.wraps_description:
        return query  # verbatim, outer spaces included: the official demo tokenises what was typed
    return task_query(spec.name, stripped)

