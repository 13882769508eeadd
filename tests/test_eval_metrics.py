"""Official metrics against hand-made cases and an independent straightforward computation.

The independent code below is written from the reference text (docs/official_quirks.md#metrics), not by
calling stchat.eval.
"""

from __future__ import annotations

import random
import re

import pytest

from stchat.eval import metrics, official
from stchat.eval.results import ResultFileError

# ------------------------------------------------------------------------------ independent helpers


def ind_tiou(a, b):
    lo, hi = max(a[0], b[0]), min(a[1], b[1])
    union = max(a[1], b[1]) - min(a[0], b[0])
    if union == 0:
        return None  # the official code raises here
    return max(0.0, max(hi - lo, 0) / union)


def ind_iou(p, q):
    w = max(0, min(p[2], q[2]) - max(p[0], q[0]))
    h = max(0, min(p[3], q[3]) - max(p[1], q[1]))
    inter = w * h
    union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
    return 0 if union == 0 else inter / union


def ind_st(rec, task):
    s0, s1 = rec["split"]
    d = s1 - s0 + 1
    W, H = rec["width"], rec["height"]
    text = rec["outputs"]
    # token indices straight from the raw tokens
    # last box per token index (a dict keeps the first appearance's position), then to frames; two
    # indices can land on one frame when the clip has fewer than 100 frames: the later index wins
    by_index = {}
    for m in re.finditer(
        r"<TEMP-(\d+)>:\s*\[<WIDTH-(\d+)><HEIGHT-(\d+)><WIDTH-(\d+)><HEIGHT-(\d+)>\]",
        text,
    ):
        k, a, b, c, e = map(int, m.groups())
        by_index[k] = (a, b, c, e)
    pairs = {}
    for k, (a, b, c, e) in by_index.items():
        key = str(round(s0 + k / 99 * (d - 1)))
        pairs[key] = [round(a / 99 * W), round(b / 99 * H), round(c / 99 * W), round(e / 99 * H)]
    gt = rec["gt"]["svg"]
    common = [t for t in gt if t in pairs]
    allk = set(gt) | set(pairs)
    ious = sum(ind_iou(gt[t], pairs[t]) for t in common)
    siou = ious / max(len(common), 1)
    stiou = ious / max(len(allk), 1)
    if task == "svg":
        return 0.0, siou, stiou
    m = re.search(r"\{<TEMP-(\d+)><TEMP-(\d+)>\}", text)
    pred = [float(f"{int(m.group(1)) / 99:.5f}"), float(f"{int(m.group(2)) / 99:.5f}")] if m else [0, 0]
    gtt = [round((f - s0) / (d - 1), 3) for f in rec["gt"]["tvg"]]
    t = ind_tiou(gtt, pred)
    return (0.0 if t is None else t), siou, stiou


def frames(split):
    d = split[1] - split[0] + 1
    return [split[0] + round(i / 99 * (d - 1)) for i in range(100)]


def tok_box(a, b, c, d):
    return f"[<WIDTH-{a:03d}><HEIGHT-{b:03d}><WIDTH-{c:03d}><HEIGHT-{d:03d}>]"


def make_st_record(rng: random.Random, task: str) -> dict:
    s0 = rng.randrange(0, 500)
    split = [s0, s0 + rng.randrange(20, 900)]
    W, H = rng.choice([(640, 360), (1280, 720), (480, 854)])
    fids = frames(split)
    ks = sorted(rng.sample(range(100), rng.randrange(1, 30)))
    gt_svg = {}
    for k in ks:
        x1, y1 = rng.uniform(0, W * 0.6), rng.uniform(0, H * 0.6)
        gt_svg[str(fids[k])] = [x1, y1, x1 + rng.uniform(5, W * 0.4), y1 + rng.uniform(5, H * 0.4)]
    pieces = []
    s, e = sorted(rng.sample(range(100), 2))
    if task != "svg" and rng.random() < 0.8:
        pieces.append("{" + f"<TEMP-{s:03d}><TEMP-{e:03d}>" + "}")
    if task == "elc":
        pieces.insert(0, f"Ends in <TEMP-{e:03d}>, a person walks away.")
    for k in rng.sample(range(100), rng.randrange(0, 30)):
        if rng.random() < 0.5 and ks:
            k = rng.choice(ks)  # a GT frame: predict a box near the GT one
            g = gt_svg[str(fids[k])]
            jit = [rng.randint(-8, 8) for _ in range(4)]
            a, b, c, d = (
                min(99, max(0, round(v / s * 99) + j)) for v, s, j in zip(g, (W, H, W, H), jit, strict=True)
            )
        else:
            a, c = sorted(rng.sample(range(100), 2))
            b, d = sorted(rng.sample(range(100), 2))
        pieces.append(f"<TEMP-{k:03d}>: " + tok_box(a, b, c, d))
    outputs = " ".join(pieces)
    from stchat.processing.decode import replace_and_normalize

    rec = {
        "split": split,
        "width": W,
        "height": H,
        "outputs": outputs,
        "converted_outputs": replace_and_normalize(outputs),
        "gt": {"svg": gt_svg},
    }
    if task != "svg":
        rec["gt"]["tvg"] = [fids[min(ks)], fids[max(ks)]]
    if task == "elc":
        rec["gt"]["caption"] = "a person walks away"
    return rec


# --------------------------------------------------------------------------------------- primitives


def test_parsers_match_reference_shapes():
    assert official.parse_span_from_text("{0.10101,0.50505}") == [0.10101, 0.50505]
    assert official.parse_span_from_text("{ 0.1, 0.5 }") == [0.1, 0.5]
    assert official.parse_span_from_text("{0.1 ,0.5}") == [0, 0]  # the comma must follow the number
    assert official.parse_span_from_text("{-0.1,0.5}") == [0, 0]
    assert official.parse_box_from_text("a [0.1, 0.2, 0.3, 0.4] b [1,1,1,1]") == [0.1, 0.2, 0.3, 0.4]
    assert official.parse_box_from_text("[0.1,, 0.2,, 0.3,, 0.4]") is None  # doubled commas: no match
    assert official.parse_stpair_from_text("3,: [1,2,3,4] 5: [1,2,3,4] 3,:[5,6,7,8]") == {3.0: [5, 6, 7, 8]}


def test_token_text_equals_replace_and_normalize_tokens():
    # the scorer's fast token conversion against the per-token callback of stchat.processing.decode on
    # random mixes of tokens, broken tokens, leading zeros, Unicode digits and the ",]" / ",}" clean-up
    from stchat.processing.decode import replace_and_normalize

    atoms = ["<TEMP-005>", "<WIDTH-0>", "<HEIGHT-00012>", "<TEMP-\u0663>", "<WIDTH->", "<TEMP-1", "x", " ",
             ",", "[", "]", "{", "}", "9", ".", ":", "<HEIGHT-0099>"]  # fmt: skip
    rng = random.Random(3)
    for _ in range(20_000):
        text = "".join(rng.choice(atoms) for _ in range(rng.randrange(0, 14)))
        assert official.token_text(text) == replace_and_normalize(text, return_token=True), text
    assert official.token_text("1.<TEMP-005>: [<WIDTH-010>]") == "1.5,: [10]"  # zeros gone after the "1."


def test_find_stpairs_counts_duplicates_like_the_pair_parser():
    text = "3,: [1,2,3,4] 5: [1,2,3,4] 3,:[5,6,7,8] 1 0,: [1, 2, 3, 4]"
    found = official.find_stpairs(text)
    assert len(found) == 3  # "5:" lacks the comma; "1 0" loses its space first and reads as 10
    assert {float(g[0]): [float(x) for x in g[1:]] for g in found} == official.parse_stpair_from_text(text)


@pytest.mark.parametrize(
    ("a", "b"),
    [([0.1, 0.5], [0.3, 0.9]), ([0.0, 1.0], [0.2, 0.2]), ([0.6, 0.2], [0.1, 0.9]), ([0.2, 0.4], [0.5, 0.7])],
)
def test_temporal_iou_matches_independent(a, b):
    assert official.temporal_iou(a, b) == pytest.approx(ind_tiou(a, b), abs=1e-15)


def test_temporal_iou_zero_union_defined():
    for a, b in (([0.5, 0.5], [0.5, 0.5]), ([0, 0], [0, 0]), ([0.6, 0.4], [0.5, 0.5])):
        assert official.temporal_union_is_zero(a, b)
        assert official.temporal_iou(a, b) == official.ZERO_UNION_TIOU == 0.0


def test_box_iou_cases():
    assert official.iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1
    assert official.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert official.iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0  # union 0
    # reversed box: signed area enters the union (no repair), as official
    assert official.iou([10, 10, 0, 0], [0, 0, 10, 10]) == ind_iou([10, 10, 0, 0], [0, 0, 10, 10])


def test_pred_pixels_bankers_rounding():
    # 99/99 * 640 = 640; 33/99*3 = 1.0; halves go to even: 0.5 -> 0, 1.5 -> 2
    assert official.pred_box_pixels([99, 0, 33, 99], 640, 3) == [640, 0, 213, 3]
    assert round(2.5) == 2 and official.pred_box_pixels([49.5, 0, 0, 0], 2, 1)[0] == round(49.5 / 99 * 2)


# ---------------------------------------------------------------------------------------------- REC


def test_rec_drops_unparsable_and_uses_ge():
    recs = [
        {"gt_bbox": [0, 0, 0.5, 0.5], "converted_outputs": "[0,0,0.5,0.5]"},  # 1.0
        {"gt_bbox": [0, 0, 1, 1], "converted_outputs": "[0,0,0.5,1]"},  # exactly 0.5 -> hit (>=)
        {"gt_bbox": [0, 0, 1, 1], "converted_outputs": "nothing"},  # dropped
        {"gt_bbox": [0, 0, 1, 1], "converted_outputs": None},  # dropped, counted
    ]
    ts = metrics.eval_rec(recs)
    assert ts.official == {"miou": 0.75, "R1@(0.5)": 100.0}
    assert ts.extra["n_scored_official"] == 2
    assert ts.extra["mean_iou"] == pytest.approx(1.5 / 4)
    assert ts.extra["degenerate"] == {"null_outputs": 1, "unparsable_box": 2}


def test_rec_all_unparsable_denominator_one():
    ts = metrics.eval_rec([{"gt_bbox": [0, 0, 1, 1], "converted_outputs": ""}])
    assert ts.official == {"miou": 0.0, "R1@(0.5)": 0.0}


# ---------------------------------------------------------------------------------------------- TVG


def test_tvg_keeps_unparsable_and_strict_thresholds():
    recs = [
        {"gt": [0.0, 0.5], "converted_outputs": "{0.00000,0.50000}"},  # 1.0
        {"gt": [0.0, 1.0], "converted_outputs": "{0.0,0.5}"},  # exactly 0.5 -> not a hit (>)
        {"gt": [0.2, 0.4], "converted_outputs": "no span"},  # 0, kept
        {"gt": [0.0, 0.0], "converted_outputs": "{0,0}"},  # Charades {0,0}: counts 0, no crash
        {"gt": [0.5, 0.5], "converted_outputs": "{0.5,0.5}"},  # official ZeroDivisionError
    ]
    ts = metrics.eval_tvg(recs)
    assert ts.official["miou"] == pytest.approx(1.5 / 5)
    assert ts.official["R1@(0.3)"] == pytest.approx(40.0)
    assert ts.official["R1@(0.5)"] == pytest.approx(20.0)
    assert ts.official["R1@(0.7)"] == pytest.approx(20.0)
    assert ts.extra["tiou_R@0.5"] == pytest.approx(40.0)  # extra uses >=
    assert ts.extra["degenerate"] == {"no_span": 1, "zero_span_at_0": 1, "zero_union_tiou": 1}


# ----------------------------------------------------------------------------------------- ST-Align


def _st(split, gt_svg, outputs, tvg=None, wh=(99, 99)):
    from stchat.processing.decode import replace_and_normalize

    rec = {
        "split": split,
        "width": wh[0],
        "height": wh[1],
        "outputs": outputs,
        "converted_outputs": replace_and_normalize(outputs),
        "gt": {"svg": gt_svg},
    }
    if tvg is not None:
        rec["gt"]["tvg"] = tvg
    return rec


def test_st_frame_matching_duplicates_missing_and_extra():
    split = [0, 99]  # sampled frame k == original frame k
    gt = {"10": [0, 0, 50, 50], "20": [0, 0, 50, 50], "30": [0, 0, 50, 50]}
    out = (
        "{<TEMP-010><TEMP-030>} <TEMP-010>: " + tok_box(0, 0, 99, 99)
        # last duplicate wins -> IoU 1 at 10; 20 missing; 40 extra
        + " <TEMP-010>: " + tok_box(0, 0, 50, 50) + " <TEMP-040>: " + tok_box(0, 0, 50, 50)
    )  # fmt: skip
    ts = metrics.eval_stvg([_st(split, gt, out, tvg=[10, 30])], "stvg", captions=None)
    r = ts.records[0]
    assert r.siou == pytest.approx(1.0)
    assert r.stiou == pytest.approx(1 / 4)
    assert r.tiou == pytest.approx(ind_tiou([0.101, 0.303], [0.10101, 0.30303]))
    assert "duplicate_timestamps" in r.flags


def test_st_reversed_box_flag_reads_the_final_box_per_frame():
    split = [0, 49]  # 50 frames: token indices 10 and 11 both land on frame "5"; the later one wins
    gt = {"5": [0, 0, 10, 10]}
    out = "<TEMP-010>: " + tok_box(50, 0, 10, 10) + " <TEMP-011>: " + tok_box(0, 0, 10, 10)
    r = metrics.eval_stvg([_st(split, gt, out)], "svg", captions=None).records[0]
    assert "reversed_box" not in r.flags and r.siou == ind_iou(gt["5"], [0, 0, round(10 / 99 * 99), 10])
    r = metrics.eval_stvg([_st(split, gt, out.replace("TEMP-011", "TEMP-030"))], "svg", captions=None)
    assert "reversed_box" in r.records[0].flags


def test_st_thresholds_hit_exactly_use_ge():
    split = [0, 99]
    gt = {"10": [0, 0, 99, 99]}
    out = "{<TEMP-000><TEMP-099>} <TEMP-010>: " + tok_box(0, 0, 99, 49)  # box IoU = 49*99/(99*99) < .5
    r = metrics.eval_stvg([_st(split, gt, out, tvg=[0, 99])], "stvg", captions=None)
    assert r.official["tiou@0.7"] == 100.0  # tIoU exactly 1
    gt2 = {"10": [0, 0, 98, 99]}
    out2 = "<TEMP-010>: " + tok_box(0, 0, 49, 99)  # 49/98 == 0.5 exactly -> hit with >=
    r2 = metrics.eval_stvg([_st(split, gt2, out2)], "svg", captions=None)
    assert r2.records[0].siou == 0.5 and r2.official["siou@0.5"] == 100.0 and r2.official["mtiou"] == 0


def test_svg_tiou_zero_even_with_span_and_elc_needs_braces():
    split = [0, 99]
    gt = {"10": [0, 0, 50, 50]}
    out = "{<TEMP-000><TEMP-099>} <TEMP-010>: " + tok_box(0, 0, 50, 50)
    assert metrics.eval_stvg([_st(split, gt, out)], "svg", captions=None).records[0].tiou == 0
    elc = "Ends in <TEMP-050>, a man runs. <TEMP-010>: " + tok_box(0, 0, 50, 50)
    ts = metrics.eval_stvg([_st(split, gt, elc, tvg=[0, 50])], "elc", captions=None)
    assert ts.records[0].tiou == 0 and "no_span" in ts.records[0].flags
    assert ts.official["caption_score"] == {"unavailable": "caption scoring was switched off"}


def test_st_degenerate_cases_do_not_crash():
    # zero-length GT span at frame split0 and no predicted span: official ZeroDivisionError
    r = metrics.eval_stvg([_st([5, 104], {"5": [0, 0, 1, 1]}, "nothing", tvg=[5, 5])], "stvg", captions=None)
    assert r.records[0].tiou == 0.0 and "zero_union_tiou" in r.records[0].flags
    # single-frame clip
    r = metrics.eval_stvg([_st([7, 7], {"7": [0, 0, 1, 1]}, "nothing", tvg=[7, 7])], "stvg", captions=None)
    assert "single_frame_clip" in r.records[0].flags
    # GT key not sampled, predicted token index beyond 99, reversed and out-of-frame boxes, null outputs
    rec = _st([0, 199], {"1": [0, 0, 1, 1]}, "<TEMP-150>: " + tok_box(90, 90, 10, 10), tvg=[0, 10])
    r = metrics.eval_stvg([rec], "stvg", captions=None)
    assert {"gt_frames_not_sampled", "pred_frames_not_sampled", "reversed_box"} <= set(r.records[0].flags)
    rec["outputs"] = rec["converted_outputs"] = None
    r = metrics.eval_stvg([rec], "stvg", captions=None)
    assert r.extra["degenerate"]["null_outputs"] == 1


def test_missing_field_is_a_clear_error():
    with pytest.raises(ResultFileError, match="gt.svg"):
        metrics.eval_stvg(
            [{"split": [0, 9], "width": 1, "height": 1, "outputs": "", "converted_outputs": ""}]
        )


@pytest.mark.parametrize("task", ["stvg", "svg", "elc"])
def test_st_random_records_match_independent(task):
    rng = random.Random(1234 + len(task))
    recs = [make_st_record(rng, task) for _ in range(300)]
    ts = metrics.eval_stvg(recs, task, captions=None)
    ind = [ind_st(r, task) for r in recs]
    for got, exp in zip(ts.records, ind, strict=True):
        assert (got.tiou, got.siou, got.stiou) == pytest.approx(exp, abs=1e-12)
    n = len(recs)
    assert ts.official["mtiou"] == pytest.approx(sum(e[0] for e in ind) / n, abs=1e-12)
    assert ts.official["msiou"] == pytest.approx(sum(e[1] for e in ind) / n, abs=1e-12)
    assert ts.official["mstiou"] == pytest.approx(sum(e[2] for e in ind) / n, abs=1e-12)
    for thr in (0.3, 0.5, 0.7):
        assert ts.official[f"viou@{thr}"] == pytest.approx(100 * sum(e[2] >= thr for e in ind) / n)
        assert ts.official[f"siou@{thr}"] == pytest.approx(100 * sum(e[1] >= thr for e in ind) / n)
        assert ts.official[f"tiou@{thr}"] == pytest.approx(100 * sum(e[0] >= thr for e in ind) / n)
    if task != "svg":
        joint = sum(e[0] >= 0.5 and e[1] >= 0.5 for e in ind)
        assert ts.extra["joint_success_rate@0.5"] == pytest.approx(100 * joint / n)
    assert 0 < ts.official["msiou"] < 1  # the generator really produces overlaps
