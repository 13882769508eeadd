"""What the app's buttons do, without Gradio: plain arguments in, a :class:`RunResult` out.

Every handler is total: bad input, a cancel or a failing stage becomes a one-line ``status`` (``✖ …``),
never a traceback. Inputs are validated once, by :class:`stchat.request.GroundingRequest` (the same
rules and limits as the CLI); the page's own work is only what a page adds: the modes, Cancel, the
exact frames of a span given in seconds, and the status line. Gradio wiring lives in
:mod:`stchat.ui.layout`; keeping it out of here is what lets the unit tests call these functions directly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stchat.errors import AnswerError, PromptError, StchatError, VideoError
from stchat.request import (
    GroundingRequest,
    Timeline,
    TimeSpan,
    answer_text,
    media_context,
    parse_frame_range,
    read_answer_file,
)
from stchat.tasks import find_task, get_task, video_tasks
from stchat.ui.model_holder import ModelHolder
from stchat.ui.present import FAIL, OK, RunResult, hide_paths, shown, with_notes

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

GROUNDING = "spatio-temporal grounding (auto-clip)"
DESCRIBE = "plain description"
MODES = (GROUNDING, DESCRIBE)
# What an empty question in description mode asks (the demo model's caption prompt).
DESCRIBE_QUESTION = "Describe what happens in this video."
PLACEHOLDERS = {
    GROUNDING: "What to find, in a few words, e.g. “the blue ball moving right”",
    DESCRIBE: "Optional question about the video. Leave empty to get a description of it.",
}
HINTS = {
    GROUNDING: "Describe the object or moment; stchat asks the model when and where it is and cuts the clip.",
    DESCRIBE: "Empty = describe the whole video (or the frame range set in the advanced options).",
}


def task_choices() -> list[tuple[str, str]]:
    """The task list, read from the task table when the page is built (a task added later shows up)."""
    return [(f"{get_task(t).title} ({t})", t) for t in video_tasks()]


class RunCancelled(StchatError):
    """The user pressed Cancel; raised from the token callback so generation stops at the next token."""


def _noop_progress(fraction: float, desc: str) -> None:
    return None


def guarded(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
    """Run a handler so that any failure becomes a ``✖`` status line instead of a traceback.

    Messages go through :func:`hide_paths`: an error naming a server folder shows only the file name.
    """

    def wrapper(*args: Any, **kwargs: Any) -> RunResult:
        try:
            return fn(*args, **kwargs)
        except RunCancelled:
            return RunResult(status=f"{FAIL} Cancelled.")
        except StchatError as exc:
            return RunResult(status=f"{FAIL} {hide_paths(str(exc))}")
        except Exception as exc:  # a bug, not bad input: keep the traceback for the server log only
            log.exception("handler %s failed", fn.__name__)
            first = hide_paths((str(exc).strip().splitlines() or [""])[0][:200])
            return RunResult(
                status=f"{FAIL} internal error ({type(exc).__name__}: {first}); details are in the server log"
            )

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _cancellable(progress: Progress, cancel: threading.Event | None) -> Progress:
    def report(fraction: float, desc: str) -> None:
        if cancel is not None and cancel.is_set():
            raise RunCancelled("cancelled")
        progress(fraction, desc)

    return report


def _video(video: str | Path | None) -> str:
    if video is None or str(video).strip() == "":
        raise VideoError("no video: upload one or pick an example first")
    if not isinstance(video, (str, Path)):
        raise VideoError(f"no usable video (got {type(video).__name__}): upload one or pick an example")
    if not Path(video).is_file():
        raise VideoError(f"video {Path(video).name} not found (the upload may have expired): upload it again")
    return str(video)


def span_frames(timeline: Timeline, span: TimeSpan) -> tuple[int, int]:
    """The frames showing during a span in seconds (inclusive): the one showing at ``start`` through the
    one still showing just before ``end`` (ends are exclusive), so "1, 3" at 15 fps is frames 15–44,
    1.000 → 3.000 s. The model's time tokens only reach the 100 sampled frames; the clip need not."""
    t = timeline.times
    a = int(np.clip(np.searchsorted(t, span.start + 1e-6, side="right") - 1, timeline.first, timeline.last))
    b = int(np.clip(np.searchsorted(t, span.end - 1e-6, side="right") - 1, timeline.first, timeline.last))
    return a, max(a, b)


@guarded
def run_model(
    holder: ModelHolder,
    video: str | Path | None,
    query: str | None,
    mode: str,
    task: str,
    frame_range: str | None,
    decoding: str,
    max_new_tokens: Any,
    run_dir: Path,
    progress: Progress = _noop_progress,
    time_span: str | None = None,
    cancel: threading.Event | None = None,
    full: bool = False,
) -> RunResult:
    """The Run button: ground and clip, or describe, depending on ``mode``.

    Description mode uses only the question (empty: :data:`DESCRIBE_QUESTION`), never the task or span.
    ``time_span`` ("start, end" seconds) is the span an SVG or TR question is about; the clip is then
    exactly that span. ``cancel`` stops the run at the next token or frame (the model is free for the next
    user right after). ``full`` also draws the whole video.
    """
    if mode not in MODES:
        raise PromptError(f"unknown mode {mode!r}")
    progress = _cancellable(progress, cancel)
    path, split = _video(video), parse_frame_range(frame_range)
    text = (query or "").strip()
    if mode == DESCRIBE:
        request = GroundingRequest(path, task="caption", query=text or DESCRIBE_QUESTION, split=split,
                                   max_new_tokens=max_new_tokens, decoding=decoding)
    else:
        spec = find_task(task)
        if spec is None or not spec.is_video:
            raise PromptError(f"unknown task {task!r}: choose one of {', '.join(video_tasks())}")
        span = TimeSpan.parse_text(time_span, "s")
        if spec.needs_span and span is None and "<t" not in text:
            raise PromptError(f"task {task} is about a time span: fill in “Time span (s)”")
        request = GroundingRequest(path, task=task, query=text if spec.takes_text or span is None else "",
                                   span=span, split=split, max_new_tokens=max_new_tokens, decoding=decoding)
    progress(0.02, "Checking the video")
    context = media_context(path, split)
    request.question(context.timeline, context.size)  # the whole question checks out before the model loads
    notes = [w for w in (context.info.warning() if context.info else None,) if w]
    chat = holder.get()
    progress(0.1, "Sampling 100 frames and encoding them")
    gen_end = 1.0 if mode == DESCRIBE else 0.6
    result = chat.answer(request, on_token=_token_progress(progress, request.max_new_tokens, gen_end, cancel))
    if mode == DESCRIBE:
        progress(1.0, "Done")
        return RunResult(with_notes(f"{OK} Described.", notes), raw_answer=result.normalized_text,
                         normalised_answer=result.normalized_text)
    answer = result.answer  # the asked span filled in where the task falls back to it
    notes += answer.warnings[:3]
    if not answer.ok:
        return RunResult(with_notes(f"{FAIL} the model's answer has nothing to show for task {task} "
                                     "(see the raw answer below)", notes),
                         raw_answer=result.raw_text, normalised_answer=result.normalized_text)
    segment = None
    if request.span is not None and result.parsed.span is None and context.timeline is not None:
        segment = span_frames(context.timeline, request.span)  # the clip is exactly the asked seconds
    outputs = _render(result, run_dir, progress, 0.6, segment, full, text or None)
    return shown(outputs, notes, result.raw_text, result.normalized_text)


def _token_progress(progress: Progress, max_new_tokens: int, gen_end: float,
                    cancel: threading.Event | None) -> Callable[[str], None]:
    """Checks Cancel at every token; moves the bar (up to ``gen_end``) at most 5 times a second, so a
    fast model does not flood the page with updates."""
    state = {"pieces": 0, "last": 0.0}

    def on_token(_piece: str) -> None:
        if cancel is not None and cancel.is_set():
            raise RunCancelled("cancelled")
        state["pieces"] += 1
        now = time.monotonic()
        if now - state["last"] >= 0.2:
            state["last"] = now
            done = min(1.0, state["pieces"] / max_new_tokens)
            progress(0.1 + (gen_end - 0.1) * done, f"Generating the answer ({state['pieces']} tokens)")

    return on_token


@guarded
def visualise_answer(
    video: str | Path | None,
    answer: str | None,
    answer_file: str | Path | None,
    task: str,
    frame_range: str | None,
    run_dir: Path,
    progress: Progress = _noop_progress,
    full: bool = False,
) -> RunResult:
    """The "Visualise an answer" path: draw a pasted/uploaded model answer on the video; no model needed."""
    path, split = _video(video), parse_frame_range(frame_range)
    progress(0.02, "Checking the video")
    context = media_context(path, split)
    if find_task(task) is None or not get_task(task).is_video:
        raise PromptError(f"unknown task {task!r}: choose one of {', '.join(video_tasks())}")
    text = (answer or "").strip()
    if not text and answer_file is not None:
        text = answer_text(read_answer_file(answer_file)).strip()
    if not text:
        raise AnswerError("no answer: paste the model's answer text or upload an answer file")
    from stchat.parse import result_from_text

    result = result_from_text(text, task, media=path, split=split, video_info=context.info)
    if not result.answer.ok:
        why = "; ".join(result.answer.warnings[:3]) or "no timestamps or boxes found"
        raise AnswerError(f"the answer has nothing to draw for task {task}: {why}")
    notes = [w for w in (context.info.warning() if context.info else None,) if w]
    outputs = _render(result, run_dir, progress, 0.1, None, full, None)
    return shown(outputs, notes + result.answer.warnings[:3], text, result.normalized_text)


def _render(result: Any, run_dir: Path, progress: Progress, start: float, segment: tuple[int, int] | None,
            full: bool, label: str | None) -> Any:
    """The renderer (clip, optional full video, timing, exports) with the bar spanning [start, 1]."""
    from stchat.pipeline import render_answer

    def stage_progress(fraction: float, desc: str = "") -> None:
        progress(start + (1.0 - start) * max(0.0, min(1.0, float(fraction))), str(desc))

    progress(start, "Rendering")
    return render_answer(result, run_dir, full=full, progress=stage_progress, segment=segment, label=label)
