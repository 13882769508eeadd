"""Fill a training run's tower cache before the run (demo lineage, issue #9): every media item once.

The trainer fills its cache (``vision_cache_dir``) lazily, one item at a time through the model's tower,
which runs eagerly as the official one does. For the demo model's pretrained tower (48 wide, 2 layers) that
is ~3 s per 100-frame clip, so the first ~200 steps of a run on 800 clips are 5-10x slower than the rest.
Here the same tower weights run with PyTorch's SDPA kernel (the cached values differ by ~1e-6; the tower
is frozen, so nothing trains on the difference) in two processes, under the trainer's own keys and
fingerprint, so the run reads them as its own.

    python scripts/demo_tower_cache.py checkpoints/demo_mix/stage4_tower/config.yaml --workers 2
"""

from __future__ import annotations

import argparse
import time
import zlib
from multiprocessing import get_context
from pathlib import Path

import torch


def _setup(config: str):
    from stchat.model.loading import load_model
    from stchat.train.config import TrainConfig
    from stchat.train.data import load_records
    from stchat.train.features import TowerCache, tower_fingerprint

    cfg = TrainConfig.from_file(config)
    records = load_records(cfg.data, cfg.data_folder, seed=cfg.seed,
                           fmt={"official": "official", "stchat": "stchat"}.get(cfg.data_format, "auto"))
    model, _ = load_model(cfg.model, dtype=torch.float32)
    cache = TowerCache(0, directory=Path(cfg.vision_cache_dir) / tower_fingerprint(model))
    return records, model, cache


def _work(args: tuple[str, int, int]) -> int:
    config, part, parts = args
    torch.set_num_threads(1)
    from stchat.train.media import load_pixels

    records, model, cache = _setup(config)
    body = model.model.vision_tower.vision_tower.vision_model
    body.encoder.config._attn_implementation = "sdpa"
    seen, done = set(), 0
    for rec in records:
        key = rec.media_key
        if key in seen or zlib.crc32(repr(key).encode()) % parts != part:
            continue
        seen.add(key)
        if key in cache:
            continue
        pixels, _ = load_pixels(rec)
        with torch.no_grad():
            cache.put(key, body(pixels))
        done += 1
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    t0 = time.time()
    with get_context("spawn").Pool(a.workers) as pool:
        done = pool.map(_work, [(a.config, i, a.workers) for i in range(a.workers)])
    print(f"{sum(done)} media items cached in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
