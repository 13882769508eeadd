"""The embedded demo model on real answers: held-out demo-world clips, no STCHAT_MODEL, no GPU.

Every check is a measurement of what the model's forward pass produced: the clip the CLI cut must start
and end within two sampling quanta of the frames where the target is really visible, the boxes in
timing.json must overlap the target's pixels (measured in the produced clip file), the description must
name the target, and ``eval run`` + ``eval score`` on a small generated benchmark must reach floors.
Seeds come from the benchmark range, which the training set never uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stchat.demo.data import BENCH_SEED_BASE
from stchat.demo.world import Scene, sample_scene, write_clip
from stchat.model.choice import DEMO_DESCRIPTION, choose_model, demo_model_dir

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
TEST_SEEDS = [BENCH_SEED_BASE + 10_000 + i for i in range(3)]  # not in training, not in the 50-clip bench
# The shipped model does not reach the accuracy yet (README "The embedded demo model": 3,600 CPU
# steps give the answer grammar and the training prior, not grounding); the accuracy checks run and
# report, and a strict XPASS makes the marker go once a trained model meets them.
UNDER_TRAINED = pytest.mark.xfail(
    # Strict: once the model meets the floors this fails, so the marker must go. Only an assertion counts
    # as the expected failure; a crash still fails the test.
    strict=True, raises=AssertionError, reason="demo model under-trained: issue #9 floors not met yet",
)

if not (demo_model_dir() / "model.safetensors").is_file():
    pytest.skip("the demo model is not built (bash scripts/train_demo.sh)", allow_module_level=True)


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"), CUDA_VISIBLE_DEVICES="")
    env.pop("STCHAT_MODEL", None)
    return env


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _pixel_box(rgb: np.ndarray, colour: tuple[int, int, int]) -> list[float] | None:
    """Normalised box of the pixels within 40 levels (each channel) of the target colour."""
    mask = (np.abs(rgb.astype(int) - np.array(colour)) <= 40).all(-1)
    if mask.sum() < 20:
        return None
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    return [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]


def test_default_model_without_gpu_is_the_demo_model():
    assert choose_model(None) == str(demo_model_dir()) or os.environ.get("STCHAT_MODEL")
    assert choose_model("demo") == str(demo_model_dir())
    assert "synthetic shapes only" in DEMO_DESCRIPTION


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, Scene]:
    scene = sample_scene(TEST_SEEDS[0], height=360, aspect="16:9", fps=20, seconds=8.0, n_distractors=2)
    path = write_clip(scene, tmp_path_factory.mktemp("demo") / "clip.mp4")
    return path, scene


def test_cli_uses_and_names_the_demo_model_by_default(clip, tmp_path):
    path, scene = clip
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "stchat.cli", "ground", str(path), "the red ball", "--task",
                        "stvg", "--out", str(out), "--max-new-tokens", "8", "--no-render"],
                       capture_output=True, text=True, timeout=300, env=_env(), cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert DEMO_DESCRIPTION in r.stderr
    assert json.loads((out / "answer.json").read_text())["task"] == "stvg"


@UNDER_TRAINED
def test_cli_grounds_the_target_in_time_and_space(clip, tmp_path):
    from stchat.video.io import read_frames

    path, scene = clip
    t = scene.target
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "stchat.cli", "ground", str(path), f"the {t.colour} {t.shape}",
                        "--task", "stvg", "--out", str(out), "--max-new-tokens", "900"], capture_output=True,
                       text=True, timeout=600,
                       env=_env(), cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    timing = json.loads((out / "timing.json").read_text())
    quantum = (scene.n_frames - 1) / 99
    assert abs(timing["first_frame"] - t.start) <= 2 * quantum + 1, (timing["first_frame"], t.start)
    assert abs(timing["last_frame"] - t.end) <= 2 * quantum + 1, (timing["last_frame"], t.end)
    # Boxes: each keyframe's box against the target's pixels in the produced clip (clip.mp4 starts at
    # first_frame).
    keys = [k for k in timing["keyframes"] if k["box_norm"]]
    assert keys
    picks = keys[:: max(1, len(keys) // 8)]
    frames = read_frames(out / "clip.mp4", [k["frame"] - timing["first_frame"] for k in picks])
    ious = []
    for k, rgb in zip(picks, frames, strict=True):
        truth = _pixel_box(rgb, t.rgb)
        if truth is not None:
            ious.append(_iou(k["box_norm"], truth))
    assert ious and float(np.mean(ious)) >= 0.5, ious


@UNDER_TRAINED
def test_describe_names_the_colour_and_shape(clip):
    from stchat.chat import StableChat

    path, scene = clip
    chat = StableChat(None)
    assert Path(chat.model_name) == demo_model_dir()
    text = chat.ask(str(path), "Describe what happens in this video.", max_new_tokens=64).lower()
    assert f"{scene.target.colour} {scene.target.shape}" in text, text


@UNDER_TRAINED
def test_eval_run_and_score_reach_floors(tmp_path):
    from stchat.cli import main
    from stchat.demo.bench import make_demo_benchmark

    manifest = make_demo_benchmark(tmp_path / "bench", n=2, seed_base=TEST_SEEDS[1], workers=1)
    save = tmp_path / "results"
    assert main(["eval", "run", "--benchmark", str(manifest), "--save-dir", str(save), "--model", "demo",
                 "--no-progress", "--max-new-tokens", "900"]) == 0
    assert main(["eval", "score", "--result-dir", str(save)]) == 0
    total = json.loads((save / "total_eval.json").read_text())
    flat = json.dumps(total)
    stvg = next(v for k, v in total.items() if "stvg" in k and isinstance(v, dict))
    tvg = next(v for k, v in total.items() if "charades" in k and isinstance(v, dict))
    assert stvg["mtiou"] >= 0.6 and stvg["msiou"] >= 0.5, flat
    assert tvg["miou"] >= 0.6, flat
