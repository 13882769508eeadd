"""Can the span be read from what the language model gets? A linear probe of the packed slow stream.

The STVG span is the only part of an answer that must be read from the video over time: the first and the
last of the 20 slow frames (81 packed tokens each, LAPE included) in which the queried object shows. This
probe asks whether "an object of colour c is visible in slow frame j" is linearly readable from those tokens
(a linear score per token, soft-maxed over the 81, as one attention head could), per colour, fitted on three
quarters of the clips and tested on the rest, and compares the packer's input (the LAPE-added projector
output of the frame the slow query is picked from, Q11). If the packed tokens hold it, the language model is
what has to learn the retrieval. ``--patches`` asks it one step earlier, of single patches (tower and
projector output).

    python scripts/demo_span_probe.py MODEL_DIR runs/demo/mix --clips 200 --seed-base 7000000
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch

from stchat.demo.data import _train_scene
from stchat.demo.world import COLOURS
from stchat.media import load_sampled
from stchat.model.loading import load_model

SLOW, PER = 20, 5  # slow frames; sampled frames each slow frame summarises (Q11: query at 5j + 2)


def features(model, path: Path) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(20, 81, C) slow tokens, (20, 729, C) packer input at the query frames, the sampled indices."""
    media = load_sampled(str(path))
    with torch.no_grad():
        inter = model.vision_intermediates(media.pixel_values, "video")
    slow = inter["token_packer_slow_out"]  # (20, 81, C)
    pre = inter["lape_features"][PER // 2 :: PER]  # (20, 729, C)
    return slow, pre, list(media.frame_indices or [])


def labels(scene, idx: list[int]) -> torch.Tensor:
    """(20, colours): does an object of that colour show in any of the slow frame's 5 sampled frames?"""
    names = list(COLOURS)
    y = torch.zeros(SLOW, len(names))
    for o in scene.objects:
        for j in range(SLOW):
            if any(o.start <= f <= o.end for f in idx[j * PER : (j + 1) * PER]):
                y[j, names.index(o.colour)] = 1
    return y


def fit_eval(xtr, ytr, xte, yte, steps: int = 400) -> torch.Tensor:
    """Per-colour multiple-instance linear probe: a frame shows colour c when its best token scores above
    0 (score = w_c . token + b_c, pooled by a soft max over the tokens, as one attention head could);
    Adam on the training frames, balanced accuracy on the test frames. x: (frames, tokens, C)."""
    mu, sd = xtr.mean((0, 1)), xtr.std((0, 1)) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    w = torch.zeros(xtr.shape[-1], ytr.shape[1], requires_grad=True)
    b = torch.zeros(ytr.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)

    def score(x: torch.Tensor) -> torch.Tensor:
        return torch.logsumexp(4 * (x @ w + b), dim=1) / 4

    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(score(xtr), ytr) + 1e-4 * (w * w).sum()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p = score(xte) > 0
    pos, neg = yte > 0.5, yte < 0.5
    tpr = (p & pos).sum(0) / pos.sum(0).clamp(min=1)
    tnr = (~p & neg).sum(0) / neg.sum(0).clamp(min=1)
    return (tpr + tnr) / 2


def patch_check(model, clips: int, seed_base: int) -> None:
    """The same question one step earlier: is a single patch's colour linearly readable from the frozen
    tower and from the projector? One frame per scene (the middle of the target's span); a patch is
    labelled with the colour covering >= 60 % of it (else skipped), background otherwise; multinomial
    logistic regression, recall per class on the last quarter."""
    import numpy as np
    from PIL import Image

    from stchat.demo.world import _mask, render_frame

    names = [*COLOURS, "background"]
    feats: dict[str, list[torch.Tensor]] = {"pixels (mean RGB)": [], "tower": [], "projector": []}
    ys = []
    for i in range(clips):
        scene = _train_scene(seed_base + i, random.Random(seed_base + i))
        f = (scene.target.start + scene.target.end) // 2
        lab = np.full((scene.height, scene.width), len(COLOURS), np.uint8)
        for o in reversed(scene.objects):  # the target drawn last, as render_frame does
            box = o.box_px(f)
            got = _mask(o.shape, box, scene.height, scene.width) if box is not None else None
            if got is not None:
                rs, cs, m = got
                sub = lab[rs, cs]
                sub[m] = list(COLOURS).index(o.colour)
                lab[rs, cs] = sub
        pixels = load_sampled(render_frame(scene, f)).pixel_values
        cells = np.array(Image.fromarray(lab).resize((378, 378), Image.NEAREST))  # 27 x 27 patches of 14
        cells = cells.reshape(27, 14, 27, 14).transpose(0, 2, 1, 3).reshape(729, -1)
        counts = np.stack([np.bincount(c, minlength=len(names)) for c in cells])
        y = np.where(counts.max(1) >= 0.6 * cells.shape[1], counts.argmax(1), -1)
        with torch.no_grad():
            inter = model.vision_intermediates(pixels, "image")
        feats["pixels (mean RGB)"].append(torch.nn.functional.avg_pool2d(pixels[:, :, :378, :378], 14)
                                          .flatten(2)[0].T)
        feats["tower"].append(inter["vision_tower_out"][0])
        feats["projector"].append(inter["projector_out"][0])
        ys.append(torch.from_numpy(y))
    y = torch.cat(ys)
    keep = y >= 0
    y = y[keep]
    for what, xs in feats.items():
        recall = _patch_recall(torch.cat(xs)[keep], y, len(names))
        print(f"single patches, {what}: mean recall {sum(recall) / len(recall):.2f}: "
              + ", ".join(f"{n} {r:.2f}" for n, r in zip(names, recall, strict=True)))


def _patch_recall(x: torch.Tensor, y: torch.Tensor, n: int) -> list[float]:
    """Class-balanced multinomial logistic regression fitted on the last three quarters, recall per class
    on the first quarter."""
    k = len(y) // 4
    x = (x - x[k:].mean(0)) / (x[k:].std(0) + 1e-6)
    w = torch.zeros(x.shape[1], n, requires_grad=True)
    b = torch.zeros(n, requires_grad=True)
    weight = 1 / torch.bincount(y[k:], minlength=n).float().clamp(min=1)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[k:] @ w + b, y[k:], weight=weight / weight.mean())
        loss = loss + 1e-4 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    pred = (x[:k] @ w + b).argmax(1)
    return [float(((pred == c) & (y[:k] == c)).sum() / max(int((y[:k] == c).sum()), 1)) for c in range(n)]


def extract(args) -> tuple[list, list, list]:
    model, _ = load_model(args.model, device="cpu", dtype=torch.float32)
    model.eval()
    xs, xp, ys = [], [], []
    for i in range(args.clips):
        seed = args.seed_base + i
        path = Path(args.root) / f"clips/demo_{seed}.mp4"
        if not path.is_file():
            continue
        scene = _train_scene(seed, random.Random(seed))
        s, p, idx = features(model, path)
        xs.append(s)
        xp.append(p)
        ys.append(labels(scene, idx))
    return xs, xp, ys


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("root", help="a train-data folder with clips/demo_<seed>.mp4")
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--seed-base", type=int, default=7_000_000)
    ap.add_argument("--cache", type=Path, help="save the features here, or load them when it exists")
    ap.add_argument("--patches", action="store_true", help="instead: the single-patch check (patch_check)")
    args = ap.parse_args()
    if args.patches:
        model, _ = load_model(args.model, device="cpu", dtype=torch.float32)
        patch_check(model.eval(), args.clips, args.seed_base)
        return
    if args.cache and args.cache.is_file():
        xs, xp, ys = torch.load(args.cache)
    else:
        xs, xp, ys = extract(args)
        if args.cache:
            torch.save((xs, xp, ys), args.cache)
    k = len(xs) // 4
    names = list(COLOURS)
    for what, x in (("slow tokens (LLM input)", xs), ("packer input, query frame", xp)):
        acc = fit_eval(torch.cat(x[k:]), torch.cat(ys[k:]), torch.cat(x[:k]), torch.cat(ys[:k]))
        print(f"{what}: balanced accuracy on {k} held-out clips, mean {float(acc.mean()):.3f}: "
              + ", ".join(f"{n} {float(a):.2f}" for n, a in zip(names, acc, strict=True)))


if __name__ == "__main__":
    main()
