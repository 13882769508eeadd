"""Span-only TVG records about the clips of an existing ``train-data`` set (stage 3b of checkpoints/demo_mix).

No clip is rendered again: each clip's scene is redrawn from its seed exactly as ``_train_item`` draws it, so
the answers are that clip's STVG span. Only ``turns_for(scene, rng, ["tvg"])`` wording varies per record.

    python scripts/demo_tvg_records.py runs/demo/mix --clips 1500 --seed-base 7000000 --per-clip 4
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from stchat.demo.data import _train_scene
from stchat.demo.text import turns_for
from stchat.pipeline import write_text_atomic


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("data_dir", help="a train-data output directory (holds clips/)")
    ap.add_argument("--clips", type=int, required=True)
    ap.add_argument("--seed-base", type=int, required=True)
    ap.add_argument("--per-clip", type=int, default=4)
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
            records.append({"id": f"tvg_{seed}_{j}", "video": name, "format": "stchat",
                            "conversations": turns_for(scene, rng, ["tvg"])})
    write_text_atomic(root / "tvg.json", json.dumps(records))
    print(f"{root / 'tvg.json'}: {len(records)} records")


if __name__ == "__main__":
    main()
