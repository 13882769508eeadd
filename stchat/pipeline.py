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
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from stchat.answer import ParsedAnswer
from stchat.clip import ClipSpec, encode_ranges
from stchat.errors import AnswerError, StchatError
from stchat.mapping import FrameMap, MappedAnswer, map_answer
from stchat.render import GREEN, RED, BoxAnnotator, LabelAnnotator, Renderer, TimelineAnnotator
from stchat.timing import TimingRow, timing_rows, write_csv, write_json
from stchat.video.io import VideoInfo, frame_times, probe

ProgressFn = Callable[[float, str], None]

FILES = ("clip.mp4", "annotated.mp4", "timing.csv", "timing.json")


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
    clip: Path
    annotated: Path | None
    timing_csv: Path
    timing_json: Path
    rows: list[TimingRow]
    mapped: MappedAnswer
    info: VideoInfo


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
        if not write_annotated:
            (out / "annotated.mp4").unlink(missing_ok=True)  # never leave a stale one from an earlier run
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


def render_answer(
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
    """Render ``answer`` on ``video_path`` into ``out_dir``: clip.mp4, annotated.mp4, timing.csv/json.

    ``segment`` (inclusive source frames) replaces the answer's moment: a span the user gave in seconds
    maps to exact frames, where the answer's time tokens only reach the 100 sampled ones.
    """
    parsed = as_parsed(answer, task)
    info = probe(video_path)
    out = prepare_out_dir(out_dir)  # after the cheap video check: a bad video creates no folder
    times = frame_times(video_path)
    frame_map = FrameMap.build(times, info.width, info.height, float(info.fps), split)
    mapped = map_answer(parsed, frame_map)
    if segment is not None:
        first, last = segment
        mapped = dataclasses.replace(mapped, first_frame=first, last_frame=last,
                                     start_s=frame_map.seconds(first), end_s=frame_map.end_seconds(last))
    gt_mapped = map_answer(gt, frame_map) if gt is not None else None
    renderer = build_renderer(mapped, info, query, gt_mapped)
    rows = timing_rows(mapped)

    try:
        tmp = Path(tempfile.mkdtemp(prefix=".stchat-render-", dir=out))
    except OSError as exc:
        raise OutputError(f"cannot write into {out}: {exc.strerror or exc}") from None
    report = progress or (lambda _f, _m: None)
    try:
        # One decode pass: the clip, and the full video when asked, each frame drawn once.
        specs = [ClipSpec(tmp / "clip.mp4", mapped.first_frame, mapped.last_frame)]
        if write_annotated:
            specs.append(ClipSpec(tmp / "annotated.mp4", 0, info.frame_count - 1, origin_s=0.0))
        what = "rendering the clip and the full video" if write_annotated else "rendering the clip"
        encode_ranges(video_path, specs, annotate=renderer, progress=lambda f: report(f, what))
        write_csv(rows, tmp / "timing.csv")
        write_json(rows, mapped, tmp / "timing.json")
        _publish(tmp, out, write_annotated)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(1.0, "done")
    return RenderOutputs(
        clip=out / "clip.mp4",
        annotated=out / "annotated.mp4" if write_annotated else None,
        timing_csv=out / "timing.csv",
        timing_json=out / "timing.json",
        rows=rows,
        mapped=mapped,
        info=info,
    )
