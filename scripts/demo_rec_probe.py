"""Does a model read boxes? Greedy REC on frames of demo-world scenes it never saw.

Each scene is drawn from a seed above every training range (9,100,000 + i), one frame with the target in
view is rendered, and the model is asked "Where can I find <the target> in this image?" through
``StableChat.ground(..., task="rec")``. Prints the mean IoU against the true box and R@0.5. Session 8
(issue #9): the shipped v2 model 0.00, the REC-first lineage's ``stage4/checkpoint-50`` 0.37 (20 scenes).

    python scripts/demo_rec_probe.py MODEL_DIR --scenes 20
"""

from __future__ import annotations

import argparse
import random
import tempfile
from pathlib import Path

from PIL import Image

from stchat.chat import StableChat
from stchat.demo.data import _train_scene
from stchat.demo.text import phrase
from stchat.demo.world import render_frame, target_box
from stchat.eval.official import iou  # the scorer's box IoU

SEED_BASE = 9_100_000  # above the training (1e6-7e6) and REC (2e6+) ranges, below the benchmarks (9e8)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--scenes", type=int, default=20)
    args = ap.parse_args()
    chat = StableChat(args.model, device="cpu")
    scores = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.scenes):
            seed = SEED_BASE + i
            rng = random.Random(seed)
            scene = _train_scene(seed, rng)  # the training scenes' distribution (sizes, backgrounds)
            target = scene.target
            frame = rng.randint(target.start, target.end)
            path = Path(tmp) / f"rec_{seed}.png"
            Image.fromarray(render_frame(scene, frame)).save(path)
            truth = target_box(scene, frame)
            question = f"Where can I find {phrase(target.colour, target.shape, None, rng)} in this image?"
            box = chat.ground(str(path), question, task="rec", max_new_tokens=40).parsed.box
            scores.append(iou(list(box), truth) if box is not None and truth is not None else 0.0)
    n = len(scores)
    hits = sum(s >= 0.5 for s in scores)
    print(f"REC on {n} unseen scenes: mean IoU {sum(scores) / n:.3f}, R@0.5 {hits / n:.2f}")


if __name__ == "__main__":
    main()
