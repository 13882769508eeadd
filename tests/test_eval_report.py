"""``stchat eval report`` on result files built from the synthetic benchmark's ground truth.

The predictions here are written in the model's own token format from the GT, shifted by a known number
of sampled frames per sample, so every expected number is computed independently in the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stchat.eval import breakdown as bd
from stchat.eval.official import sampled_frame_ids
from stchat.eval.report import build_report
from stchat.eval.synthetic_bench import load_manifest, make_synthetic_benchmark
from stchat.processing.decode import replace_and_normalize


def _tok(kind: str, k: int) -> str:
    return f"<{kind}-{min(99, max(0, k)):03d}>"


def _st_record(item: dict, media_root: Path, shift: int, idx: int) -> dict:
    """Official-layout STVG record whose answer is the GT moved by ``shift`` sampled frames."""
    m = item["meta"]
    a, b = m["split"]
    w, h = m["width"], m["height"]
    ids = sampled_frame_ids([a, b])
    track = {int(k): v for k, v in m["spatial_token"]["<bboxes>"].items()}
    gt_svg = {str(f): [x, y, x + bw, y + bh] for f, (x, y, bw, bh) in track.items() if f in ids}
    s, e = m["time_token"]["<s>"], m["time_token"]["<e>"]
    ks, ke = (round((s - a) / (b - a) * 99) + shift, round((e - a) / (b - a) * 99) + shift)
    pairs = []
    for k, f in enumerate(ids):
        if f in track and 0 <= k + shift <= 99:
            x, y, bw, bh = track[f]
            pairs.append(f"{_tok('TEMP', k + shift)}: [{_tok('WIDTH', round(x / w * 99))}"
                         f"{_tok('HEIGHT', round(y / h * 99))}{_tok('WIDTH', round((x + bw) / w * 99))}"
                         f"{_tok('HEIGHT', round((y + bh) / h * 99))}]")
    out = "{" + _tok("TEMP", ks) + _tok("TEMP", ke) + "} " + ", ".join(pairs)
    prompt = item["conversations"][0]["value"].replace("From <s> to <e>", "")
    return {
        "data_type": "video",
        "video_path": str(media_root / item["video_path"]),
        "prompt": prompt,
        "gt": {"tvg": [s, e], "svg": gt_svg},
        "width": w,
        "height": h,
        "frame_num": 100,
        "split": [a, b],
        "outputs": out,
        "converted_outputs": replace_and_normalize(out),
        "id": str(idx),
    }


@pytest.fixture(scope="module")
def report_dir(
    tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path
) -> tuple[Path, list[dict], list[int]]:
    root = tmp_path_factory.mktemp("report")
    entries = make_synthetic_benchmark(root / "bench", synthetic_dir, tasks=("stvg",))
    e = entries[0]
    items = json.loads(Path(e.ann_path).read_text())
    shifts = [(i * 7) % 40 for i in range(len(items))]  # 0 .. 39 sampled frames off
    recs = [_st_record(it, Path(e.data_folder), sh, i)
            for i, (it, sh) in enumerate(zip(items, shifts, strict=True))]
    res = root / "results" / "tiny" / "default" / "st-align" / "vidstg" / "stvg.json"
    res.parent.mkdir(parents=True)
    res.write_text("".join(json.dumps(r) + "\n" for r in recs))
    build_report(root / "results", root / "out", gallery_n=1, captions=False)
    return root / "out", recs, shifts


def test_synthetic_benchmark_is_official_st_align(tmp_path: Path, synthetic_dir: Path) -> None:
    entries = make_synthetic_benchmark(tmp_path, synthetic_dir, tasks=("stvg", "elc", "tvg"))
    assert [e.name for e in load_manifest(tmp_path / "benchmark.json")] == ["stvg", "elc", "charades_sta"]
    stvg = json.loads(Path(entries[0].ann_path).read_text())
    syn_a = json.loads((synthetic_dir / "syn_a_640x360_25fps_tone.json").read_text())
    full = next(it for it in stvg if it["video_path"].startswith("syn_a") and it["meta"]["variant"] == "full")
    track = syn_a["objects"][0]["track"]
    assert full["meta"]["split"] == [0, syn_a["n_frames"] - 1]
    assert full["meta"]["time_token"] == {"<s>": track[0]["frame"], "<e>": track[-1]["frame"]}
    x1, y1, x2, y2 = track[10]["box_px"]
    assert full["meta"]["spatial_token"]["<bboxes>"][str(track[10]["frame"])] == [x1, y1, x2 - x1, y2 - y1]
    assert full["conversations"][0]["value"].startswith("<video>\n")
    elc = json.loads(Path(entries[1].ann_path).read_text())
    assert all("<region>" in it["meta"]["spatial_token"] and "Ends in <e>" in it["conversations"][1]["value"]
               for it in elc)
    tvg = json.loads(Path(entries[2].ann_path).read_text())
    assert all(0 <= it["timestamp"][0] < it["timestamp"][1] <= 1 for it in tvg)
    # every duration bin and both query-length bins get samples
    fr = [(it["meta"]["time_token"]["<e>"] - it["meta"]["time_token"]["<s>"])
          / (it["meta"]["split"][1] - it["meta"]["split"][0]) for it in stvg]
    assert min(fr) < 0.10 and max(fr) > 0.70 and any(0.3 <= f < 0.7 for f in fr)
    words = [len(it["conversations"][0]["value"].split()) for it in stvg]
    assert min(words) < 50 <= max(words)


def test_report_folder_contents(report_dir) -> None:
    out, recs, _ = report_dir
    for name in ("report.md", "report.html", "metrics.json"):
        assert (out / name).is_file()
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4  # 3 plots + gallery stills, embedded
    md = (out / "report.md").read_text()
    for heading in ("event duration", "target size", "query length", "Pearson", "best and worst"):
        assert heading in md
    for png in ("stvg_breakdowns.png", "stvg_histograms.png", "stvg_scatter.png"):
        img = np.asarray(Image.open(out / "plots" / png).convert("L"))
        assert img.shape[0] > 200 and img.std() > 10
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["official"]["stvg"]) >= {"mtiou", "msiou", "mstiou", "tiou@0.5"}
    gal = metrics["gallery"]["stvg"]
    assert [g["kind"] for g in gal] == ["best", "worst"]
    best = out / gal[0]["folder"]
    assert (best / "clip.mp4").stat().st_size > 1000 and (best / "still.png").is_file()


def test_breakdowns_match_independent_computation(report_dir) -> None:
    out, recs, shifts = report_dir
    metrics = json.loads((out / "metrics.json").read_text())
    tabs = metrics["breakdowns"]["stvg"]
    n = len(recs)
    for name in ("event duration", "target size", "query length"):
        assert sum(r["count"] for r in tabs[name]) == n
    # duration bins from the annotation: (e - s) / (split1 - split0)
    fr = [(r["gt"]["tvg"][1] - r["gt"]["tvg"][0]) / (r["split"][1] - r["split"][0]) for r in recs]
    expect = [sum(lo <= f < hi for f in fr) for _, lo, hi in bd.DURATION_BINS]
    assert [r["count"] for r in tabs["event duration"]] == expect
    # unshifted predictions are near-perfect in time, the most shifted ones far off
    with_shift = [(s, r) for s, r in zip(shifts, recs, strict=True)]
    per = {x["id"]: x for x in metrics["gallery"]["stvg"]}
    assert per  # the best case is one of the unshifted samples
    best = metrics["gallery"]["stvg"][0]
    assert shifts[int(best["id"])] == 0 and best["tiou"] > 0.95 and best["siou"] > 0.8
    assert with_shift
    overall = tabs["overall"][0]
    assert overall["count"] == n
    # official mean tIoU is the same quantity as the breakdown's overall mean
    assert overall["mean_tiou"] == pytest.approx(metrics["official"]["stvg"]["mtiou"], abs=1e-9)
    corr = metrics["correlation"]["stvg"]
    assert corr["n"] == n and -1 <= corr["pearson"] <= 1 and corr["pearson"] > 0  # both fall with the shift


def test_correlations_against_numpy() -> None:
    rng = np.random.default_rng(0)
    t = rng.random(30)
    s = 0.5 * t + 0.5 * rng.random(30)
    samples = [bd.SampleScore(i, str(i), "stvg", float(a), float(b))
               for i, (a, b) in enumerate(zip(t, s, strict=True))]
    c = bd.correlation(samples)
    assert c["pearson"] == pytest.approx(np.corrcoef(t, s)[0, 1])
    rt, rs = np.argsort(np.argsort(t)), np.argsort(np.argsort(s))  # no ties in continuous data
    assert c["spearman"] == pytest.approx(np.corrcoef(rt, rs)[0, 1])
    pairs = [(0, 0), (0, 0), (1, 1), (1, 0.5)]
    tied = [bd.SampleScore(i, str(i), "stvg", v, w) for i, (v, w) in enumerate(pairs)]
    assert bd.spearman([0, 0, 1, 1], [0, 0, 1, 0.5]) == pytest.approx(
        np.corrcoef([0.5, 0.5, 2.5, 2.5], [0.5, 0.5, 3, 2])[0, 1])
    assert bd.correlation(tied)["n"] == 4
    assert bd.pearson([1, 1, 1], [0, 1, 2]) is None


def test_query_bins_configurable() -> None:
    assert [b[0] for b in bd.query_bins([20, 50])] == ["<20 words", "20-49 words", ">=50 words"]
    with pytest.raises(ValueError):
        bd.query_bins([0])
