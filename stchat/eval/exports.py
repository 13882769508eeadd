"""Per-sample exports of ``stchat eval run``: the found moment as subtitle tracks and per-frame boxes.

Layout, next to each result file ``<save_dir>/<model>/<sub_dir>/<task>/<dataset>/<name>.json``::

    <name>.exports/<sample id>/segment.vtt       one cue over the answer's segment, source clock
                               segment.srt       the same cue as SRT
                               clip.vtt          the cue on the clip's clock (0 to its length)
                               boxes_mot.csv     MOTChallenge rows, one per boxed frame of the segment
                               boxes_coco.json.gz  COCO-video JSON (gzip)

The five files are :mod:`stchat.exports`' (what ``ground``, ``render`` and the app write), made from the
sample's answer placed on its video exactly as ``stchat render`` places it (the benchmark's frame range,
the interpolated box track). The COCO file is gzip-compressed and does not end in ``.json`` on purpose:
the official scorer reads every ``*.json`` below the folder it is given (reference Q24) and would take
it for a result file.

Which samples: video tasks whose answer places something (STVG/SVG/ELC boxes and spans, TVG spans; a
TVG folder has an empty MOT file and no COCO annotations). REC (images) and answers with nothing to
place get no folder. SVG answers carry no span: as in ``render``, the span the question asked about is
the segment.

Crash safety: a sample's folder is written in a temporary folder and renamed into place before its
record is appended, so a folder is always complete; a sample re-run after a kill replaces its folder;
shards write disjoint folders (one per sample id). After each run, the main process fills in the
folders missing for finished samples (exports switched on after an earlier run, a kill between the
rename and the record) and removes temporary leftovers. ``--no-exports`` skips all of it.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from stchat.errors import StchatError
from stchat.eval import distributed as dist_mod
from stchat.eval.official import find_span
from stchat.eval.samples import Sample

SUFFIX = ".exports"
COCO_NAME = "boxes_coco.json.gz"
FILES = ("segment.vtt", "segment.srt", "clip.vtt", "boxes_mot.csv", COCO_NAME)
_TMP_PREFIX = ".tmp-"
_OLD_PREFIX = ".old-"
_LABEL_CHARS = 200


def exports_root(final: Path) -> Path:
    """``<name>.exports`` next to the result file ``<name>.json``."""
    return final.with_name(final.stem + SUFFIX)


def sample_dir(root: Path, sample_id: str) -> Path:
    """The folder of one sample (ids are dataset positions; anything path-like is refused)."""
    sid = str(sample_id)
    if not sid or sid in (".", "..") or "/" in sid or "\\" in sid or sid.startswith("."):
        raise StchatError(f"sample id {sid!r} cannot name an export folder")
    return root / sid


def exports_task(task: str) -> bool:
    """Whether samples of ``task`` get exports (a video task: something placed on frames)."""
    from stchat.tasks import find_task

    spec = find_task(task)
    return spec is not None and spec.is_video


def _label(task: str, record: Mapping[str, Any], caption: str | None) -> str | None:
    """The cue text: the event's words (ELC answer caption, TVG query), else the question itself."""
    text = caption or record.get("caption")
    if not text:
        from stchat.tasks import find_task

        text = str(record.get("prompt") or "").replace("<video>", " ")
        spec = find_task(task)
        for marker in spec.markers if spec is not None else ():
            text = text.replace(marker, " ")
    words = " ".join(str(text).split())
    if len(words) > _LABEL_CHARS:
        words = words[:_LABEL_CHARS].rsplit(" ", 1)[0] + " …"
    return words or None


def write_sample_exports(sample: Sample, record: Mapping[str, Any], task: str, root: Path) -> Path | None:
    """Place ``record``'s answer on the sample's video and publish its folder; ``None`` when there is
    nothing to place (or nothing to place it on: an image, a frame array). Raises :class:`StchatError`
    when the video cannot be read."""
    if not exports_task(task) or Path(sample.media_path).suffix.lower() == ".npy":
        return None
    # Imported here: the runner checks its arguments before the heavier media stack is loaded.
    from stchat.errors import AnswerError
    from stchat.exports import write_exports
    from stchat.mapping import FrameMap, map_answer
    from stchat.parse import parse_answer
    from stchat.video.io import frame_times, probe

    parsed = parse_answer(record.get("outputs") or "", task)
    asked = find_span(str(record.get("prompt") or ""))  # the benchmark writes the asked span as {a,b}
    if asked is not None:
        parsed = parsed.with_asked_span((asked[0], asked[1]))
    if not (parsed.span is not None or parsed.boxes or parsed.end_time is not None):
        return None
    info = probe(sample.media_path)
    times = frame_times(sample.media_path)
    try:
        mapped = map_answer(parsed, FrameMap.build(times, info.width, info.height, float(info.fps),
                                                   sample.split))
    except AnswerError:
        return None
    final = sample_dir(root, sample.sample_id)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=root))
    try:
        write_exports(mapped, tmp, _label(task, record, parsed.caption), Path(sample.media_path).name,
                      float(info.fps), coco_name=COCO_NAME)
        _publish(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _publish(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` (a sample re-run) is moved aside first."""
    try:
        os.rename(tmp, final)
        return
    except OSError:
        if not final.exists():
            raise
    old = Path(tempfile.mkdtemp(prefix=_OLD_PREFIX, dir=final.parent))
    os.rename(final, old / "x")  # a kill here leaves no folder: the end-of-run pass writes it again
    os.rename(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


class ExportingInfer:
    """``infer`` for the writer: the engine's record, with the sample's exports published first."""

    def __init__(self, infer: Callable[[Any], dict], task: str, root: Path) -> None:
        self.infer = infer
        self.task = task
        self.root = root
        self.failures = 0

    def __call__(self, sample: Sample) -> dict:
        record = self.infer(sample)
        try:
            write_sample_exports(sample, record, self.task, self.root)
        except StchatError as exc:  # the answer is written regardless; exports are an extra
            self.failures += 1
            print(f"stchat: warning: no exports for sample {sample.sample_id}: {exc}", file=sys.stderr)
        return record


def finish_exports(samples: Sequence[Sample], final: Path, task: str, root: Path) -> int:
    """Main process, after every rank is done: write the missing folders of finished samples and remove
    temporary leftovers. Returns how many folders were written."""
    if not exports_task(task):
        return 0
    if root.is_dir():
        for leftover in root.iterdir():
            if leftover.name.startswith((_TMP_PREFIX, _OLD_PREFIX)):
                shutil.rmtree(leftover, ignore_errors=True)
    wanted = {s.sample_id: s for s in samples}
    written = 0
    for record in dist_mod.read_jsonl(final):
        sample = wanted.get(str(record.get("id")))
        if sample is None or sample_dir(root, sample.sample_id).is_dir():
            continue
        try:
            written += write_sample_exports(sample, record, task, root) is not None
        except StchatError as exc:
            print(f"stchat: warning: no exports for sample {sample.sample_id}: {exc}", file=sys.stderr)
    return written
