"""``stchat eval run`` / ``sweep`` / ``make-synthetic`` end to end with the real tiny golden model (CPU).

Covers the three ways of naming a benchmark, RefCOCO (image) samples, subsets with resume, and the sweep.
Generation is capped at a few tokens: these tests check plumbing, layout and bookkeeping, and the tiny
model's answers are noise, so no test asserts a metric value the model would have to earn.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stchat.cli import main
from stchat.eval.results import iter_result_files, read_records
from stchat.eval.score import score_dir
from stchat.video.io import read_frames

pytestmark = pytest.mark.slow

CLIP = "syn_c_640x360_30fps_noaudio_longgop"  # short, 640x360: the cheapest clip to decode
MODEL_ARGS = ["--device", "cpu", "--dtype", "float32", "--max-new-tokens", "3", "--no-progress"]


def _run(*argv: str | Path) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    assert _run("eval", "make-synthetic", "--out", root, "--clips", CLIP, "--tasks", "stvg", "tvg") == 0
    return root


def _ids(path: Path) -> list[str]:
    return [r["id"] for r in read_records(path).records]


@pytest.fixture(scope="module")
def refcoco(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> tuple[Path, list[list[float]]]:
    """A RefCOCO-format split of 3 PNG frames of a synthetic clip, with the target's exact box."""
    root = tmp_path_factory.mktemp("refcoco")
    (root / "sources").mkdir()
    gt = json.loads((synthetic_dir / f"{CLIP}.json").read_text())
    target = next(o for o in gt["objects"] if o["role"] == "target")
    picks = [target["track"][i] for i in (0, 40, 80)]
    frames = read_frames(synthetic_dir / f"{CLIP}.mp4", [t["frame"] for t in picks])
    images, anns, boxes = [], [], []
    for i, (t, rgb) in enumerate(zip(picks, frames, strict=True)):
        name = f"frame_{t['frame']:04d}.png"
        Image.fromarray(rgb).save(root / "sources" / name)
        x1, y1, x2, y2 = t["box_px"]
        images.append({"file_name": name, "height": gt["height"], "width": gt["width"],
                       "caption": f"the {target['name']}", "id": 100 + i})
        anns.append({"bbox": [x1, y1, x2 - x1, y2 - y1], "id": 100 + i})
        boxes.append([round(v, 3) for v in (x1 / gt["width"], y1 / gt["height"], x2 / gt["width"],
                                            y2 / gt["height"])])
    (root / "refcoco_testA.json").write_text(json.dumps({"images": images, "annotations": anns}))
    return root, boxes


def test_rec_single_file(
    refcoco: tuple[Path, list[list[float]]], golden_model_dir: Path, tmp_path: Path
) -> None:
    root, boxes = refcoco
    out = tmp_path / "out"
    rc = _run("eval", "run", "--annotations", root / "refcoco_testA.json", "--task", "rec",
              "--media-root", root / "sources", "--model", golden_model_dir, "--save-dir", out, *MODEL_ARGS)
    assert rc == 0
    final = out / "model" / "default" / "rec" / "refcoco" / "refcoco_testA.json"
    recs = read_records(final).records
    assert [r["id"] for r in recs] == ["0", "1", "2"]
    for r, box in zip(recs, boxes, strict=True):
        # the official RefCOCOEvalDataset record fields, plus the model's answer
        assert r["data_type"] == "image" and r["gt_bbox"] == box
        assert Path(r["image_path"]).parent == root / "sources"
        assert r["image_id"] == Path(r["image_path"]).name
        assert r["prompt"].startswith("<image>\n") and "the yellow square" in r["prompt"]
        fields = {"event", "conversations", "width", "height", "variables", "outputs", "converted_outputs"}
        assert fields <= set(r)
        assert 1 <= r["timing"]["new_tokens"] <= 3
    rep = score_dir(out, captions=None)
    ts = rep.task_scores["refcoco_testA"]
    assert ts.task == "rec" and len(ts.records) == 3
    assert set(rep.official["refcoco_testA"]) >= {"miou", "R1@(0.5)"}


def test_official_root_subsets_resume_across_forms(
    bench: Path, golden_model_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    common = ["--model", golden_model_dir, "--save-dir", out, *MODEL_ARGS]
    assert _run("eval", "run", "--official-root", bench, "--names", "stvg", "charades_sta", "--first", "1",
                *common) == 0
    stvg = out / "model" / "default" / "st-align" / "vidstg" / "stvg.json"
    tvg = out / "model" / "default" / "tvg" / "charades_sta" / "charades_sta.json"
    assert _ids(stvg) == ["0"] and _ids(tvg) == ["0"]
    first_line = stvg.read_bytes()
    # a random subset resumes into the same file: ids are positions in the annotation file, so sample 0
    # is not run again and every id appears once
    from stchat.eval.datasets import select_indices

    picked = [str(i) for i in select_indices(3, random_n=2, seed=5)]
    assert _run("eval", "run", "--official-root", bench, "--names", "stvg", "--random", "2",
                "--subset-seed", "5", *common) == 0
    ids = _ids(stvg)
    assert len(ids) == len(set(ids)) and set(ids) == {"0", *picked}
    assert stvg.read_bytes().startswith(first_line)  # earlier records untouched
    # the manifest form names the same files: everything of the first 3 not yet done is run, nothing twice
    before = stvg.read_bytes()
    assert _run("eval", "run", "--benchmark", bench / "benchmark.json", "--only", "stvg", *common) == 0
    assert sorted(_ids(stvg)) == ["0", "1", "2"] and stvg.read_bytes().startswith(before)
    # per-sample exports (the tiny model's answers rarely place anything): only complete folders of
    # finished samples, no temporary leftovers, and nothing a scorer would take for a result file
    from stchat.eval import exports

    root = exports.exports_root(stvg)
    for folder in root.iterdir() if root.is_dir() else ():
        assert folder.name in {"0", "1", "2"}
        assert sorted(p.name for p in folder.iterdir()) == sorted(exports.FILES)
    assert sorted(Path(p).name for p in iter_result_files(out)) == ["charades_sta.json", "stvg.json"]


def test_sweep_end_to_end(bench: Path, golden_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    rc = _run("eval", "sweep", "--benchmark", bench / "benchmark.json", "--only", "stvg", "--first", "1",
              "--values", "0.5", "1.0", "2.0", "--model", golden_model_dir, "--save-dir", tmp_path / "res",
              "--out", out, *MODEL_ARGS)
    assert rc == 0
    for t in ("0.5", "1.0", "2.0"):
        f = tmp_path / "res" / "model" / "default" / f"temperature={t}" / "st-align" / "vidstg" / "stvg.json"
        (rec,) = read_records(f).records
        d = rec["timing"]["decoding"]
        assert d["do_sample"] and d["temperature"] == float(t)
    summary = json.loads((out / "sweep.json").read_text())
    assert summary["settings"] == ["temperature=0.5", "temperature=1.0", "temperature=2.0"]
    assert summary["counts"] == [1, 1, 1]
    rows = (out / "sweep.csv").read_text().splitlines()
    assert rows[0].startswith("temperature,samples,") and len(rows) == 5
    img = np.asarray(Image.open(out / "sweep.png").convert("L"))
    assert img.shape[0] > 600 and img.shape[1] > 800 and img.std() > 10
