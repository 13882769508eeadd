"""``python -m stchat.demo``: build the untrained checkpoint, the training set, a benchmark; export.

Steps of ``scripts/train_demo.sh`` (issue #9):

    python -m stchat.demo init runs/demo/init
    python -m stchat.demo train-data runs/demo/data --clips 400 --per-clip 4
    python -m stchat.demo rec-data runs/demo/rec --images 48000   # REC images of fresh scenes
    stchat train run configs/demo.yaml --resume auto
    python -m stchat.demo tower runs/demo/tower --frames 4000 --steps 2000   # pretrain the vision tower
    python -m stchat.demo graft runs/demo/MODEL runs/demo/tower runs/demo/OUT  # put it into a model
    python -m stchat.demo export runs/demo/train/checkpoint-N stchat/demo/model
    python -m stchat.demo bench runs/demo/bench --clips 50
    python -m stchat.demo clip OUT.mp4 --seed 7   # one demo-world clip + OUT.json ground truth
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stchat.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("init", help="untrained demo checkpoint (tokenizer + random weights)")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--align-colours", action="store_true",
                   help="unit-gain projector + colour words paired with their pixels (build.py)")
    p = sub.add_parser("train-data", help="training clips + train.json (stchat format)")
    p.add_argument("out")
    p.add_argument("--clips", type=int, default=400)
    p.add_argument("--per-clip", type=int, default=4)
    p.add_argument("--images-per-clip", type=int, default=0, help="REC records on single frames per clip")
    p.add_argument("--lessons-per-clip", type=int, default=0,
                   help="video records whose answers all need the video (boxes at given moments, TVG)")
    p.add_argument("--seed-base", type=int, default=None, help="first scene seed (default: 1000000)")
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("rec-data", help="REC image records, each on a frame of a new scene (rec.json)")
    p.add_argument("out")
    p.add_argument("--images", type=int, default=48000)
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("bench", help="held-out benchmark (official formats + manifest)")
    p.add_argument("out")
    p.add_argument("--clips", type=int, default=50)
    p.add_argument("--seed-base", type=int, default=None)
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("tower", help="pretrain the vision tower on labelled demo-world frames (tower.py)")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=4000)
    p.add_argument("--steps", type=int, default=2000)
    p = sub.add_parser("graft", help="swap in a pretrained tower (projector refitted)")
    p.add_argument("model")
    p.add_argument("tower")
    p.add_argument("out")
    p = sub.add_parser("export", help="training checkpoint -> full checkpoint directory")
    p.add_argument("checkpoint", help="a checkpoint-N directory (or its adapter/ folder)")
    p.add_argument("out")
    p.add_argument("--base", default="runs/demo/init")
    p = sub.add_parser("clip", help="one demo-world clip and its ground truth JSON")
    p.add_argument("out")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--height", type=int)
    p.add_argument("--aspect")
    p.add_argument("--fps", type=int)
    p.add_argument("--seconds", type=float)
    a = ap.parse_args(argv)
    if a.cmd == "init":
        from stchat.demo.build import build_model

        print(build_model(a.out, seed=a.seed, sizes={"align_colours": a.align_colours}))
    elif a.cmd == "train-data":
        from stchat.demo.data import TRAIN_SEED_BASE, make_train_set

        print(make_train_set(a.out, a.clips, a.seed_base if a.seed_base is not None else TRAIN_SEED_BASE,
                             workers=a.workers, records_per_clip=a.per_clip,
                             images_per_clip=a.images_per_clip, lessons_per_clip=a.lessons_per_clip))
    elif a.cmd == "rec-data":
        from stchat.demo.data import make_rec_set

        print(make_rec_set(a.out, a.images, workers=a.workers))
    elif a.cmd == "bench":
        from stchat.demo.bench import make_demo_benchmark
        from stchat.demo.data import BENCH_SEED_BASE

        print(make_demo_benchmark(a.out, a.clips, a.seed_base if a.seed_base is not None else BENCH_SEED_BASE,
                                  workers=a.workers))
    elif a.cmd == "tower":
        from stchat.demo.tower import pretrain

        print(pretrain(a.out, frames=a.frames, steps=a.steps))
    elif a.cmd == "graft":
        from stchat.demo.tower import graft

        print(graft(a.model, a.tower, a.out))
    elif a.cmd == "export":
        from stchat.demo.export import export_checkpoint

        print(export_checkpoint(a.checkpoint, a.out, a.base))
    elif a.cmd == "clip":
        from stchat.demo.world import sample_scene, write_clip, write_truth

        scene = sample_scene(a.seed, height=a.height, aspect=a.aspect, fps=a.fps, seconds=a.seconds)
        out = Path(a.out)
        write_clip(scene, out)
        print(write_truth(scene, out.with_suffix(".json")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
