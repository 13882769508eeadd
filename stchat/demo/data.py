"""Demo-world data sets: the training set (stchat format, multi-turn) and held-out benchmarks.

Training clips are real H.264 mp4 files (so the model learns from codec-compressed frames, as it sees
at inference), rendered small (shorter side 180-288 px, 3-12 s) because the model only sees 100 frames
resized to 384 x 384 anyway; each record is one clip with 1-3 question/answer turns (STVG in most),
so one pass of the visual path trains several tasks. Optional image records (REC on single frames of
the same clips, one box question per visible object) are the cheap lesson in the same skill: 729
visual tokens and no packer, so a step costs a fraction of a video step and every answer token needs
the query's colour and the object's position (in a video answer most boxes repeat the previous one).
Seeds: training clips use ``seed_base + i``;
benchmarks use a disjoint range (``BENCH_SEED_BASE``), so no test clip was ever trained on.
"""

from __future__ import annotations

import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from stchat.demo.text import image_turns, lesson_turns, turns_for
from stchat.demo.world import OBJECT_SIZES, Scene, render_frame, sample_scene, write_clip, write_truth
from stchat.pipeline import write_text_atomic

TRAIN_SEED_BASE = 1_000_000
BENCH_SEED_BASE = 900_000_000  # never used for training
REC_SEED_BASE = 2_000_000  # make_rec_set: 1e6 fresh scenes below the benchmarks' range


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


def _train_scene(seed: int, rng: random.Random, sizes: tuple[float, float] = OBJECT_SIZES) -> Scene:
    return sample_scene(seed, height=rng.choice([180, 216, 240, 288]), max_seconds=12.0, sizes=sizes)


def _train_item(args: tuple[int, str, int, int, int]) -> list[dict]:
    seed, root, per_clip, images, lessons = args
    rng = random.Random(seed)
    scene = _train_scene(seed, rng)
    name = f"clips/demo_{seed}.mp4"
    crf = rng.randint(18, 30)
    if not (Path(root) / name).is_file():  # deterministic: an existing clip is this very clip
        write_clip(scene, Path(root) / name, crf=crf)
    records = [{"id": f"demo_{seed}_{j}", "video": name, "format": "stchat",
                "conversations": turns_for(scene, rng, train_tasks(rng))} for j in range(per_clip)]
    records += [{"id": f"demo_{seed}_lesson{j}", "video": name, "format": "stchat",
                 "conversations": lesson_turns(scene, rng)} for j in range(lessons)]
    t = scene.target
    for j in range(images):
        frame = rng.randint(t.start, t.end)
        img = f"frames/demo_{seed}_{frame}.png"
        _write_png(render_frame(scene, frame), Path(root) / img)
        records.append({"id": f"demo_{seed}_img{j}", "image": img, "format": "stchat",
                        "conversations": image_turns(scene, frame, rng)})
    return records


def _rec_item(args: tuple[int, str]) -> dict:
    seed, root = args
    rng = random.Random(seed)
    scene = _train_scene(seed, rng)
    frame = rng.randint(scene.target.start, scene.target.end)
    img = f"frames/rec_{seed}_{frame}.png"
    if not (Path(root) / img).is_file():
        _write_png(render_frame(scene, frame), Path(root) / img)
    return {"id": f"rec_{seed}", "image": img, "format": "stchat",
            "conversations": image_turns(scene, frame, rng)}


def _write_png(rgb, path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    Image.fromarray(rgb).save(tmp)
    tmp.replace(path)


def make_train_set(out_dir: str | Path, n: int, seed_base: int = TRAIN_SEED_BASE, workers: int = 2,
                   records_per_clip: int = 1, images_per_clip: int = 0, lessons_per_clip: int = 0) -> Path:
    """Write ``out_dir/train.json``, ``out_dir/clips/*.mp4`` (and ``frames/*.png``); returns the JSON path.

    ``records_per_clip`` > 1 asks different questions (other tasks, wordings) about the same clip: with the
    trainer's vision cache the clip's frozen tower output is then computed once and reused.
    ``images_per_clip`` adds that many REC image records per clip (frames where the target shows);
    ``lessons_per_clip`` that many video records of ``lesson_turns`` (every answer coordinate needs the
    video).
    """
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    jobs = [(seed_base + i, str(out), records_per_clip, images_per_clip, lessons_per_clip)
            for i in range(n)]
    with ProcessPoolExecutor(workers) as pool:
        records = [r for group in pool.map(_train_item, jobs, chunksize=8) for r in group]
    if images_per_clip:  # the image records alone: stage 1 of the two-stage recipe (checkpoints/demo_rec)
        _write_json(out / "rec.json", [r for r in records if "image" in r])
    return _write_json(out / "train.json", records)


def make_rec_set(out_dir: str | Path, n: int, seed_base: int = REC_SEED_BASE, workers: int = 2) -> Path:
    """Write ``out_dir/rec.json`` and ``frames/*.png``: ``n`` REC image records, each a frame of its own
    scene (no clip is encoded: ~2 ms a record). Why fresh scenes: on the 1,600 frames of the 800 training
    clips the model learnt those images, not the skill -- after 1,800 steps (18 epochs) the coordinate
    loss was 1.5 nats on them and 5.5 on frames of unseen scenes, worse than uniform (4.6); with a new
    scene at every sample the unseen-scene loss falls instead (checkpoints/demo_rec/README.md)."""
    out = Path(out_dir)
    (out / "frames").mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        records = list(pool.map(_rec_item, [(seed_base + i, str(out)) for i in range(n)], chunksize=64))
    return _write_json(out / "rec.json", records)


def _write_json(path: Path, records: list[dict]) -> Path:
    write_text_atomic(path, json.dumps(records))
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
