"""Sweep summary maths and the 4-panel figure (no model: the per-setting scores are given)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stchat.eval.breakdown import SampleScore
from stchat.eval.sweep import (
    SweepError,
    coefficient_of_variation,
    parse_values,
    summarise_sweep,
    write_sweep_outputs,
)


def _scores(rng: random.Random, n: int, level: float) -> list[SampleScore]:
    out = []
    for i in range(n):
        t = min(1.0, max(0.0, rng.gauss(level, 0.2)))
        s = min(1.0, max(0.0, rng.gauss(level * 0.8, 0.2)))
        out.append(SampleScore(index=i, sample_id=str(i), task="stvg", tiou=t, siou=s, viou=t * s))
    return out


def test_parse_values_types_and_errors() -> None:
    assert parse_values("temperature", ["0.001", "0.01", "0.01", "1"]) == [0.001, 0.01, 1.0]
    assert parse_values("top_k", ["1", "50"]) == [1, 50]
    for param, vals in (("temperature", ["0"]), ("top_p", ["1.5"]), ("beam", ["2"]), ("top_k", ["x"])):
        with pytest.raises(SweepError):
            parse_values(param, vals)


def test_cv_matches_definition() -> None:
    vals = [0.2, 0.4, 0.6]
    assert coefficient_of_variation(vals) == pytest.approx(np.std(vals) / np.mean(vals))
    assert coefficient_of_variation([0.0, 0.0]) is None
    assert coefficient_of_variation([0.5]) is None


def test_summary_against_direct_computation(tmp_path: Path) -> None:
    rng = random.Random(3)
    per = {f"temperature={t}": _scores(rng, 40, lvl) for t, lvl in ((0.001, 0.7), (0.1, 0.6), (1.0, 0.3))}
    summ = summarise_sweep("temperature", per)
    for j, ss in enumerate(per.values()):
        assert summ.main["mean tIoU"][j] == pytest.approx(np.mean([s.tiou for s in ss]))
        joint5 = np.mean([(s.tiou >= 0.5) and (s.siou >= 0.5) for s in ss])
        assert summ.main["joint@0.5"][j] == pytest.approx(joint5)
        i = summ.thresholds.index(0.3)
        joint3 = np.mean([(s.tiou >= 0.3) and (s.siou >= 0.3) for s in ss])
        assert summ.joint_grid[i, j] == pytest.approx(joint3)
        # accuracy can only fall as the threshold rises
        assert all(a >= b for a, b in zip(summ.acc_curves[list(per)[j]]["tiou"],
                                          summ.acc_curves[list(per)[j]]["tiou"][1:], strict=False))
    assert np.all(np.diff(summ.joint_grid, axis=0) <= 0)
    m = summ.main["mean sIoU"]
    assert summ.cv["mean sIoU"] == pytest.approx(np.std(m) / np.mean(m))
    paths = write_sweep_outputs(summ, tmp_path)
    img = Image.open(paths["png"])
    assert img.width > 800 and img.height > 600
    arr = np.asarray(img.convert("L"))
    assert arr.std() > 10  # something is drawn
    md = paths["md"].read_text()
    assert md.count("\n| temperature=") == 3 and "coefficient of variation" in md
    rows = paths["csv"].read_text().splitlines()
    assert rows[0].startswith("temperature,samples,mean tIoU") and len(rows) == 5
    assert math.isclose(float(rows[1].split(",")[2]), summ.main["mean tIoU"][0], abs_tol=1e-4)
