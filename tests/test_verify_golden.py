"""``stchat verify-golden``: passes on the shipped fixture, exits 1 when a golden disagrees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stchat.cli import main


def test_verify_golden_passes_on_the_fixture(golden_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["verify-golden", str(golden_dir), "--case", "image_reg", "--no-train"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "vision/video: OK" in out and "image_reg: OK" in out
    assert "greedy ids identical                         yes" in out
    line = next(x for x in out.splitlines() if "prefill_logits_last" in x)
    assert float(line.split("max|Δ|")[1].split()[0]) <= 1e-4


def test_verify_golden_exits_1_on_a_mismatching_golden(
    golden_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fixture = tmp_path / "fixture"
    (fixture / "cases").mkdir(parents=True)
    for name in ("model", "media", "vision"):
        (fixture / name).symlink_to(golden_dir / name)
    case = json.loads((golden_dir / "cases" / "image_rec.json").read_text())
    case["output_ids"][5] = (case["output_ids"][5] + 1) % 900  # the official run "chose" another token
    (fixture / "cases" / "image_rec.json").write_text(json.dumps(case))
    (fixture / "cases" / "image_rec.safetensors").symlink_to(golden_dir / "cases" / "image_rec.safetensors")
    rc = main(["verify-golden", str(fixture)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "image_rec: MISMATCH" in out and "greedy ids identical                         NO" in out


def test_verify_golden_rejects_a_non_fixture_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify-golden", str(tmp_path)]) == 2
    assert "not a golden fixture" in capsys.readouterr().err
