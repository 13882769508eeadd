"""Answer -> annotated video, clip and timing table: the one entry point the app, ``stchat ground``,
``stchat render`` and the evaluation gallery share.

Stages: probe the video, place the answer on it (:mod:`stchat.mapping`), draw it (:mod:`stchat.render`)
while encoding the full annotated video and the clip (:mod:`stchat.clip`), write the timing table
(:mod:`stchat.timing`). Everything is written into a temporary folder inside ``out_dir`` and renamed into
place at the end, so a failure (or Ctrl-C) never leaves a half-written file under a final name. The
output folder is checked before any work (:func:`prepare_out_dir`): a path that is a file, cannot be
created, or holds a *folder* under one of our file names is refused with :class:`OutputError`, and files
of other names in it are never touched.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from tqdm import tqdm

from stchat.answer import GroundingResult, ParsedAnswer
from stchat.clip import ClipSpec, encode_ranges
from stchat.errors import AnswerError, StchatError
from stchat.exports import EXPORT_FILES, FrameBox, frame_boxes, write_exports
from stchat.mapping import FrameMap, MappedAnswer, map_answer
from stchat.render import GREEN, RED, BoxAnnotator, LabelAnnotator, Renderer, TimelineAnnotator
from stchat.timing import TableRow, TimingRow, table_rows, timing_rows, write_csv, write_json
from stchat.video.info import VideoInfo
from stchat.video.io import frame_times, probe

ProgressFn = Callable[[float, str], None]

FILES = ("clip.mp4", "annotated.mp4", "timing.csv", "timing.json", *EXPORT_FILES)


class OutputError(StchatError):
    """The output folder cannot be used (it is a file, cannot be created, or a result name is taken)."""


def prepare_out_dir(out_dir: str | Path, names: Sequence[str] = FILES) -> Path:
    """Create ``out_dir`` if needed and check that ``names`` can be written there; return it.

    Runs before any decoding or model loading, so a bad ``--out`` fails in a second with one line.
    Existing *files* under ``names`` will be replaced (that is what re-running does); anything else in the
    folder is left alone, and a non-file under one of ``names`` is refused rather than deleted.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output folder {out} is an existing file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {out}: {exc.strerror or exc}") from None
    for name in names:
        target = out / name
        if target.exists() and not target.is_file():
            raise OutputError(f"cannot write {target}: a folder (or other non-file) is in the way")
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {out} is not writable")
    return out


@contextmanager
def cli_progress(enabled: bool | None = None) -> Iterator[ProgressFn]:
    """A :data:`ProgressFn` that drives a tqdm bar (percent, elapsed, ETA) on stderr.

    Shown by default only when stderr is a terminal, so logs and pipes stay clean.
    """
    show = sys.stderr.isatty() if enabled is None else enabled
    bar = tqdm(total=100, unit="%", disable=not show, leave=False, file=sys.stderr,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def update(fraction: float, message: str) -> None:
        bar.set_description_str(message, refresh=False)
        bar.update(max(0.0, min(100.0, fraction * 100)) - bar.n)

    try:
        yield update
    finally:
        bar.close()


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path`` and rename it into place (never half-written)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class RenderOutputs:
    """What a render produced. ``table`` and ``frame_boxes`` are typed rows a page shows directly."""

    clip: Path
    annotated: Path | None
    timing_csv: Path
    timing_json: Path
    rows: list[TimingRow]
    mapped: MappedAnswer
    info: VideoInfo
    table: list[TableRow] = field(default_factory=list)
    frame_boxes: list[FrameBox] = field(default_factory=list)  # every clip frame's box, model/interpolated
    exports: dict[str, Path] = field(default_factory=dict)  # file name -> path (VTT, SRT, MOT, COCO)
    warnings: list[str] = field(default_factory=list)  # e.g. a truncated video: what was readable
    result: GroundingResult | None = None

    @property
    def files(self) -> list[Path]:
        """Every file written, the clip first (for a download list)."""
        main = [self.clip, self.annotated, self.timing_csv, self.timing_json]
        return [p for p in main if p is not None] + list(self.exports.values())


def as_parsed(answer: str | ParsedAnswer, task: str) -> ParsedAnswer:
    """Accept raw model text (token or normalised form) or an already parsed answer."""
    if isinstance(answer, ParsedAnswer):
        return answer
    from stchat.parse import parse_answer  # the parser module is owned by another stage

    parsed = parse_answer(answer, task)
    if not parsed.ok:
        why = "; ".join(parsed.warnings) or "no span or boxes found"
        raise AnswerError(f"the answer has nothing to render for task '{task}': {why}")
    return parsed


def _publish(tmp: Path, out: Path, write_annotated: bool) -> None:
    """Rename the finished files into place: the whole set, or (on an error) a clear one-line failure."""
    prepare_out_dir(out)  # again: something may have appeared in the folder while we were encoding
    try:
        for name in FILES:
            if (tmp / name).exists():
                (tmp / name).replace(out / name)
            elif name in EXPORT_FILES or (name == "annotated.mp4" and not write_annotated):
                (out / name).unlink(missing_ok=True)  # never leave a stale one from an earlier run
    except OSError as exc:
        raise OutputError(f"cannot write the results into {out}: {exc.strerror or exc}") from None


def build_renderer(
    mapped: MappedAnswer, info: VideoInfo, query: str | None, gt: MappedAnswer | None
) -> Renderer:
    annotators: list = []
    if gt is not None:  # ground truth first, so the prediction is drawn on top
        annotators.append(BoxAnnotator(gt.box_track(), color=GREEN))
    annotators.append(BoxAnnotator(mapped.box_track(), color=RED))
    if query:
        annotators.append(LabelAnnotator(query))
    annotators.append(
        TimelineAnnotator(
            duration_s=info.duration_s,
            span=(mapped.start_s, mapped.end_s),
            gt_span=(gt.start_s, gt.end_s) if gt is not None else None,
        )
    )
    return Renderer(annotators)


@overload
def render_answer(
    result: GroundingResult,
    out_dir: str | Path = ...,
    *,
    full: bool = ...,
    gt: ParsedAnswer | None = ...,
    progress: ProgressFn | None = ...,
    segment: tuple[int, int] | None = ...,
    label: str | None = ...,
    exports: bool = ...,
) -> RenderOutputs: ...


@overload
def render_answer(
    result: str | Path,
    answer: str | ParsedAnswer,
    task: str = ...,
    split: Sequence[int] | None = ...,
    out_dir: str | Path = ...,
    query: str | None = ...,
    gt: ParsedAnswer | None = ...,
    progress: ProgressFn | None = ...,
    write_annotated: bool = ...,
    segment: tuple[int, int] | None = ...,
) -> RenderOutputs: ...


def render_answer(result: Any, *args: Any, **kwargs: Any) -> RenderOutputs:
    """Render a :class:`GroundingResult` into ``out_dir``: ``render_answer(result, out_dir, full=False)``.

    Uses ``result.media`` (the video), ``result.answer`` (the asked span filled in where the task falls
    back to it), ``result.task``, ``result.split`` and ``result.video_info`` (no second probe when set).
    Writes clip.mp4 (always: the product), annotated.mp4 (``full=True``, made in the same decode pass),
    timing.csv/json and the exports (:mod:`stchat.exports`).

    The older form ``render_answer(video_path, answer, task, split, out_dir, query, ...)`` still works
    (it writes the full video unless ``write_annotated=False``).
    """
    if isinstance(result, GroundingResult):
        return render_result(result, *args, **kwargs)
    return _render_legacy(result, *args, **kwargs)


def _render_legacy(
    video_path: str | Path,
    answer: str | ParsedAnswer,
    task: str = "stvg",
    split: Sequence[int] | None = None,
    out_dir: str | Path = "stchat-out",
    query: str | None = None,
    gt: ParsedAnswer | None = None,
    progress: ProgressFn | None = None,
    write_annotated: bool = True,
    segment: tuple[int, int] | None = None,
) -> RenderOutputs:
    parsed = as_parsed(answer, task)
    info = probe(video_path)
    return _render(
        Path(video_path), parsed, info, split, out_dir, label=query, gt=gt, progress=progress,
        full=write_annotated, segment=segment, exports=True, result=None,
    )


def render_result(
    result: GroundingResult,
    out_dir: str | Path = "stchat-out",
    *,
    full: bool = False,
    gt: ParsedAnswer | None = None,
    progress: ProgressFn | None = None,
    segment: tuple[int, int] | None = None,
    label: str | None = None,
    exports: bool = True,
) -> RenderOutputs:
    """See :func:`render_answer`. ``label`` (default: the result's query) is drawn under the picture;
    ``segment`` (inclusive source frames) replaces the answer's moment, e.g. a span the user gave in
    seconds, which maps to exact frames where time tokens only reach the 100 sampled ones."""
    if result.media is None:
        raise AnswerError("the result has no video file to draw on (it was asked about frames in memory)")
    parsed = result.answer
    if not parsed.ok:
        why = "; ".join(parsed.warnings) or "no span or boxes found"
        raise AnswerError(f"the answer has nothing to render for task '{result.task}': {why}")
    path = Path(result.media)
    info = result.video_info if _same_file(result.video_info, path) else probe(path)
    assert info is not None
    return _render(
        path, parsed, info, result.split, out_dir, label=result.query if label is None else label, gt=gt,
        progress=progress, full=full, segment=segment, exports=exports, result=result,
    )


def _same_file(info: VideoInfo | None, path: Path) -> bool:
    """A stored VideoInfo is reused only for the file it describes (an answer.json may travel)."""
    return info is not None and Path(info.path).resolve() == path.resolve() and path.is_file()


def _render(
    video_path: Path,
    parsed: ParsedAnswer,
    info: VideoInfo,
    split: Sequence[int] | None,
    out_dir: str | Path,
    *,
    label: str | None,
    gt: ParsedAnswer | None,
    progress: ProgressFn | None,
    full: bool,
    segment: tuple[int, int] | None,
    exports: bool,
    result: GroundingResult | None,
) -> RenderOutputs:
    out = prepare_out_dir(out_dir)  # after the cheap video check: a bad video creates no folder
    times = frame_times(video_path)
    frame_map = FrameMap.build(times, info.width, info.height, float(info.fps), split)
    mapped = map_answer(parsed, frame_map)
    if segment is not None:
        first, last = segment
        if not (0 <= first <= last < len(times)):
            raise AnswerError(f"segment frames [{first}, {last}] are outside the video's {len(times)} frames")
        mapped = dataclasses.replace(mapped, first_frame=first, last_frame=last,
                                     start_s=frame_map.seconds(first), end_s=frame_map.end_seconds(last))
    gt_mapped = map_answer(gt, frame_map) if gt is not None else None
    renderer = build_renderer(mapped, info, label, gt_mapped)
    rows = timing_rows(mapped)
    warnings = [w for w in (info.warning(),) if w]

    try:
        tmp = Path(tempfile.mkdtemp(prefix=".stchat-render-", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write into {out}: {exc.strerror or exc}") from None
    report = progress or (lambda _f, _m: None)
    written: dict[str, Path] = {}
    try:
        # One decode pass: the clip, and the full video when asked, each frame drawn once.
        specs = [ClipSpec(tmp / "clip.mp4", mapped.first_frame, mapped.last_frame)]
        if full:
            specs.append(ClipSpec(tmp / "annotated.mp4", 0, info.frame_count - 1, origin_s=0.0))
        what = "rendering the clip and the full video" if full else "rendering the clip"
        encode_ranges(video_path, specs, annotate=renderer, progress=lambda f: report(f, what))
        write_csv(rows, tmp / "timing.csv")
        write_json(rows, mapped, tmp / "timing.json", warnings=warnings)
        if exports:
            written = write_exports(mapped, tmp, label, video_path.name, float(info.fps))
        _publish(tmp, out, full)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, "done")
    return RenderOutputs(
        clip=out / "clip.mp4",
        annotated=out / "annotated.mp4" if full else None,
        timing_csv=out / "timing.csv",
        timing_json=out / "timing.json",
        rows=rows,
        mapped=mapped,
        info=info,
        table=table_rows(mapped),
        frame_boxes=frame_boxes(mapped),
        exports={name: out / name for name in written},
        warnings=warnings,
        result=result,
    )
