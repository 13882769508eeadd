"""Model answer text -> :class:`stchat.answer.ParsedAnswer`, for every task in :mod:`stchat.tasks`.

Raw model text with coordinate tokens (``<TEMP-012>`` ...) is first normalised with the official
``replace_and_normalize``, so the raw-token form and its normalised form parse to the same result; the
task's own parser (:mod:`stchat.parsers` for the built-ins) then reads its fields. It never raises on
model text: anything odd yields a result whose ``warnings`` say what was wrong. The benchmark scorer does
**not** use this parser: it uses the faithful re-implementations of the official parsers in
:mod:`stchat.eval.official`, quirks included.
"""

from __future__ import annotations

from stchat.answer import GroundingResult, ParsedAnswer, Span
from stchat.parsers import normalize_answer_text
from stchat.tasks import find_task
from stchat.video.info import VideoInfo

__all__ = ["normalize_answer_text", "parse_answer", "result_from_text"]


def parse_answer(text: str, task: str) -> ParsedAnswer:
    """Read what a model answer says for ``task`` (a name in :mod:`stchat.tasks`). Never raises."""
    task = str(task).lower()
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    norm, warnings = normalize_answer_text(text)
    spec = find_task(task)
    if spec is None:
        warnings.append(f"unknown task {task!r}: nothing parsed")
        return ParsedAnswer(task=task, text=norm, warnings=warnings)
    if not norm.strip():
        warnings.append("empty answer")
        return ParsedAnswer(task=task, text=norm, warnings=warnings)
    fields = spec.parser(norm, warnings)
    return ParsedAnswer(task=task, text=norm, warnings=warnings, **fields)


def result_from_text(
    text: str,
    task: str,
    media: str | None = None,
    split: tuple[int, int] | None = None,
    query: str = "",
    video_info: VideoInfo | None = None,
    asked_span: Span | None = None,
) -> GroundingResult:
    """A :class:`GroundingResult` for an answer that did not come from a run here (pasted, uploaded,
    ``stchat render --answer``): the renderer then takes one kind of object whatever the answer's source."""
    parsed = parse_answer(text, task)
    spec = find_task(parsed.task)
    return GroundingResult(
        task=parsed.task, query=query, raw_text=text, normalized_text=parsed.text, parsed=parsed,
        output_ids=[], modality=spec.modality if spec is not None else None, frame_indices=None,
        frame_times_s=None, video_info=video_info,
        media_size=None, split=split, variables={}, decoding="none", seed=None, timings={},
        asked_span=asked_span, media=media,
    )
