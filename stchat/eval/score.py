"""Score a result directory like the official ``inference/multi_task_eval.py``.

Routing is by substrings of each file's full path (reference Q24), in this order: ``/rec/`` → REC,
``/tvg/`` → TVG, ``/st-align/`` → ST-Align with the task picked by ``stvg`` in the path, else ``svg``, else
``elc``; other files are ignored. The output key is the file name without ``.json``; a file with no
records is skipped. Keys and values of each entry equal the official ones.

Beyond the official script we never crash on a record (see :mod:`stchat.eval.metrics` for the values we
define where it would), report every unreadable line, and collect an extra section ``stchat_extra`` with
reproduction-study metrics and degenerate-case counts, kept out of the official entries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stchat.eval import metrics
from stchat.eval.captions import caption_score
from stchat.eval.official import ZERO_UNION_TIOU
from stchat.eval.results import iter_result_files, read_records
from stchat.tasks import eval_family, task_names

EXTRA_KEY = "stchat_extra"

NOTES = {
    "thresholds": "extra R@k use >= for every task and every record in the denominator "
    "(unparsable answers score 0), unlike official TVG (>) and official REC (drops unparsable)",
    "joint_success_rate@0.5": "percentage of records with tIoU >= 0.5 and sIoU >= 0.5",
    "zero_union_tiou": f"both spans collapse onto one point; the official evaluator raises "
    f"ZeroDivisionError, we score tIoU = {ZERO_UNION_TIOU} (the official box iou's rule for a zero union)",
    "single_frame_clip": "split[0] == split[1]; official ZeroDivisionError; GT times taken as 0",
    "gt_frames_not_sampled": "GT frame key not among the 100 sampled frames; official AssertionError; "
    "kept and matched by string key",
    "pred_frames_not_sampled": "predicted token index maps outside the sampled frames; official "
    "AssertionError; kept and matched by string key",
    "null_outputs": "outputs/converted_outputs is null; official crash; scored as an empty answer",
    "box_iou_sum": "per-record sum of box IoUs uses math.fsum (the official order is a set's hash order)",
}


def route(path: str) -> str | None:
    """The official task of a result file path, or ``None`` when the official script ignores it.

    Returns ``"st-align?"`` for an ``/st-align/`` path naming none of the three tasks (the official
    script raises ``ValueError`` there; we skip the file with a warning).
    """
    if "/rec/" in path:
        return "rec"
    if "/tvg/" in path:
        return "tvg"
    if "/st-align/" in path:
        for task in task_names(family="st-align"):  # stvg, svg, elc: the official order
            if task in path:
                return task
        return "st-align?"
    return None


@dataclass
class ScoreReport:
    official: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    task_scores: dict[str, metrics.TaskScore] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self, with_extra: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.official)
        if with_extra:
            out[EXTRA_KEY] = {"per_file": self.extra, "notes": NOTES, "warnings": self.warnings}
        return out


def score_records(
    records: list[dict[str, Any]], task: str, captions: metrics.CaptionScorer | None = caption_score
) -> metrics.TaskScore:
    """Score one file's records for ``task`` with the official metric of its family (stchat.tasks)."""
    family = eval_family(task)
    if family == "rec":
        return metrics.eval_rec(records)
    if family == "tvg":
        return metrics.eval_tvg(records)
    return metrics.eval_stvg(records, task, captions=captions)  # refuses a task outside ST-Align


def score_dir(
    result_dir: str | os.PathLike[str],
    captions: metrics.CaptionScorer | None = caption_score,
    skip: Callable[[str], bool] | None = None,
) -> ScoreReport:
    """Score every result file below ``result_dir`` as ``multi_task_eval.py`` does."""
    report = ScoreReport()
    sources: dict[str, str] = {}
    for path in iter_result_files(result_dir):
        if skip is not None and skip(path):
            continue
        task = route(path)
        if task is None:
            continue
        if task == "st-align?":
            report.warnings.append(f"{path}: under /st-align/ but names none of stvg/svg/elc; skipped")
            continue
        loaded = read_records(path)
        report.warnings.extend(loaded.warnings)
        if not loaded.records:
            continue
        name = os.path.basename(path)[:-5]
        if name in sources:
            # Official: the later file silently overwrites the earlier one.
            report.warnings.append(f"{path}: same result name as {sources[name]}; the later file wins")
        sources[name] = path
        try:
            ts = score_records(loaded.records, task, captions=captions)
        except metrics.ResultFileError as exc:
            raise metrics.ResultFileError(f"{path}: {exc}") from None
        report.official[name] = ts.official
        report.extra[name] = {"task": task, "path": path, **ts.extra}
        report.task_scores[name] = ts
    return report


def write_report(report: ScoreReport, out_path: str | os.PathLike[str], with_extra: bool = True) -> None:
    """Write ``total_eval.json`` (indent 4, as official)."""
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(report.to_json(with_extra), fh, indent=4)
