"""Span records about clips with large objects: a curriculum step for the span (demo lineage, issue #9).

The demo world's objects cover 8-25 % of the shorter side, so in a packed slow frame one to ten of 81 tokens
carry the object and "does colour c show in this frame" is a needle for the span row's attention. Here the
objects are drawn larger (``--sizes``, default 45-80 %), so every token of a frame where the object shows
carries its colour; the span row then has a strong, dense signal to find the frames and to learn to say
when they are. Everything else is the training clips' (``stchat.demo.data._train_scene`` with ``sizes``);
each record asks the span of every object that shows (``stchat.demo.text.span_turns``).

    python scripts/demo_big_spans.py runs/demo/big --clips 400 --seed-base 7500000
"""

from __future__ import annotations

import argparse
import json
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from stchat.demo.data import _train_scene
from stchat.demo.text import span_turns
from stchat.demo.world import write_clip
from stchat.pipeline import write_text_atomic


def _item(args: tuple[int, str, int, float, float]) -> list[dict]:
    seed, root, per_clip, low, high = args
    rng = random.Random(seed)
    scene = _train_scene(seed, rng, sizes=(low, high))  # the training clips' draws, larger objects
    name = f"clips/demo_{seed}.mp4"
    if not (Path(root) / name).is_file():
        write_clip(scene, Path(root) / name, crf=rng.randint(18, 30))
    return [{"id": f"big_{seed}_{j}", "video": name, "format": "stchat",
             "conversations": span_turns(scene, random.Random(seed * 10 + j + 17))} for j in range(per_clip)]


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--clips", type=int, default=400)
    ap.add_argument("--seed-base", type=int, default=7_500_000)
    ap.add_argument("--per-clip", type=int, default=2)
    ap.add_argument("--sizes", type=float, nargs=2, default=(0.45, 0.8), metavar=("LOW", "HIGH"))
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    (Path(a.out) / "clips").mkdir(parents=True, exist_ok=True)
    jobs = [(a.seed_base + i, a.out, a.per_clip, *a.sizes) for i in range(a.clips)]
    with ProcessPoolExecutor(a.workers) as pool:
        records = [r for rs in pool.map(_item, jobs, chunksize=8) for r in rs]
    out = Path(a.out) / "spans.json"
    write_text_atomic(out, json.dumps(records))
    print(f"{out}: {len(records)} records about {a.clips} clips")


if __name__ == "__main__":
    main()
