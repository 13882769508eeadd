"""``stchat train run | merge | prepare-vidor`` from the command line: help, one-line errors on bad input
(before any model is loaded), and an end-to-end run -> merge with the tiny golden model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from stchat.cli import main
from stchat.model.adapter import apply_adapter
from stchat.model.loading import load_model
from stchat.train.data import TrainDataset, load_records

NO_MODEL = "/nonexistent/model"  # data errors must be reported before the model is even looked up


def _error_line(capsys, argv: list[str]) -> str:
    rc = main(argv)
    captured = capsys.readouterr()
    # The model loader's own progress bar ("Loading weights: ...") is not part of the error report.
    lines = [ln for ln in captured.err.splitlines() if ln.strip() and not ln.startswith("Loading weights")]
    assert rc == 2, captured
    assert len(lines) == 1 and lines[0].startswith("stchat: error: "), lines
    assert "Traceback" not in captured.err
    return lines[0]


def _image_data(d, golden_dir, n: int = 2, media: str = "image.png") -> str:
    shutil.copy(golden_dir / "media" / "image.png", d / "image.png")
    conv = [{"from": "human", "value": "<image>\nWhere is the red square?"},
            {"from": "gpt", "value": "[0.4321,0.3579,0.6172,0.7531]"}]
    samples = [{"id": f"s{i}", "image": media, "format": "stchat", "conversations": conv} for i in range(n)]
    (d / "data.json").write_text(json.dumps(samples))
    return str(d / "data.json")


def test_run_help_lists_the_options():
    proc = subprocess.run([sys.executable, "-m", "stchat.cli", "train", "run", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == ""
    for opt in ("--model", "--data", "--format", "--resume", "--gradient-checkpointing", "--reduction",
                "--lora-dropout"):
        assert opt in proc.stdout
    for action in ("run", "merge", "prepare-vidor"):
        assert action in subprocess.run([sys.executable, "-m", "stchat.cli", "train", "--help"],
                                        capture_output=True, text=True, timeout=120).stdout


def test_run_errors_are_one_line(capsys, tmp_path, golden_dir):
    line = _error_line(capsys, ["train", "run", "--model", NO_MODEL, "--data", str(tmp_path / "nope.json")])
    assert "training data file not found" in line and "nope.json" in line
    (tmp_path / "bad.json").write_text('[{"id": 1,')
    line = _error_line(capsys, ["train", "run", "--model", NO_MODEL, "--data", str(tmp_path / "bad.json")])
    assert "not valid JSON" in line
    data = _image_data(tmp_path, golden_dir, n=3, media="missing.png")
    line = _error_line(capsys, ["train", "run", "--model", NO_MODEL, "--data", data])
    assert "media file not found" in line and "missing.png" in line and "3 of 3" in line
    (tmp_path / "cfg.yaml").write_text("model: [unclosed\n")
    line = _error_line(capsys, ["train", "run", str(tmp_path / "cfg.yaml")])
    assert "cannot parse the training config" in line
    (tmp_path / "cfg2.yaml").write_text("modle: x\n")
    line = _error_line(capsys, ["train", "run", str(tmp_path / "cfg2.yaml")])
    assert "unknown training option(s): modle" in line
    assert "needs a model and a data path" in _error_line(capsys, ["train", "run"])
    line = _error_line(capsys, ["train", "run", "--model", NO_MODEL, "--data", str(tmp_path / "nope.json"),
                                "--temporal-loss-weight", "0"])
    assert "temporal_loss_weight must be positive" in line
    good = _image_data(tmp_path, golden_dir)
    line = _error_line(capsys, ["train", "run", "--model", NO_MODEL, "--data", good])
    assert "not found" in line and NO_MODEL in line  # good data: now the model is looked up


def test_merge_errors_are_one_line(capsys, tmp_path, golden_model_dir):
    (tmp_path / "empty").mkdir()
    line = _error_line(capsys, ["train", "merge", "--base", str(golden_model_dir), "--adapter",
                                str(tmp_path / "empty"), "--out", str(tmp_path / "m")])
    assert "is not an adapter directory" in line
    assert not (tmp_path / "m").exists()
    with pytest.raises(SystemExit) as exc:
        main(["train", "merge", "--base", str(golden_model_dir)])
    assert exc.value.code == 2 and "--adapter" in capsys.readouterr().err


def test_prepare_vidor_errors_are_one_line(capsys, tmp_path):
    line = _error_line(capsys, ["train", "prepare-vidor", str(tmp_path / "none"), "--out",
                                str(tmp_path / "o.json")])
    assert "VidOR annotations not found" in line
    (tmp_path / "broken.json").write_text("{truncated")
    line = _error_line(capsys, ["train", "prepare-vidor", str(tmp_path / "broken.json"), "--out",
                                str(tmp_path / "o.json")])
    assert "all 1 annotation file(s) were skipped" in line and "JSONDecodeError" in line
    assert not (tmp_path / "o.json").exists()
    line = _error_line(capsys, ["train", "prepare-vidor", str(tmp_path / "broken.json"), "--out",
                                str(tmp_path / "o.json"), "--scorer", "model"])
    assert "needs --model" in line


def _ambiguous_annotation() -> dict:
    """Two 'adult that hold the cup' instances at once (needs a scorer) in a 100-frame clip."""
    box = {"xmin": 10, "ymin": 10, "xmax": 50, "ymax": 60}
    small = {"xmin": 70, "ymin": 70, "xmax": 90, "ymax": 95}
    frames = [[{"tid": 1, "bbox": box}, {"tid": 2, "bbox": small}] for _ in range(100)]
    return {"video_id": "clip", "video_path": "clip.npy", "frame_count": 100, "width": 128, "height": 96,
            "subject/objects": [{"tid": 0, "category": "cup"}, {"tid": 1, "category": "adult"},
                                {"tid": 2, "category": "adult"}],
            "trajectories": frames,
            "relation_instances": [{"subject_tid": t, "object_tid": 0, "predicate": "hold", "begin_fid": 5,
                                    "end_fid": 80} for t in (1, 2)]}


@pytest.mark.slow
def test_prepare_vidor_with_the_model_scorer(capsys, tmp_path, golden_dir, golden_model_dir):
    ann = tmp_path / "ann"
    ann.mkdir()
    (ann / "clip.json").write_text(json.dumps(_ambiguous_annotation()))
    out = tmp_path / "stvg.json"
    # The video is missing: the model scorer cannot score, the file is skipped, nothing is left.
    line = _error_line(capsys, ["train", "prepare-vidor", str(ann), "--out", str(out), "--model",
                                str(golden_model_dir)])
    assert "media file not found" in line and "clip.npy" in line
    shutil.copy(golden_dir / "media" / "video_frames.npy", ann / "clip.npy")
    argv = ["train", "prepare-vidor", str(ann), "--out", str(out), "--model", str(golden_model_dir)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["scorer"] == "model" and report["samples"] == 1 and report["skipped"] == 0
    sample = json.loads(out.read_text())[0]
    sel = sample["meta"]["target_selection"]
    assert sel["scorer"] == "model" and sel["candidates"] == [1, 2] and len(sel["scores"]) == 2
    assert sel["chosen_tid"] == [1, 2][max(range(2), key=lambda i: sel["scores"][i])]


@pytest.mark.slow
def test_run_then_merge_from_the_cli(capsys, tmp_path, golden_dir, golden_model_dir):
    data = _image_data(tmp_path, golden_dir)
    out = tmp_path / "run"
    rc = main(["train", "run", "--model", str(golden_model_dir), "--data", data, "--output-dir", str(out),
               "--max-steps", "2", "--batch-size", "1", "--grad-accum", "1", "--lora-r", "4", "--lora-alpha",
               "8", "--lr", "5e-3", "--resampler-lr", "5e-3", "--save-steps", "1"])
    printed = capsys.readouterr().out
    assert rc == 0 and "trained 2/2 steps" in printed and f"adapter: {out / 'adapter'}" in printed
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-1", "checkpoint-2"}
    assert main(["train", "merge", "--base", str(golden_model_dir), "--adapter", str(out / "adapter"),
                 "--out", str(tmp_path / "merged")]) == 0
    assert "merged checkpoint written to" in capsys.readouterr().out
    ex_logits = []
    for net, tok in (load_model(tmp_path / "merged", device="cpu", dtype=torch.float32),
                     (lambda m, t: (apply_adapter(m, out / "adapter"), t))(
                         *load_model(golden_model_dir, device="cpu", dtype=torch.float32))):
        ex = TrainDataset(load_records(data), tok)[0]
        with torch.no_grad():
            ex_logits.append(net(input_ids=ex.input_ids[None], pixel_values=ex.pixel_values, modality="image",
                                 variables=ex.variables).logits)
    assert float((ex_logits[0] - ex_logits[1]).abs().max()) <= 1e-4
