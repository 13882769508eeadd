"""Span-only TVG records about the clips of an existing ``train-data`` set (stage 3b of checkpoints/demo_mix).

No clip is rendered again: each clip's scene is redrawn from its seed exactly as ``_train_item`` draws it, so
the answers are that clip's STVG span. Only ``turns_for(scene, rng, ["tvg"])`` wording varies per record.

    python scripts/demo_tvg_records.py runs/demo/mix --clips 1500 --seed-base 7000000 --per-clip 4

``--all-objects`` (stage 4b, session 14) writes ``spans.json`` instead: per record one TVG turn for every
object that shows, target and distractors (``stchat.demo.text.span_turns``).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from stchat.demo.data import _train_scene
from stchat.demo.text import span_turns, turns_for
from stchat.pipeline import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("data_dir", help="a train-data output directory (holds clips/)")
    ap.add_argument("--clips", type=int, required=True)
    ap.add_argument("--seed-base", type=int, required=True)
    ap.add_argument("--per-clip", type=int, default=4)
    ap.add_argument("--all-objects", action="store_true", help="every object's span per record (spans.json)")
    args = ap.parse_args()
    root = Path(args.data_dir)
    records = []
    for i in range(args.clips):
        seed = args.seed_base + i
        name = f"clips/demo_{seed}.mp4"
        if not (root / name).is_file():
            raise SystemExit(f"error: {root / name} not found (run train-data with this --seed-base first)")
        scene = _train_scene(seed, random.Random(seed))  # the first draws of _train_item: this very clip
        for j in range(args.per_clip):
            rng = random.Random(seed * 10 + j + 17)
            conv = span_turns(scene, rng) if args.all_objects else turns_for(scene, rng, ["tvg"])
            records.append({"id": f"{'spans' if args.all_objects else 'tvg'}_{seed}_{j}", "video": name,
                            "format": "stchat", "conversations": conv})
    out = root / ("spans.json" if args.all_objects else "tvg.json")
    write_text_atomic(out, json.dumps(records))
    print(f"{out}: {len(records)} records")


if __name__ == "__main__":
    main()
