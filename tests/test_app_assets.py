"""The shipped example clips (assets/): small, reproducible, and their example answers are their truth."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from stchat.parse import parse_answer
from stchat.video.io import probe

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
LISTING = json.loads((ASSETS / "examples.json").read_text())["examples"]


def test_assets_are_small_and_listed() -> None:
    files = {p.name for p in ASSETS.iterdir() if p.is_file()}
    assert sum(p.stat().st_size for p in ASSETS.iterdir() if p.is_file()) < 1_000_000
    assert {e["file"] for e in LISTING} | {"examples.json"} == files


def test_generator_reproduces_the_listing() -> None:
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "make_assets.py"), "--check"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("example", LISTING, ids=[e["file"] for e in LISTING])
def test_clip_matches_its_description(example: dict) -> None:
    info = probe(ASSETS / example["file"])
    assert (info.width, info.height, info.frame_count) == (example["width"], example["height"],
                                                           example["n_frames"])
    assert info.fps_float == pytest.approx(example["fps"])
    assert info.has_audio == example["audio"]
    assert info.video_codec == "h264"  # plays in every browser


@pytest.mark.parametrize("example", LISTING, ids=[e["file"] for e in LISTING])
def test_example_answer_is_the_ground_truth(example: dict) -> None:
    """The answer's span, mapped back to frames like the model's tokens are, lands on the visible interval."""
    parsed = parse_answer(example["example_answer"], example["task"])
    assert parsed.ok and not parsed.warnings, parsed.warnings
    n, gt = example["n_frames"], example["ground_truth"]
    first, last = (round(t * (n - 1)) for t in parsed.span)
    step = (n - 1) / 99  # one temporal token, in frames
    assert abs(first - gt["first_frame"]) <= step and abs(last - gt["last_frame"]) <= step
    if example["task"] == "stvg":
        w, h = example["width"], example["height"]
        x1, y1, x2, y2 = parsed.boxes[min(parsed.boxes)]
        px = [x1 * w, y1 * h, x2 * w, y2 * h]
        # Box tokens are 1/99 of the frame: within one token of the truth at the first keyframe.
        assert all(abs(a - b) <= max(w, h) / 99 + 1 for a, b in zip(px, gt["box_px_first"], strict=True)), px
