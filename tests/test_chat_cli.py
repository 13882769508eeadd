"""``stchat ground``: one-line errors before the model loads, and an end-to-end run on the tiny model."""

from __future__ import annotations

import json

import pytest

from stchat.cli import main

CLIP = "syn_a_640x360_25fps_tone.mp4"


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["missing.mp4", "a dog"], "not found"),
        ([CLIP, "a dog", "--split", "50", "10"], "frame range"),
        ([CLIP, "a dog", "--split", "0", "99999"], "ends past"),
        ([CLIP, "since <t0.5 where?"], "malformed"),
        ([CLIP, "", "--task", "svg"], "span"),
        ([CLIP, "", "--task", "tr", "--span", "0.6", "0.2"], "before its end"),
        ([CLIP, "a dog", "--task", "rec"], "needs an image"),
        ([CLIP, "a dog", "--max-new-tokens", "0"], "max-new-tokens"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_loading(synthetic_dir, capsys, monkeypatch, extra, needle):
    monkeypatch.chdir(synthetic_dir)
    # A model that does not exist: reaching the loader would report that instead of the input problem.
    code = main(["ground", *extra, "--model", "/nonexistent/model"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("stchat: error:") and "\n" not in err and needle in err


@pytest.mark.slow
def test_ground_prints_the_answer_and_writes_answer_json(synthetic_dir, golden_model_dir, tmp_path, capsys):
    code = main([
        "ground", str(synthetic_dir / CLIP), "a red square", "--model", str(golden_model_dir),
        "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "3", "--out", str(tmp_path),
        "--no-render",
    ])
    out = capsys.readouterr().out
    assert code == 0
    assert "question: At which time interval in the video can we see a red square occurring?" in out
    assert "answer: " in out
    record = json.loads((tmp_path / "answer.json").read_text())
    assert len(record["frame_indices"]) == 100 and len(record["frame_times_s"]) == 100
    assert record["task"] == "stvg" and record["decoding"] == "greedy"
    assert 1 <= record["timings"]["new_tokens"] <= 3
