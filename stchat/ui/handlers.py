"""What the app's buttons do, without Gradio: plain arguments in, a :class:`RunResult` out.

Every handler is total: bad input, a cancel or a failing stage becomes a one-line ``status`` (``✖ …``),
never a traceback. Gradio wiring lives in :mod:`stchat.ui.layout`; keeping it out of here is what lets
the unit tests call these functions directly.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stchat.answer import ParsedAnswer
from stchat.errors import AnswerError, PromptError, StchatError, VideoError
from stchat.processing.prompt import MAX_QUERY_CHARS  # the prompt builder's limit, checked up front
from stchat.ui.model_holder import ModelHolder
from stchat.ui.present import TableRow, hide_paths, table_rows

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

GROUNDING = "spatio-temporal grounding (auto-clip)"
DESCRIBE = "plain description"
MODES = (GROUNDING, DESCRIBE)
# What an empty question in description mode asks (the demo model's caption prompt).
DESCRIBE_QUESTION = "Describe what happens in this video."
PLACEHOLDERS = {
    GROUNDING: "What to find, in a few words, e.g. “the blue ball rolling to the right”",
    DESCRIBE: "Optional question about the video. Leave empty to get a description of it.",
}
HINTS = {
    GROUNDING: "Describe the object or moment; stchat asks the model when and where it is and cuts the clip.",
    DESCRIBE: "Empty = describe the whole video (or the frame range under Advanced options).",
}
# Tasks a video can be grounded with, with what each one answers (shown in the task list).
VIDEO_TASKS = ("stvg", "svg", "elc", "tvg", "tr")
TASK_LABELS = {
    "stvg": "when + where (stvg)",
    "tvg": "when only (tvg)",
    "svg": "where, in a time span you give (svg)",
    "tr": "describe a time span you give (tr)",
    "elc": "event in a region (elc, official question)",
}
SPAN_TASKS = ("svg", "tr")  # their question is about a time span the user gives
DECODINGS = ("greedy", "official")
MAX_ANSWER_FILE_BYTES = 1_000_000
# Status marks: plain symbols (not colour emoji) so they render with any system font.
OK = "✔"
FAIL = "✖"
_DEMO_SPAN = re.compile(r"\{\s*<t(\d*\.?\d+)>\s*,\s*<t(\d*\.?\d+)>\s*\}")


class RunCancelled(StchatError):
    """The user pressed Cancel; raised from the token callback so generation stops at the next token."""


@dataclass
class RunResult:
    """Everything the page shows after a run; ``None`` outputs clear the matching component."""

    status: str
    clip: Path | None = None
    annotated: Path | None = None
    table: list[TableRow] = field(default_factory=list)
    raw_answer: str = ""
    normalised_answer: str = ""
    downloads: list[Path] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.status.startswith(FAIL)


def _noop_progress(fraction: float, desc: str) -> None:
    return None


# --------------------------------------------------------------------------- input checks


def _parse_pair(text: str, number: str) -> tuple[str, str] | None:
    """Two numbers written ``a, b``, ``[a, b]``, ``a-b`` or ``a b``; ``None`` if the text is not that."""
    m = re.fullmatch(rf"\[?\s*({number})\s*(?:,|-|\s)\s*({number})\s*\]?", text)
    return None if m is None else (m.group(1), m.group(2))


def parse_frame_range(text: str | None) -> tuple[int, int] | None:
    """``""`` → whole video; ``"0, 829"``, ``"[0, 829]"`` or ``"0-829"`` → inclusive frame range."""
    text = (text or "").strip()
    if not text:
        return None
    pair = _parse_pair(text, r"\d+")
    if pair is None:
        raise PromptError(f"frame range {text!r} not understood: write it as first, last (e.g. 0, 829)")
    first, last = int(pair[0]), int(pair[1])
    if last < first:
        raise PromptError(f"frame range [{first}, {last}]: the last frame comes before the first")
    return first, last


def check_video(video: str | Path | None, frame_range: tuple[int, int] | None) -> Any:
    """Probe the video (a clear ``VideoError`` if it is missing or unreadable) and check the range fits."""
    if video is None or str(video).strip() == "":
        raise VideoError("no video: upload one or pick an example first")
    if not isinstance(video, (str, Path)):
        raise VideoError(f"no usable video (got {type(video).__name__}): upload one or pick an example")
    path = Path(video)
    if not path.is_file():
        raise VideoError(f"video {path.name} not found (the upload may have expired): upload it again")
    from stchat.video.io import probe

    info = probe(path)
    n = info.frame_count
    if frame_range is not None and frame_range[1] > n - 1:
        raise PromptError(
            f"frame range [{frame_range[0]}, {frame_range[1]}] ends past the video's last frame ({n - 1})"
        )
    return info


def parse_time_span(text: str | None) -> tuple[float, float] | None:
    """``""`` → no span; ``"2, 7"`` or ``"2.5-7"`` → (start, end) in seconds."""
    text = (text or "").strip()
    if not text:
        return None
    pair = _parse_pair(text, r"\d+(?:\.\d+)?")
    if pair is None:
        raise PromptError(f"time span {text!r} not understood: write it as start, end in seconds (e.g. 2, 7)")
    start, end = float(pair[0]), float(pair[1])
    if end <= start:
        raise PromptError(f"time span {start:g}–{end:g} s: the end must come after the start")
    return start, end


def span_frames(video: str | Path, info: Any, split: tuple[int, int] | None,
                span_s: tuple[float, float]) -> tuple[tuple[int, int], tuple[float, float]]:
    """Seconds → the frames showing in that span (inclusive) and the model's time fractions of them.

    The first frame is the one showing at ``start``; the last is the one still showing just before
    ``end`` (ends are exclusive, so "1, 3" at 15 fps is frames 15–44, 1.000 → 3.000 s). Fractions are
    ``(frame − first) / (last − first)`` of the range, rounded to 3 decimals as the official benchmark
    front-end writes input times (docs/official_quirks.md).
    """
    import numpy as np

    from stchat.video.io import frame_times

    if span_s[0] >= info.duration_s:
        ends = f"{info.duration_s:.2f} s"
        raise PromptError(f"time span starts at {span_s[0]:g} s, after the video ends ({ends})")
    times = frame_times(video)
    first, last = split if split is not None else (0, len(times) - 1)
    a = int(np.clip(np.searchsorted(times, span_s[0] + 1e-6, side="right") - 1, first, last))
    b = int(np.clip(np.searchsorted(times, span_s[1] - 1e-6, side="right") - 1, first, last))
    if b < a or span_s[1] <= float(times[first]) or span_s[0] > float(times[last]) + 1.0 / info.fps_float:
        raise PromptError(f"time span {span_s[0]:g}–{span_s[1]:g} s falls outside the chosen frame range")

    def frac(frame: int) -> float:
        return 0.0 if last == first else round((frame - first) / (last - first), 3)

    return (a, b), (frac(a), frac(b))


# Tasks whose question carries a time span the user gives (reference §3.4/3.5: SVG and TR demos).
SPAN_TASKS = ("svg", "tr")
_DEMO_SPAN = re.compile(r"\{\s*<t(\d*\.?\d+)>\s*,\s*<t(\d*\.?\d+)>\s*\}")


def parse_max_new_tokens(value: Any) -> int:
    """The slider's value (a number, or text from the API) as a whole number in [1, 4096]."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not number.is_integer() or not 1 <= number <= 4096:  # NaN and inf fail is_integer()
        raise PromptError(f"max new tokens must be a whole number between 1 and 4096; got {value!r}")
    return int(number)


def check_query(query: str | None) -> str:
    query = (query or "").strip()
    if not query:
        raise PromptError("the question is empty: type what to look for")
    if len(query) > MAX_QUERY_CHARS:
        raise PromptError(f"the question is {len(query)} characters long; keep it under {MAX_QUERY_CHARS}")
    return query


def read_answer_file(path: str | Path | None) -> str:
    """Text of an uploaded answer: a plain text file, or JSON carrying the model's answer text."""
    if path is None:
        return ""
    p = Path(path)
    if not p.is_file():
        raise AnswerError(f"answer file {p.name} not found: upload it again")
    if p.stat().st_size > MAX_ANSWER_FILE_BYTES:
        raise AnswerError(f"answer file {p.name} is larger than {MAX_ANSWER_FILE_BYTES // 1000} kB")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise AnswerError(f"answer file {p.name} is not UTF-8 text") from exc
    if p.suffix.lower() == ".json" or text.lstrip().startswith("{\""):
        return _answer_from_json(text, p.name)
    return text


# Keys under which our own ``ground`` output and hand-written files keep the answer, most raw first.
_ANSWER_KEYS = ("raw_text", "raw_answer", "raw", "answer", "output", "text", "normalized_text",
                "normalised_text")


def _answer_from_json(text: str, name: str) -> str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"answer file {name} is not valid JSON ({exc.msg}, line {exc.lineno})") from exc
    except RecursionError:  # ``[[[[...]]]]`` nested deeper than the JSON decoder recurses
        raise AnswerError(f"answer file {name} is JSON nested too deeply to be a model answer") from None
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        for key in _ANSWER_KEYS:
            if isinstance(data.get(key), str):
                return data[key]
    raise AnswerError(f"answer file {name} has no answer text (expected one of: {', '.join(_ANSWER_KEYS)})")




# --------------------------------------------------------------------------- outputs


def _path_or_none(value: Any) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_file() else None


def result_from_render(outputs: Any, status: str, raw: str, normalised: str) -> RunResult:
    """Turn the pipeline's ``RenderOutputs`` into what the page shows (the table from its typed rows)."""
    clip = _path_or_none(getattr(outputs, "clip", None))
    annotated = _path_or_none(getattr(outputs, "annotated", None))
    files = [_path_or_none(getattr(outputs, name, None)) for name in ("timing_csv", "timing_json")]
    downloads = [p for p in (clip, annotated, *files) if p is not None]
    return RunResult(status, clip, annotated, table_rows(outputs.mapped), raw, normalised, downloads)


def _done_line(outputs: Any) -> str:
    """``✔ Found 2.000 → 7.000 s (5.000 s), frames 50–174, 5 model boxes.``; ``✔ Drew …`` without boxes
    where the task is about boxes (an svg answer with none found nothing)."""
    m = outputs.mapped
    n_boxes = len(m.keyframes)
    moment = (f"{m.start_s:.3f} → {m.end_s:.3f} s ({m.duration_s:.3f} s), "
              f"frames {m.first_frame}–{m.last_frame}")
    if m.task in ("svg", "elc") and n_boxes == 0:
        return f"{FAIL} No boxes in the answer: the model did not locate anything in {moment}."
    boxes = f", {n_boxes} model box{'es' if n_boxes != 1 else ''}" if n_boxes else ""
    return f"{OK} Found {moment}{boxes}."


def _warnings_line(parsed: ParsedAnswer) -> str:
    if not parsed.warnings:
        return ""
    shown = "; ".join(parsed.warnings[:3])
    more = f" (+{len(parsed.warnings) - 3} more)" if len(parsed.warnings) > 3 else ""
    return f"\nNotes on the answer: {shown}{more}"


# --------------------------------------------------------------------------- handlers


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


@guarded
def run_model(
    holder: ModelHolder,
    video: str | Path | None,
    query: str | None,
    mode: str,
    task: str,
    frame_range: str | None,
    decoding: str,
    max_new_tokens: int,
    run_dir: Path,
    progress: Progress = _noop_progress,
    time_span: str | None = None,
    cancel: threading.Event | None = None,
    full: bool = False,
) -> RunResult:
    """The Run button: ground and clip, or describe, depending on ``mode``.

    Description mode uses only the question (empty: :data:`DESCRIBE_QUESTION`), never the task or span.
    ``time_span`` ("start, end" seconds) is the span an SVG or TR question is about; for TR the question
    is the task's fixed one and the clip is exactly that span. ``cancel`` stops the run at the next
    token or frame (the model is free for the next user right after). ``full`` also draws the whole video.
    """
    if mode not in MODES:
        raise PromptError(f"unknown mode {mode!r}")
    if decoding not in DECODINGS:
        raise PromptError(f"unknown decoding {decoding!r}: choose one of {', '.join(DECODINGS)}")
    progress = _cancellable(progress, cancel)
    split = parse_frame_range(frame_range)
    if mode == DESCRIBE:
        question = (query or "").strip() or DESCRIBE_QUESTION
        check_query(question)
        max_new_tokens = parse_max_new_tokens(max_new_tokens)
        progress(0.02, "Checking the video")
        check_video(video, split)
        return _describe(holder, str(video), question, split, decoding, max_new_tokens, progress)
    if task not in VIDEO_TASKS:
        raise PromptError(f"unknown task {task!r}: choose one of {', '.join(VIDEO_TASKS)}")
    span_s = parse_time_span(time_span)
    max_new_tokens = parse_max_new_tokens(max_new_tokens)
    progress(0.02, "Checking the video")
    info = check_video(video, split)
    frames: tuple[int, int] | None = None  # the asked span's exact frames (the clip when the answer has none)
    span: tuple[float, float] | None = None  # the question's span, as time fractions of the range
    span_arg: tuple[float, float] | None = None  # ... when the question is built from the template
    if task in SPAN_TASKS:
        typed = _DEMO_SPAN.search(query or "")
        if typed is not None and span_s is not None:
            raise PromptError("give the time span once: either in the question or in “Time span”")
        if typed is not None:  # the official demo syntax typed into the question: sent verbatim
            span = (float(typed.group(1)), float(typed.group(2)))
            query = check_query(query)
        elif span_s is not None:
            frames, span = span_frames(str(video), info, split, span_s)
            span_arg = span
            query = "" if task == "tr" else check_query(query)  # TR asks a fixed question about the span
        else:
            raise PromptError(f"task {task} is about a time span: fill in “Time span (s)”")
    else:
        if span_s is not None:
            raise PromptError(f"a time span is only used by tasks svg and tr; clear it for {task}")
        query = check_query(query)
    chat = holder.get()
    progress(0.1, "Sampling 100 frames and encoding them")
    result = chat.ground(str(video), query, task=task, split=split, max_new_tokens=max_new_tokens,
                         decoding=decoding, on_token=_token_progress(progress, max_new_tokens, 0.6),
                         span=span_arg)
    parsed: ParsedAnswer = result.parsed
    raw, normalised = result.raw_text, result.normalized_text
    segment = None
    if span is not None and parsed.span is None:
        # The answer is about the span the question gave (TR: a description of it; SVG: boxes in it),
        # so that span is the moment to cut even when the answer does not repeat it.
        note = "the clip is the span you asked about"
        parsed = dataclasses.replace(parsed, span=span, warnings=[*parsed.warnings, note])
        segment = frames
    if not parsed.ok:
        return RunResult(
            status=f"{FAIL} the model's answer has nothing to show for task {task} (see the raw answer below)"
            + _warnings_line(parsed),
            raw_answer=raw,
            normalised_answer=normalised,
        )
    outputs = _render(video, parsed, task, split, run_dir, query, progress, 0.6, segment, full)
    return result_from_render(outputs, _done_line(outputs) + _warnings_line(parsed), raw, normalised)


def _token_progress(progress: Progress, max_new_tokens: int, gen_end: float) -> Callable[[str], None]:
    """Moves the bar with each streamed piece up to ``gen_end``; checks Cancel at every token."""
    pieces = [0]

    def on_token(_piece: str) -> None:
        pieces[0] += 1
        done = min(1.0, pieces[0] / max_new_tokens)
        progress(0.1 + (gen_end - 0.1) * done, f"Generating the answer ({pieces[0]} tokens)")

    return on_token


def _describe(holder: ModelHolder, video: str, question: str, split: tuple[int, int] | None, decoding: str,
              max_new_tokens: int, progress: Progress) -> RunResult:
    chat = holder.get()
    progress(0.1, "Sampling 100 frames and encoding them")
    text = chat.ask(video, question, split=split, max_new_tokens=max_new_tokens, decoding=decoding,
                    on_token=_token_progress(progress, max_new_tokens, 1.0))
    progress(1.0, "Done")
    return RunResult(status=f"{OK} Described.", raw_answer=text, normalised_answer=text)


@guarded
def visualise_answer(
    video: str | Path | None,
    answer_text: str | None,
    answer_file: str | Path | None,
    task: str,
    frame_range: str | None,
    run_dir: Path,
    progress: Progress = _noop_progress,
    full: bool = False,
) -> RunResult:
    """The "Visualise an answer" path: draw a pasted/uploaded model answer on the video; no model needed."""
    split = parse_frame_range(frame_range)
    progress(0.02, "Checking the video")
    check_video(video, split)
    if task not in VIDEO_TASKS:
        raise PromptError(f"unknown task {task!r}: choose one of {', '.join(VIDEO_TASKS)}")
    text = (answer_text or "").strip() or read_answer_file(answer_file).strip()
    if not text:
        raise AnswerError("no answer: paste the model's answer text or upload an answer file")
    from stchat.parse import normalize_answer_text, parse_answer

    parsed = parse_answer(text, task)
    normalised = normalize_answer_text(text)[0]
    if not parsed.ok:
        raise AnswerError(
            f"the answer has nothing to draw for task {task}: "
            + ("; ".join(parsed.warnings[:3]) or "no timestamps or boxes found")
        )
    outputs = _render(video, parsed, task, split, run_dir, None, progress, 0.1, None, full)
    return result_from_render(outputs, _done_line(outputs) + _warnings_line(parsed), text, normalised)


def _render(video: str | Path | None, parsed: ParsedAnswer, task: str, split: tuple[int, int] | None,
            run_dir: Path, query: str | None, progress: Progress, start: float,
            segment: tuple[int, int] | None, full: bool) -> Any:
    """Pipeline stages (map → draw → clip → timing) with the page's progress bar spanning [start, 1]."""
    from stchat.pipeline import render_answer

    def stage_progress(fraction: float, desc: str = "") -> None:
        progress(start + (1.0 - start) * max(0.0, min(1.0, float(fraction))), str(desc))

    progress(start, "Rendering")
    return render_answer(Path(str(video)), parsed, task=task, split=split, out_dir=run_dir,
                         query=query or None, progress=stage_progress, segment=segment,
                         write_annotated=full)
