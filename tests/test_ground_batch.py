"""Batch ``stchat ground``: folder / CSV / JSONL sources, one folder per item, summary, resume."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from stchat.batch import RESULTS, SUMMARY, BatchError, BatchItem, read_items, run_batch
from stchat.cli import main
from stchat.errors import VideoError

CLIP_A = "syn_a_640x360_25fps_tone.mp4"
CLIP_C = "syn_c_640x360_30fps_noaudio_longgop.mp4"


def test_manifests_and_folders_give_items_with_stable_ids(tmp_path: Path, synthetic_dir: Path) -> None:
    rows = f"video,query,task\n{synthetic_dir / CLIP_A},a red square,\nsub/x.mp4,,tvg\n"
    (tmp_path / "m.csv").write_text(rows)
    items = read_items(tmp_path / "m.csv", "default q", "stvg")
    assert items == [
        BatchItem("0000_syn_a_640x360_25fps_tone", str(synthetic_dir / CLIP_A), "a red square", "stvg"),
        BatchItem("0001_x", str(tmp_path / "sub" / "x.mp4"), "default q", "tvg"),
    ]
    (tmp_path / "m.jsonl").write_text(json.dumps({"video": "v 1.mp4", "query": "q"}) + "\n\n")
    assert read_items(tmp_path / "m.jsonl", None, "tvg") == [
        BatchItem("0000_v_1", str(tmp_path / "v 1.mp4"), "q", "tvg")]
    folder = read_items(synthetic_dir, "a ball", "stvg")
    assert [i.video for i in folder] == sorted(str(p) for p in synthetic_dir.glob("*.mp4"))
    with pytest.raises(BatchError, match="needs the QUERY"):
        read_items(synthetic_dir, None, "stvg")
    (tmp_path / "bad.jsonl").write_text('{"query": "no video"}\n')
    with pytest.raises(BatchError, match="row 1 has no 'video'"):
        read_items(tmp_path / "bad.jsonl", None, "stvg")


def test_interrupted_batch_resumes_without_redoing_or_duplicating(tmp_path: Path) -> None:
    items = [BatchItem(f"{i:04d}_v", f"v{i}.mp4", "q", "stvg") for i in range(4)]
    calls: list[str] = []

    def ground(item: BatchItem, folder: Path):
        calls.append(item.sample_id)
        if item.sample_id == "0002_v" and len(calls) == 3:
            raise KeyboardInterrupt  # killed in the middle of the third item
        if item.sample_id == "0001_v":
            raise VideoError("v1.mp4: file not found")
        folder.mkdir(parents=True, exist_ok=True)
        return "ok", None, None

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_batch(items, ground, out, progress=False)
    assert calls == ["0000_v", "0001_v", "0002_v"]
    stats = run_batch(items, ground, out, progress=False)
    assert (stats.written, stats.skipped) == (2, 2) and calls[3:] == ["0002_v", "0003_v"]
    ids = [json.loads(line)["id"] for line in (out / RESULTS).read_text().splitlines()]
    assert ids == ["0000_v", "0001_v", "0002_v", "0003_v"]
    rows = list(csv.DictReader((out / SUMMARY).open()))
    assert [(r["id"], r["status"]) for r in rows] == [
        ("0000_v", "ok"), ("0001_v", "error"), ("0002_v", "ok"), ("0003_v", "ok")]
    assert rows[1]["error"] == "v1.mp4: file not found"


@pytest.mark.slow
def test_ground_a_manifest_end_to_end(tmp_path: Path, synthetic_dir: Path, golden_model_dir: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in [
        {"video": str(synthetic_dir / CLIP_A), "query": "a red square"},
        {"video": str(tmp_path / "missing.mp4"), "query": "a dog"},
        {"video": str(synthetic_dir / CLIP_C), "query": "a ball rolls", "task": "tvg"},
    ]) + "\n")
    out = tmp_path / "out"
    argv = ["ground", str(manifest), "--model", str(golden_model_dir), "--device", "cpu", "--dtype",
            "float32", "--max-new-tokens", "3", "--no-render", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    rows = list(csv.DictReader((out / SUMMARY).open()))
    assert [r["status"] for r in rows] == ["ok", "error", "ok"] and "not found" in rows[1]["error"]
    first = json.loads((out / rows[0]["folder"] / "answer.json").read_text())
    assert first["task"] == "stvg" and first["query"].startswith("At which time interval")
    assert json.loads((out / rows[2]["folder"] / "answer.json").read_text())["task"] == "tvg"
    assert main(argv) == 0  # everything done: nothing is asked again
    assert "0 new, 3 already done" in capsys.readouterr().err
