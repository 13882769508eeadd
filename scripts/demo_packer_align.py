"""Refit a demo model's packer so the slow tokens carry their window's colours and their frame's time
along the language model's own directions (demo lineage, issue #9, session 15).

Why: in stage 4b's model a frame's time is in the slow tokens (a ridge readout finds it within 1.4 bins in
layer 2's input) but with so little amplitude (22 % of the value vectors' variance, after a packer whose
output has norm ~115 against the LAPE time code's ~1.3) that no attention head's value/output path carries
it into the TEMP logits: per head, the time read from its output of a slow token is no better than chance
(19-37 bins off; ``--transport`` of ``scripts/demo_span_rows.py``). The span row finds the target's frames
but cannot say when they are.

What: the packer's spatial and temporal modules (the fast one never reaches the language model, Q1) are
trained, everything else frozen, on the slow tokens of generated clips with three losses: each token's
cosine to every colour word's embedding, scaled, must say which colours cover its 3x3 patch x 5 frame
window (generator truth, class-balanced binary cross-entropy); its cosine to every TEMP output row must
say its frame's time (cross-entropy over 100 bins); and its RMS-normalised value must stay near the old
packer's (mean squared distance, weight ``--keep``), so the language model downstream still recognises it.

    python scripts/demo_packer_align.py runs/demo/t4b_200 runs/demo/pa --clips 200 --steps 1200

Measured (session 15, 30 held-out clips of the 200): per-token colour balanced accuracy 0.51 -> 0.85,
time 49.5 -> 1.7 bins, normalised distance to the old tokens 0.25; 200 clips load in 3 min, 1,200 steps
of one clip take 5 min on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import random
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from stchat.demo.data import _train_scene
from stchat.demo.tower import patch_labels
from stchat.demo.world import COLOURS
from stchat.media import load_sampled
from stchat.model.loading import load_model
from stchat.train.features import TowerCache, tower_fingerprint

SLOW, PER, SIDE, GRID = 20, 5, 9, 27  # slow frames, sampled frames per slow frame, packed side, patch side
COVER = 0.1  # a colour covering this much of a patch counts as shown there
TIMES = (torch.arange(SLOW) * PER + PER // 2).repeat_interleave(SIDE * SIDE)  # query frames 5j + 2 (Q11)


def clip_item(model, cache: TowerCache, root: Path, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tower output (100, 729, D) as fp16 and the (20, 81, 8) colour-in-window truth of one clip."""
    path = root / f"clips/demo_{seed}.mp4"
    media = load_sampled(str(path))
    key = (str(path.resolve()), None)  # the trainer's media key of a whole video
    feats = cache.get(key) if key in cache else None
    if feats is None:
        with torch.no_grad():
            feats = model.model.vision_tower.vision_tower.vision_model(media.pixel_values)
    scene = _train_scene(seed, random.Random(seed))
    shown = np.stack([patch_labels(scene, f)["colour"][..., 1:] for f in media.frame_indices or []]) > COVER
    k = GRID // SIDE
    shown = shown.reshape(SLOW, PER, SIDE, k, SIDE, k, len(COLOURS)).any(axis=(1, 3, 5))
    return feats.half(), torch.from_numpy(shown.reshape(SLOW, SIDE * SIDE, len(COLOURS))).float()


class Readout(torch.nn.Module):
    """Scaled cosines to fixed language-model rows (colour words, TEMP outputs), a bias per row."""

    def __init__(self, rows: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("rows", F.normalize(rows, dim=-1))
        self.scale = torch.nn.Parameter(torch.tensor(10.0))
        self.bias = torch.nn.Parameter(torch.zeros(len(rows)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(x, dim=-1) @ self.rows.T + self.bias


def rms_normalised(x: torch.Tensor) -> torch.Tensor:
    return x / x.pow(2).mean(-1, keepdim=True).sqrt()


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("out")
    ap.add_argument("--root", type=Path, default=Path("runs/demo/mix"), help="train-data folder of the clips")
    ap.add_argument("--seed-base", type=int, default=7_000_000)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--keep", type=float, default=3.0, help="weight of the distance to the old tokens")
    ap.add_argument("--cache-dir", type=Path, default=Path("runs/towercache_t4"),
                    help="a trainer's tower cache (clips missing there run through the tower)")
    a = ap.parse_args()
    torch.manual_seed(0)
    rng = random.Random(0)
    model, tok = load_model(a.model, dtype=torch.float32)
    model.eval().requires_grad_(False)
    lm = model.model
    words = [tok.encode(" " + c, add_special_tokens=False) for c in COLOURS]
    if any(len(w) != 1 for w in words):
        raise SystemExit("every colour word must be one token after a space")
    colour = Readout(lm.embed_tokens.weight[[w[0] for w in words]].detach())
    timing = Readout(lm.temporal_output_embeddings.weight.detach())
    cache = TowerCache(0, directory=a.cache_dir / tower_fingerprint(model))
    t0 = time.time()
    data = [clip_item(model, cache, a.root, a.seed_base + i) for i in range(a.clips)]
    print(f"{len(data)} clips in {time.time() - t0:.0f} s", flush=True)
    tables = {k: v.detach() for k, v in model.coordinate_tables().items()}
    packer = lm.vision_resampler
    old = copy.deepcopy(packer)
    trained = [*packer.token_packer.parameters(), *packer.token_packer_slow.parameters()]
    for p in trained:
        p.requires_grad_(True)
    opt = torch.optim.Adam([*trained, *colour.parameters(), *timing.parameters()], lr=1e-3)

    def slow(feats: torch.Tensor, pk) -> torch.Tensor:
        with torch.no_grad():
            lape = model.project_and_lape(feats.float(), "video", tables)["lape_features"]
        return pk(lape)[0]

    def losses(feats: torch.Tensor, shown: torch.Tensor) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            before = slow(feats, old)
        x = slow(feats, packer)
        lc, lt = colour(x), timing(x).reshape(len(TIMES), -1)
        bce = F.binary_cross_entropy_with_logits(lc, shown, reduction="none")
        pos = shown > 0
        l_col = 4 * (bce[pos].mean() if pos.any() else bce.sum() * 0) + bce[~pos].mean()  # balanced
        l_time = F.cross_entropy(lt, TIMES)
        l_keep = (rms_normalised(x) - rms_normalised(before)).pow(2).mean()
        return l_col, l_time, l_keep, lc, lt

    held = max(len(data) * 3 // 20, 1)  # the last 15 % of the clips are only evaluated

    def evaluate() -> str:
        acc, err, keep = [], [], []
        with torch.no_grad():
            for feats, shown in data[-held:]:
                _, _, lk, lc, lt = losses(feats, shown)
                p, pos = lc > 0, shown > 0
                recall = (p & pos).sum() / pos.sum().clamp(min=1)
                acc.append(float((recall + (~p & ~pos).sum() / (~pos).sum()) / 2))
                err.append(float((lt.argmax(1) - TIMES).abs().float().mean()))
                keep.append(float(lk))
        return (f"colour balanced accuracy {np.mean(acc):.3f}, time error {np.mean(err):.1f} bins, "
                f"distance to the old tokens {np.mean(keep):.3f}")

    print("before:", evaluate(), flush=True)
    t0 = time.time()
    for step in range(1, a.steps + 1):
        l_col, l_time, l_keep, _, _ = losses(*data[rng.randrange(len(data) - held)])
        opt.zero_grad()
        (l_col + l_time + a.keep * l_keep).backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        opt.step()
        if step % 100 == 0:
            print(f"step {step} ({time.time() - t0:.0f} s): colour {l_col:.3f} time {l_time:.3f} "
                  f"keep {l_keep:.3f}", flush=True)
        if step % 400 == 0 or step == a.steps:
            print(f"  held out: {evaluate()}", flush=True)
    shutil.copytree(a.model, a.out, dirs_exist_ok=True)
    state = load_file(f"{a.out}/model.safetensors")
    for k, v in packer.state_dict().items():
        state[f"model.vision_resampler.{k}"] = v.detach().clone().contiguous()
    save_file(state, f"{a.out}/model.safetensors", metadata={"format": "pt"})
    print("wrote", a.out)


if __name__ == "__main__":
    main()
