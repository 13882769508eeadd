"""Official benchmark metrics (``inference/src/metrics.py``: ``eval_rec``, ``eval_tvg``, ``eval_stvg``).

Every number of the ``official`` dict is computed with the official formulas, in the official order of
floating-point operations (sums accumulated record by record, ``count / (n / 100)`` for the ST and TVG
rates, ``count / n * 100`` for REC), so the values equal those of ``multi_task_eval.py`` on the same
result files. The quirks the published numbers depend on (reference Q20, Q21):

* REC drops records without a parsable box from the denominator; TVG keeps them (as 0).
* Thresholds: REC and ST use ``>=``, TVG uses ``>`` (strict).
* ST spans are read from the 5-decimal ``converted_outputs``; boxes from the *integer token indices*
  (``replace_and_normalize(outputs, return_token=True)``), turned into integer pixel boxes with banker's
  rounding; GT times are rounded to 3 decimals; a repeated timestamp keeps its last box; frames match by
  exact string key; SVG's tIoU is 0 by rule; ELC's tIoU needs a ``{a, b}`` span in the answer (its
  ``Ends in t`` is not read), so it is 0 for answers in the trained ELC format.

Where the official evaluator crashes we define a value, count the case and carry on (``degenerate``):

* ``zero_union_tiou``: both spans collapse onto one point (official ``ZeroDivisionError``) → tIoU 0
  (see :data:`stchat.eval.official.ZERO_UNION_TIOU`).
* ``single_frame_clip``: ``split[0] == split[1]`` (official ``ZeroDivisionError`` in the GT time) → every
  GT time is 0.
* ``gt_frames_not_sampled`` / ``pred_frames_not_sampled``: a GT key that is not one of the 100 sampled
  frame ids, or a predicted token index that maps outside them (official ``AssertionError``) → the frame is
  kept and matched by string key like any other (so it only lowers sIoU/vIoU).
* ``null_outputs``: ``outputs`` / ``converted_outputs`` is ``null`` (the official writer stores ``None``
  when normalisation failed; its scorer would crash) → treated as an empty answer.

The per-record sum of box IoUs over matched frames uses ``math.fsum``: the official code sums in the
iteration order of a Python ``set`` of strings, which changes from run to run with string hashing, so its
last bit is not reproducible even by itself; the correctly rounded sum is the order-independent choice.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stchat.eval import official as off
from stchat.eval.captions import caption_score, pred_caption
from stchat.eval.results import ResultFileError
from stchat.tasks import eval_family
from stchat.video.sampling import NUM_FRAMES

THRESHOLDS = (0.3, 0.5, 0.7)

CaptionScorer = Callable[[Sequence[str], Sequence[str]], dict[str, object]]


@dataclass
class RecordScore:
    """Per-record values (``None`` where the task has no such value)."""

    index: int
    tiou: float | None = None
    siou: float | None = None  # ST: mean box IoU over matched frames; REC: the box IoU
    stiou: float | None = None
    scored: bool = True  # REC: False when dropped from the official denominator
    flags: list[str] = field(default_factory=list)  # degenerate-case names that applied


@dataclass
class TaskScore:
    task: str
    official: dict[str, Any]
    extra: dict[str, Any]
    records: list[RecordScore]


def _get(record: Mapping[str, Any], index: int, *keys: str) -> Any:
    cur: Any = record
    for k in keys:
        if not isinstance(cur, Mapping) or k not in cur:
            raise ResultFileError(f"record {index} has no {'.'.join(keys)!r} (needed by the scorer)")
        cur = cur[k]
    return cur


def _text(record: Mapping[str, Any], index: int, key: str, counts: Counter[str], flags: list[str]) -> str:
    value = _get(record, index, key)
    if value is None:
        if "null_outputs" not in flags:  # count a record once even when both texts are null
            counts["null_outputs"] += 1
            flags.append("null_outputs")
        return ""
    if not isinstance(value, str):
        raise ResultFileError(f"record {index}: {key!r} is not text")
    return value


def _rate_ge(values: Sequence[float], thr: float) -> float:
    n = len(values)
    return sum(1 for v in values if v >= thr) / (n / 100) if n else 0.0


def _mean(values: Sequence[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total / len(values) if values else 0.0


def _extra_block(name: str, values: Sequence[float]) -> dict[str, float]:
    out = {f"mean_{name}": _mean(values)}
    for thr in THRESHOLDS:
        out[f"{name}_R@{thr}"] = _rate_ge(values, thr)
    return out


# --------------------------------------------------------------------------------------------- REC
def eval_rec(records: Sequence[Mapping[str, Any]]) -> TaskScore:
    counts: Counter[str] = Counter()
    per: list[RecordScore] = []
    total_iou = 0
    num = 0
    r_5 = 0
    for i, rec in enumerate(records):
        flags: list[str] = []
        gt = _get(rec, i, "gt_bbox")
        pred = off.parse_box_from_text(_text(rec, i, "converted_outputs", counts, flags))
        if pred is None:
            counts["unparsable_box"] += 1
            per.append(RecordScore(index=i, siou=0.0, scored=False, flags=[*flags, "unparsable_box"]))
            continue
        if pred[0] > pred[2] or pred[1] > pred[3]:
            counts["reversed_box"] += 1
            flags.append("reversed_box")
        v = off.iou(gt, pred)
        num += 1
        total_iou += v
        if v >= 0.5:
            r_5 += 1
        per.append(RecordScore(index=i, siou=v, flags=flags))
    if num == 0:
        num = 1
    official = {"miou": total_iou / num, "R1@(0.5)": r_5 / num * 100}
    # Extra: every record in the denominator (an unparsable answer scores 0), as TVG and ST do.
    all_ious = [r.siou or 0.0 for r in per]
    extra = {"n_records": len(records), "n_scored_official": sum(r.scored for r in per)}
    extra.update(_extra_block("iou", all_ious))
    extra["degenerate"] = dict(sorted(counts.items()))
    return TaskScore("rec", official, extra, per)


# --------------------------------------------------------------------------------------------- TVG
def eval_tvg(records: Sequence[Mapping[str, Any]]) -> TaskScore:
    counts: Counter[str] = Counter()
    per: list[RecordScore] = []
    total_iou = 0
    r_3 = r_5 = r_7 = 0
    for i, rec in enumerate(records):
        flags: list[str] = []
        gt = _get(rec, i, "gt")
        text = _text(rec, i, "converted_outputs", counts, flags)
        pred = off.parse_span_from_text(text)
        if pred == [0, 0]:
            # Official: no span, or a literal {0, 0}: counts 0 but stays in the denominator.
            name = "no_span" if off.find_span(text) is None else "zero_span_at_0"
            counts[name] += 1
            per.append(RecordScore(index=i, tiou=0.0, flags=[*flags, name]))
            continue
        if pred[0] > pred[1]:
            counts["reversed_span"] += 1
            flags.append("reversed_span")
        if off.temporal_union_is_zero(pred, gt):
            counts["zero_union_tiou"] += 1
            flags.append("zero_union_tiou")
        v = off.temporal_iou(pred, gt)
        total_iou += v
        r_3 += v > 0.3
        r_5 += v > 0.5
        r_7 += v > 0.7
        per.append(RecordScore(index=i, tiou=v, flags=flags))
    n = len(records)
    official = {
        "miou": total_iou / n,
        "R1@(0.3)": r_3 / (n / 100),
        "R1@(0.5)": r_5 / (n / 100),
        "R1@(0.7)": r_7 / (n / 100),
    }
    extra: dict[str, Any] = {"n_records": n}
    extra.update(_extra_block("tiou", [r.tiou or 0.0 for r in per]))
    extra["degenerate"] = dict(sorted(counts.items()))
    return TaskScore("tvg", official, extra, per)


# ---------------------------------------------------------------------------------------- ST-Align
def _st_fields(rec: Mapping[str, Any], i: int) -> tuple[Any, Any, Any]:
    """``split``, ``width``, ``height`` of a record (the slow path names what is missing)."""
    try:
        return rec["split"], rec["width"], rec["height"]
    except (KeyError, TypeError):
        return _get(rec, i, "split"), _get(rec, i, "width"), _get(rec, i, "height")


def _st_record(rec: Mapping[str, Any], i: int, task: str, counts: Counter[str]) -> RecordScore:
    # The scorer's hot loop (10k records of ~100 tokens, ~50 GT frames each): the official expressions in
    # the official order, with Python-level overhead kept out (no per-token callbacks, no 100-id frame set
    # per record, one pair scan). tests/test_eval_metrics.py checks the values against an independent
    # computation, benchmarks/score.py the time against the official scorer.
    flags: list[str] = []

    def flag(name: str) -> None:
        counts[name] += 1
        flags.append(name)

    split, width, height = _st_fields(rec, i)
    outputs = _text(rec, i, "outputs", counts, flags)
    converted = _text(rec, i, "converted_outputs", counts, flags)
    svg_gt = _get(rec, i, "gt", "svg")
    if not isinstance(svg_gt, Mapping):
        raise ResultFileError(f"record {i}: 'gt.svg' is not a {{frame: box}} object")
    first = split[0]
    duration = split[1] - first + 1

    span_text_pred = off.find_span(converted)
    found = off.find_stpairs(off.token_text(outputs))
    # ``parse_stpair_from_text``: keyed by float(t), a repeated t keeps its first position and last box.
    pairs = {float(g[0]): g for g in found}
    if not pairs:
        flag("no_boxes")
    elif len(found) > len(pairs):
        flag("duplicate_timestamps")

    offsets = _sampled_offsets(duration)
    if _gt_keys_not_sampled(svg_gt, first, offsets):
        flag("gt_frames_not_sampled")
    pred: dict[str, list[int]] = {}
    outside = False
    scale = NUM_FRAMES - 1
    for k, g in pairs.items():
        # Inlined ``off.pred_frame_key`` and ``off.pred_box_pixels`` (same expressions), plus the official
        # assert's frame formula (``split0 + round(x)``, offset by the sampled frame's own formula).
        x = k / scale * (duration - 1)
        if round(x) not in offsets:
            outside = True
        box = [
            round(float(g[1]) / 99 * width),
            round(float(g[2]) / 99 * height),
            round(float(g[3]) / 99 * width),
            round(float(g[4]) / 99 * height),
        ]
        pred[str(round(first + x))] = box
    if outside:
        flag("pred_frames_not_sampled")
    if any(b[0] > b[2] or b[1] > b[3] for b in pred.values()):
        flag("reversed_box")

    if task == "svg":
        tiou = 0.0  # official rule: SVG has no temporal score
    else:
        tvg_pred = [0, 0] if span_text_pred is None else span_text_pred  # ``parse_span_from_text``
        tvg_frames = _get(rec, i, "gt", "tvg")
        if duration == 1:
            flag("single_frame_clip")
            tvg_gt = [0.0 for _ in tvg_frames]
        else:
            tvg_gt = [off.gt_time(f, split) for f in tvg_frames]
        if span_text_pred is None:
            flag("no_span")
        elif tvg_pred[0] > tvg_pred[1]:
            flag("reversed_span")
        if off.temporal_union_is_zero(tvg_gt, tvg_pred):
            flag("zero_union_tiou")
        tiou = off.temporal_iou(tvg_gt, tvg_pred)

    inter = svg_gt.keys() & pred.keys()
    n_union = len(svg_gt) + len(pred) - len(inter)  # keys are unique within each dict
    # fsum is correctly rounded, so the (set-order) sequence of the terms does not matter.
    iou_sum = math.fsum([off.iou(svg_gt[t], pred[t]) for t in inter]) if inter else 0.0
    siou = iou_sum / max(len(inter), 1)
    stiou = iou_sum / max(n_union, 1)
    return RecordScore(index=i, tiou=tiou, siou=siou, stiou=stiou, flags=flags)


@functools.lru_cache(maxsize=4096)
def _sampled_offsets(duration: int) -> frozenset[int]:
    """``frame id - split[0]`` of the 100 sampled frames (they depend on the clip length only)."""
    return frozenset(round(i / (NUM_FRAMES - 1) * (duration - 1)) for i in range(NUM_FRAMES))


def _gt_keys_not_sampled(svg_gt: Mapping[str, Any], first: int, offsets: frozenset[int]) -> bool:
    """Whether a GT key fails the official ``assert int(k) in frame_idx`` (a key ``int`` refuses too)."""
    # ``not all(offset in offsets for offset in (int(k) - first for k in svg_gt))`` as a chain of C-level
    # maps: this runs for every GT frame of every record.
    try:
        return not all(map(offsets.__contains__, map(first.__rsub__, map(int, svg_gt))))
    except (ValueError, TypeError, OverflowError):  # a key int() refuses fails the assert too
        return True


def eval_stvg(
    records: Sequence[Mapping[str, Any]],
    task: str = "stvg",
    captions: CaptionScorer | None = caption_score,
) -> TaskScore:
    """Official ``eval_stvg(results, task)`` for ``stvg`` / ``svg`` / ``elc``.

    ``captions``: the ELC caption scorer (``None`` skips it and reports it as not computed).
    """
    if eval_family(task) != "st-align":
        raise ResultFileError(f"unknown ST-Align task {task!r}")
    counts: Counter[str] = Counter()
    per = [_st_record(rec, i, task, counts) for i, rec in enumerate(records)]
    n = len(records)
    tious = [r.tiou or 0.0 for r in per]
    sious = [r.siou or 0.0 for r in per]
    stious = [r.stiou or 0.0 for r in per]

    caption: dict[str, object] = {}
    if task == "elc":
        if captions is None:
            caption = {"unavailable": "caption scoring was switched off"}
        else:
            gts = []
            for rec in records:
                gt = rec.get("gt")
                # Official: ``try: gt["caption"] except: ''``
                gts.append(gt["caption"] if isinstance(gt, Mapping) and "caption" in gt else "")
            preds = [pred_caption(rec.get("outputs") or "") for rec in records]
            caption = captions(gts, preds)

    official: dict[str, Any] = {"mtiou": _mean(tious)}
    official.update({f"tiou@{t}": _rate_ge(tious, t) for t in THRESHOLDS})
    official["msiou"] = _mean(sious)
    official.update({f"siou@{t}": _rate_ge(sious, t) for t in THRESHOLDS})
    official["mstiou"] = _mean(stious)
    official.update({f"viou@{t}": _rate_ge(stious, t) for t in THRESHOLDS})
    official["caption_score"] = caption

    extra: dict[str, Any] = {"n_records": n}
    if task != "svg":
        extra.update(_extra_block("tiou", tious))
    extra.update(_extra_block("siou", sious))
    extra.update(_extra_block("stiou", stious))
    if task != "svg":
        joint = sum(1 for a, b in zip(tious, sious, strict=True) if a >= 0.5 and b >= 0.5)
        extra["joint_success_rate@0.5"] = joint / (n / 100) if n else 0.0
    extra["degenerate"] = dict(sorted(counts.items()))
    return TaskScore(task, official, extra, per)
