"""Demo-world data sets: the training set (stchat format, multi-turn) and held-out benchmarks.

Training clips are real H.264 mp4 files (so the model learns from codec-compressed frames, as it sees
at inference), rendered small (shorter side 180-288 px, 3-12 s) because the model only sees 100 frames
resized to 384 x 384 anyway; each record is one clip with 1-3 question/answer turns (STVG in most),
so one pass of the visual path trains several tasks. Seeds: training clips use ``seed_base + i``;
benchmarks use a disjoint range (``BENCH_SEED_BASE``), so no test clip was ever trained on.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from stchat.demo.text import turns_for
from stchat.demo.world import sample_scene, write_clip, write_truth

TRAIN_SEED_BASE = 1_000_000
BENCH_SEED_BASE = 900_000_000  # never used for training


def train_tasks(rng: random.Random) -> list[str]:
    tasks = []
    r = rng.random()
    if r < 0.8:
        tasks.append("stvg")
    elif r < 0.92:
        tasks.append("svg")
    if rng.random() < 0.35:
        tasks.append("tvg")
    if rng.random() < 0.4:
        tasks.append("caption")
    rng.shuffle(tasks)
    return tasks or ["stvg"]


def _train_item(args: tuple[int, str, int]) -> list[dict]:
    seed, root, per_clip = args
    rng = random.Random(seed)
    scene = sample_scene(seed, height=rng.choice([180, 216, 240, 288]), max_seconds=12.0)
    name = f"clips/demo_{seed}.mp4"
    write_clip(scene, Path(root) / name, crf=rng.randint(18, 30))
    return [{"id": f"demo_{seed}_{j}", "video": name, "format": "stchat",
             "conversations": turns_for(scene, rng, train_tasks(rng))} for j in range(per_clip)]


def make_train_set(out_dir: str | Path, n: int, seed_base: int = TRAIN_SEED_BASE, workers: int = 2,
                   records_per_clip: int = 1) -> Path:
    """Write ``out_dir/train.json`` and ``out_dir/clips/*.mp4``; returns the JSON path.

    ``records_per_clip`` > 1 asks different questions (other tasks, wordings) about the same clip: with the
    trainer's vision cache the clip's frozen tower output is then computed once and reused.
    """
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    jobs = [(seed_base + i, str(out), records_per_clip) for i in range(n)]
    with ProcessPoolExecutor(workers) as pool:
        records = [r for group in pool.map(_train_item, jobs, chunksize=8) for r in group]
    path = out / "train.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(records))
    tmp.replace(path)
    return path


def _bench_item(args: tuple[int, str]) -> dict:
    seed, root = args
    scene = sample_scene(seed, max_seconds=12.0)  # 3-12 s keeps a 50-clip CPU evaluation affordable
    name = f"demo_{seed}"
    write_clip(scene, Path(root) / f"{name}.mp4")
    write_truth(scene, Path(root) / f"{name}.json")
    return {"name": name, "seed": seed}


def make_bench_clips(out_dir: str | Path, n: int, seed_base: int = BENCH_SEED_BASE, workers: int = 2
                     ) -> list[dict]:
    """Held-out clips (full resolution range) with ground-truth JSON beside each mp4."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_bench_item, [(seed_base + i, str(out)) for i in range(n)]))
