"""What the app's buttons do, without Gradio: plain arguments in, a :class:`RunResult` out.

Every handler is total: bad input or a failing stage becomes a one-line ``status`` message in the page
(``✖ …``), never a traceback. Gradio wiring lives in :mod:`stchat.ui.layout`; keeping it out of here is
what lets the unit tests call these functions directly.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stchat.answer import ParsedAnswer
from stchat.errors import AnswerError, PromptError, StchatError, VideoError
from stchat.processing.prompt import MAX_QUERY_CHARS  # the prompt builder's limit, checked up front
from stchat.ui.model_holder import ModelHolder

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]

GROUNDING = "Grounding + auto-clip"
DESCRIBE = "Describe"
MODES = (GROUNDING, DESCRIBE)
PLACEHOLDERS = {
    GROUNDING: "What should I find? e.g. “When does the blue ball roll to the right, and where is it?”",
    DESCRIBE: "What do you want to know? e.g. “Describe what happens in this video.”",
}
# Tasks a video can be grounded with; their answer syntax is in reference §5.4.
VIDEO_TASKS = ("stvg", "svg", "elc", "tvg", "tr")
DECODINGS = ("greedy", "official")
MAX_ANSWER_FILE_BYTES = 1_000_000
# Status marks: plain symbols (not colour emoji) so they render with any system font.
OK = "✔"
FAIL = "✖"


@dataclass
class RunResult:
    """Everything the page shows after a run; ``None`` outputs clear the matching component."""

    status: str
    clip: Path | None = None
    annotated: Path | None = None
    timing_headers: list[str] = field(default_factory=list)
    timing_rows: list[list[str]] = field(default_factory=list)
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


def span_fraction(video: str | Path, info: Any, split: tuple[int, int] | None,
                  span_s: tuple[float, float]) -> tuple[float, float]:
    """Seconds → the model's time fractions of the sampled range (``(frame − first) / (last − first)``).

    Rounded to 3 decimals, as the official benchmark front-end writes input times (reference §3.4).
    """
    import numpy as np

    from stchat.video.io import frame_times

    if span_s[0] > info.duration_s:
        ends = f"{info.duration_s:.2f} s"
        raise PromptError(f"time span starts at {span_s[0]:g} s, after the video ends ({ends})")
    times = frame_times(video)
    first, last = split if split is not None else (0, info.frame_count - 1)

    def frac(t: float) -> float:
        frame = int(np.clip(np.searchsorted(times, t + 1e-6, side="right") - 1, first, last))
        return 0.0 if last == first else round((frame - first) / (last - first), 3)

    s, e = frac(span_s[0]), frac(span_s[1])
    if e <= s:
        raise PromptError(f"time span {span_s[0]:g}–{span_s[1]:g} s falls outside the chosen frame range")
    return s, e


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


# The page shows the columns a reader needs; the downloadable timing.csv keeps all of them.
TABLE_COLUMNS = ("kind", "frame", "timestamp", "end_timestamp", "duration", "sample_index",
                 "x1", "y1", "x2", "y2")


def read_timing_csv(path: Path | None) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of ``timing.csv``, narrowed to :data:`TABLE_COLUMNS` when it has them."""
    if path is None or not Path(path).is_file():
        return [], []
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    header = rows[0]
    keep = [i for i, name in enumerate(header) if name in TABLE_COLUMNS] or list(range(len(header)))
    return [header[i] for i in keep], [[r[i] if i < len(r) else "" for i in keep] for r in rows[1:]]


def _path_or_none(value: Any) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_file() else None


def result_from_render(outputs: Any, status: str, raw: str, normalised: str) -> RunResult:
    """Turn the pipeline's ``RenderOutputs`` into what the page shows."""
    clip = _path_or_none(getattr(outputs, "clip", None))
    annotated = _path_or_none(getattr(outputs, "annotated", None))
    timing_csv = _path_or_none(getattr(outputs, "timing_csv", None))
    timing_json = _path_or_none(getattr(outputs, "timing_json", None))
    headers, rows = read_timing_csv(timing_csv)
    downloads = [p for p in (clip, annotated, timing_csv, timing_json) if p is not None]
    return RunResult(status, clip, annotated, headers, rows, raw, normalised, downloads)


def _done_line(outputs: Any) -> str:
    """``✔ Found 00:00:02.000 → 00:00:07.000 (00:00:05.000), 5 boxes.`` from the timing rows."""
    rows = list(getattr(outputs, "rows", None) or [])
    if not rows or getattr(rows[0], "kind", "") != "segment":
        return f"{OK} Done."
    seg = rows[0]
    n_boxes = sum(1 for r in rows[1:] if getattr(r, "box_px", None) is not None)
    boxes = f", {n_boxes} box{'es' if n_boxes != 1 else ''}" if n_boxes else ""
    return f"{OK} Found {seg.timestamp} → {seg.end_timestamp} ({seg.duration}){boxes}."


def _warnings_line(parsed: ParsedAnswer) -> str:
    if not parsed.warnings:
        return ""
    shown = "; ".join(parsed.warnings[:3])
    more = f" (+{len(parsed.warnings) - 3} more)" if len(parsed.warnings) > 3 else ""
    return f"\n\nNotes on the answer: {shown}{more}"


# --------------------------------------------------------------------------- handlers


def guarded(fn: Callable[..., RunResult]) -> Callable[..., RunResult]:
    """Run a handler so that any failure becomes a ``✖`` status line instead of a traceback."""

    def wrapper(*args: Any, **kwargs: Any) -> RunResult:
        try:
            return fn(*args, **kwargs)
        except StchatError as exc:
            return RunResult(status=f"{FAIL} {exc}")
        except Exception as exc:  # a bug, not bad input: keep the traceback for the server log only
            log.exception("handler %s failed", fn.__name__)
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            return RunResult(
                status=f"{FAIL} internal error ({type(exc).__name__}: {first}); details are in the server log"
            )

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


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
) -> RunResult:
    """The Run button: ground (and clip) or describe, depending on ``mode``.

    ``time_span`` ("start, end" seconds) is the span an SVG or TR question is about; for TR the question
    is the task's fixed one (the typed query is not used) and the clip is that span, captioned.
    """
    if mode not in MODES:
        raise PromptError(f"unknown mode {mode!r}")
    split = parse_frame_range(frame_range)
    span_s = parse_time_span(time_span) if mode == GROUNDING else None  # Describe asks about the whole range
    progress(0.02, "Checking the video")
    info = check_video(video, split)
    span: tuple[float, float] | None = None  # the question's span, as time fractions of the range
    span_arg: tuple[float, float] | None = None  # ... when the question is built from the template
    if mode == GROUNDING and task in SPAN_TASKS:
        typed = _DEMO_SPAN.search(query or "")
        if typed is not None and span_s is not None:
            raise PromptError("give the time span once: either in the question or under Advanced options")
        if typed is not None:  # the official demo syntax typed into the question: sent verbatim
            span = (float(typed.group(1)), float(typed.group(2)))
            query = check_query(query)
        elif span_s is not None:
            span = span_arg = span_fraction(str(video), info, split, span_s)
            # TR asks a fixed question about the span (stchat.processing.tasks.task_query).
            query = "" if task == "tr" else check_query(query)
        else:
            raise PromptError(f"task {task} is about a time span: fill in “Time span” under Advanced options")
    else:
        if span_s is not None:
            raise PromptError(f"a time span is only used by tasks svg and tr; clear it for {task}")
        query = check_query(query)
    if decoding not in DECODINGS:
        raise PromptError(f"unknown decoding {decoding!r}: choose one of {', '.join(DECODINGS)}")
    if task not in VIDEO_TASKS:
        raise PromptError(f"unknown task {task!r}: choose one of {', '.join(VIDEO_TASKS)}")
    max_new_tokens = parse_max_new_tokens(max_new_tokens)
    chat = holder.get()
    # Generation is the long stage: move the bar with each streamed piece, up to ``gen_end``.
    gen_end = 1.0 if mode == DESCRIBE else 0.6
    pieces = [0]

    def on_token(_piece: str) -> None:
        pieces[0] += 1
        if pieces[0] % 4 == 1:
            done = min(1.0, pieces[0] / max_new_tokens)
            progress(0.1 + (gen_end - 0.1) * done, f"Generating the answer ({pieces[0]} tokens)")

    progress(0.1, "Sampling 100 frames and encoding them")
    if mode == DESCRIBE:
        text = chat.ask(str(video), query, split=split, max_new_tokens=max_new_tokens, decoding=decoding,
                        on_token=on_token)
        progress(1.0, "Done")
        return RunResult(status=f"{OK} Answered.", raw_answer=text, normalised_answer=text)

    result = chat.ground(str(video), query, task=task, split=split, max_new_tokens=max_new_tokens,
                         decoding=decoding, on_token=on_token, span=span_arg)
    parsed: ParsedAnswer = result.parsed
    raw = result.raw_text
    normalised = result.normalized_text
    if span is not None and parsed.span is None:
        # The answer is about the span the question gave (TR: a description of it; SVG: boxes in it),
        # so that span is the moment to cut even when the answer does not repeat it.
        note = f"the clip is the span you asked about ({span[0]:g}–{span[1]:g} of the range)"
        parsed = dataclasses.replace(parsed, span=span, warnings=[*parsed.warnings, note])
    if not parsed.ok:
        return RunResult(
            status=f"{FAIL} the model's answer has nothing to show for task {task} (see the raw answer below)"
            + _warnings_line(parsed),
            raw_answer=raw,
            normalised_answer=normalised,
        )
    outputs = _render(video, parsed, task, split, run_dir, query, progress, start=0.6)
    return result_from_render(outputs, _done_line(outputs) + _warnings_line(parsed), raw, normalised)


@guarded
def visualise_answer(
    video: str | Path | None,
    answer_text: str | None,
    answer_file: str | Path | None,
    task: str,
    frame_range: str | None,
    run_dir: Path,
    progress: Progress = _noop_progress,
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
    outputs = _render(video, parsed, task, split, run_dir, None, progress, start=0.1)
    return result_from_render(outputs, _done_line(outputs) + _warnings_line(parsed), text, normalised)


def _render(
    video: str | Path | None,
    parsed: ParsedAnswer,
    task: str,
    split: tuple[int, int] | None,
    run_dir: Path,
    query: str | None,
    progress: Progress,
    start: float,
) -> Any:
    """Pipeline stages (map → draw → clip → timing) with the page's progress bar spanning [start, 1]."""
    from stchat.pipeline import render_answer

    def stage_progress(*args: Any, **kwargs: Any) -> None:
        fraction, desc = _progress_args(args, kwargs)
        progress(start + (1.0 - start) * max(0.0, min(1.0, fraction)), desc)

    progress(start, "Rendering")
    return render_answer(
        Path(str(video)), parsed, task=task, split=split, out_dir=run_dir, query=query,
        progress=stage_progress,
    )


def _progress_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[float, str]:
    """Read (fraction, description) from whatever the pipeline passes its progress callback."""
    fraction = kwargs.get("fraction", args[0] if args else 0.0)
    desc = kwargs.get("desc", args[1] if len(args) > 1 else "")
    try:
        return float(fraction), str(desc)
    except (TypeError, ValueError):
        return 0.0, str(fraction)
