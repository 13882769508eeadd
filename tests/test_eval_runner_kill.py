"""Acceptance (issue #4 item 2): SIGKILL the runner at random points, resume, and get the uninterrupted file.

Real tiny golden model, greedy decoding, 1 process and 2 processes (torchrun, gloo on CPU). Compared:
every record except its ``timing`` (wall-clock times differ run to run).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stchat.eval import distributed as D
from stchat.eval.synthetic_bench import make_synthetic_benchmark

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "test_eval_runner_worker.py"
N_SAMPLES = 3
MAX_NEW = 4
# the shortest clips: decoding 100 frames dominates the cost per sample
CLIPS = ("syn_f_360x640_30fps_portrait_tone", "syn_c_640x360_30fps_noaudio_longgop")

pytestmark = pytest.mark.slow


def _records(path: Path) -> list[dict]:
    recs = [json.loads(x) for x in path.read_text().splitlines()]
    for r in recs:
        r.pop("timing", None)
    return recs


def _complete_records(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        if p.is_file():
            n += p.read_bytes().count(b"\n")
    return n


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("bench")
    make_synthetic_benchmark(root, synthetic_dir, tasks=("stvg",), clips=CLIPS)
    return root


@pytest.fixture(scope="module")
def reference(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """An uninterrupted single-process run, in this process: the worker's own code path (``run_once``)
    with its thread setting, without paying a second interpreter start and model import."""
    spec = importlib.util.spec_from_file_location("stchat_kill_worker", WORKER)
    assert spec is not None and spec.loader is not None
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    final = tmp_path_factory.mktemp("ref") / "stvg.json"
    threads = torch.get_num_threads()
    try:
        worker.run_once(bench, final, N_SAMPLES, MAX_NEW)
    finally:
        torch.set_num_threads(threads)
    recs = _records(final)
    assert [r["id"] for r in recs] == [str(i) for i in range(N_SAMPLES)]
    return recs


def _kill_when(proc: subprocess.Popen, watch: list[Path], at_least: int, rng: random.Random,
               deadline: float) -> None:
    """SIGKILL the process group once ``at_least`` records exist, after a further random delay."""
    while _complete_records(watch) < at_least and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 2.5))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_kill_and_resume_single_process(bench: Path, reference: list[dict], tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("STCHAT_KILL_SEED", "7")))
    final = tmp_path / "stvg.json"
    cmd = [sys.executable, str(WORKER), str(bench), str(final), str(N_SAMPLES), str(MAX_NEW)]
    # kill 1: at a random moment after the first record; kill 2: before any record (during model load)
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    _kill_when(proc, [final], 1, rng, time.time() + 300)
    proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
    time.sleep(rng.uniform(0.5, 3.0))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # a torn last line, as a kill in the middle of a write leaves it
    with open(final, "ab") as f:
        f.write(b'{"id": "9", "outputs": "torn')
    subprocess.run(cmd, check=True, cwd=REPO, timeout=400)
    assert _records(final) == reference


def test_kill_and_resume_two_processes(bench: Path, reference: list[dict], tmp_path: Path) -> None:
    rng = random.Random(int(os.environ.get("STCHAT_KILL_SEED", "7")) + 1)
    final = tmp_path / "stvg.json"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                str(29500 + rng.randrange(2000)), str(WORKER), str(bench), str(final), str(N_SAMPLES),
                str(MAX_NEW)]
    parts = [D.part_path(final, r, 2) for r in range(2)]
    proc = subprocess.Popen(torchrun, cwd=REPO, start_new_session=True)
    _kill_when(proc, parts, 1, rng, time.time() + 300)
    assert not final.exists() or _complete_records([final]) < N_SAMPLES
    torchrun[6] = str(29500 + rng.randrange(2000, 4000))  # a fresh rendezvous port
    subprocess.run(torchrun, check=True, cwd=REPO, timeout=400)
    # merged in dataset order, every sample once, equal to the single-process run; parts cleaned up
    assert _records(final) == reference
    assert not D.existing_parts(final)
