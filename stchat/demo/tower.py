"""Pretrain the demo model's vision tower on the demo world (issue #9).

The released LLaVA-ST freezes a SigLIP tower that CLIP-style pretraining already taught to see. The demo
model's tower was random and frozen: a patch's colour survived it (0.93 recall), but "is there a blue
object anywhere in this frame" did not (balanced accuracy 0.79 from the 729 tokens, green and blue at
chance), because a bluish background patch and a blue object patch look alike to a single random layer
that cannot compare a patch with its surroundings. The STVG span needs exactly that frame-level signal
(checkpoints/demo_mix/README.md, session 13), so the tower is pretrained here, before and apart from the
language model, the way a real tower is: dense supervision from the world generator's exact ground truth.

Per patch of the 27 x 27 grid the tower's selected layer (the last kept one, Q6) is trained, through linear
heads that are thrown away afterwards, to tell

* what covers the patch: background or one of the 8 colours (soft target: the covered fraction),
* the covering object's shape (ball / square / triangle),
* the covering object's normalised box ``[x1, y1, x2, y2]`` in the whole frame.

Frames are rendered by ``world.render_frame`` at the scene's own resolution and aspect and resized by the
official processor (``stchat.processing.image``), so the tower sees what inference gives it; half are
chroma-subsampled and all get a little noise, as an H.264 encode would do. Afterwards the tower is frozen
again for the LLaVA-ST training (as officially: it never receives gradients there).

    python -m stchat.demo tower runs/demo/tower --frames 6000 --steps 2000
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from stchat.demo.world import COLOURS, SHAPES, Scene, _mask, object_box, render_frame, sample_scene
from stchat.model.checkpoint import TOWER_PREFIX

GRID = 27  # 384 px / 14 px patches (the official crop drops the last 6 px)
COLOUR_CLASSES = ("background", *COLOURS)
TOWER_SEED_BASE = 5_000_000  # scenes of the tower's frames; other bases: data.py
COVERED = 0.3  # a patch this covered by one object learns its shape and box


@dataclass(frozen=True)
class TowerSizes:
    hidden_size: int = 48
    intermediate_size: int = 96
    num_attention_heads: int = 2
    kept_layers: int = 2  # the tower directory's config says one more: the official loader drops it (Q6)


def _id_map(scene: Scene, frame: int) -> np.ndarray:
    """(H, W) uint8: 0 background, k+1 where scene.objects[k] is drawn on top (same order as render_frame)."""
    ids = np.zeros((scene.height, scene.width), np.uint8)
    for k in range(len(scene.objects) - 1, -1, -1):  # the target (index 0) last, on top
        box = scene.objects[k].box_px(frame)
        got = None if box is None else _mask(scene.objects[k].shape, box, scene.height, scene.width)
        if got is not None:
            rs, cs, m = got
            ids[rs, cs][m] = k + 1
    return ids


def patch_labels(scene: Scene, frame: int) -> dict[str, np.ndarray]:
    """Per-patch targets of one frame: colour fractions (27, 27, 9), shape (27, 27; -1 = none), box
    (27, 27, 4; NaN where no object covers the patch enough)."""
    ids = _id_map(scene, frame)
    h, w = ids.shape
    k = len(scene.objects) + 1
    # the squash resize maps pixel row y to patch row floor(y * 27 / h) (the 6-px crop is ignored)
    rows = np.minimum(np.arange(h) * GRID // h, GRID - 1)
    cols = np.minimum(np.arange(w) * GRID // w, GRID - 1)
    cell = rows[:, None] * GRID + cols[None, :]
    counts = np.bincount((cell * k + ids).ravel(), minlength=GRID * GRID * k).reshape(GRID, GRID, k)
    frac = counts / np.maximum(counts.sum(-1, keepdims=True), 1)
    colour = np.zeros((GRID, GRID, len(COLOUR_CLASSES)), np.float32)
    colour[..., 0] = frac[..., 0]
    shape = np.full((GRID, GRID), -1, np.int64)
    box = np.full((GRID, GRID, 4), np.nan, np.float32)
    best = frac[..., 1:].argmax(-1) if k > 1 else np.zeros((GRID, GRID), np.int64)
    for j, obj in enumerate(scene.objects):
        colour[..., 1 + list(COLOURS).index(obj.colour)] += frac[..., j + 1]
        b = object_box(scene, obj, frame)
        here = (best == j) & (frac[..., j + 1] >= COVERED)
        if b is not None and here.any():
            shape[here] = SHAPES.index(obj.shape)
            box[here] = b
    return {"colour": colour, "shape": shape, "box": box}


def _degrade(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What an H.264 yuv420p encode does to flat shapes, roughly: half-resolution chroma, a little noise."""
    import cv2

    if rng.random() < 0.5:
        ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
        h, w = ycc.shape[:2]
        small = cv2.resize(ycc[..., 1:], (max(w // 2, 1), max(h // 2, 1)), interpolation=cv2.INTER_AREA)
        ycc[..., 1:] = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)
    noise = rng.normal(0.0, rng.uniform(0.0, 3.0), rgb.shape)
    return np.clip(rgb + noise, 0, 255).astype(np.uint8)


def _bank_item(seed: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    from stchat.processing.image import resize_uint8

    rng = np.random.default_rng(seed)
    scene = sample_scene(seed)
    t = scene.target
    # mostly frames with the target, the rest anywhere (distractors alone, or nothing)
    with_target = rng.random() < 0.75
    frame = int(rng.integers(t.start, t.end + 1)) if with_target else int(rng.integers(scene.n_frames))
    rgb = _degrade(render_frame(scene, frame), rng)
    return resize_uint8(rgb)[0], patch_labels(scene, frame)


def make_bank(n: int, seed_base: int = TOWER_SEED_BASE, workers: int = 2) -> dict[str, np.ndarray]:
    """``n`` labelled frames: uint8 pixels (n, 384, 384, 3) and the per-patch targets."""
    with Pool(workers) as pool:
        items = pool.map(_bank_item, range(seed_base, seed_base + n), chunksize=16)
    return {"pixels": np.stack([p for p, _ in items]),
            **{k: np.stack([lab[k] for _, lab in items]) for k in ("colour", "shape", "box")}}


def _pixel_values(uint8: np.ndarray) -> torch.Tensor:
    from stchat.processing.image import _LUT_NP

    return torch.from_numpy(np.take(_LUT_NP, uint8.transpose(0, 3, 1, 2)))


def _siglip_body(**fields) -> nn.Module:
    """A SigLIP body with the official key names (``embeddings.*``, ``encoder.layers.*``), kept layers only.
    SDPA to train and fit (3x faster here); the model runs the same weights eagerly, as officially."""
    from transformers import SiglipVisionConfig

    from stchat.model.modeling_llava_st import SiglipBody

    cfg = SiglipVisionConfig(**{"image_size": 384, "patch_size": 14, "hidden_act": "gelu_pytorch_tanh",
                                "layer_norm_eps": 1e-6, **fields})
    cfg._attn_implementation = "sdpa"
    return SiglipBody(cfg)


def build_tower(sizes: TowerSizes, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return _siglip_body(hidden_size=sizes.hidden_size, intermediate_size=sizes.intermediate_size,
                        num_attention_heads=sizes.num_attention_heads, num_hidden_layers=sizes.kept_layers)


class Heads(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.colour = nn.Linear(dim, len(COLOUR_CLASSES))
        self.shape = nn.Linear(dim, len(SHAPES))
        self.box = nn.Linear(dim, 4)

    def losses(self, feats: torch.Tensor, lab: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # ~95 % of patches are background: weight object patches up so their colour is learnt early
        weight = 1.0 + 9.0 * (1.0 - lab["colour"][..., 0])
        ce = -(lab["colour"] * F.log_softmax(self.colour(feats), -1)).sum(-1)
        colour = (ce * weight).sum() / weight.sum()
        shape = F.cross_entropy(self.shape(feats).flatten(0, -2), lab["shape"].flatten(), ignore_index=-1)
        has = ~torch.isnan(lab["box"][..., 0])
        box = (F.smooth_l1_loss(self.box(feats)[has], lab["box"][has], beta=0.05) if has.any()
               else feats.sum() * 0)
        return {"colour": colour, "shape": shape, "box": box}

    @torch.no_grad()
    def metrics(self, feats: torch.Tensor, lab: dict[str, torch.Tensor]) -> dict[str, float]:
        """Patch colour accuracy on object patches, shape accuracy, mean box L1 (fraction of the frame)."""
        obj = lab["colour"][..., 0] < 1 - COVERED
        hit = self.colour(feats).argmax(-1) == lab["colour"].argmax(-1)
        has = lab["shape"] >= 0
        return {"colour_obj": float(hit[obj].float().mean()), "colour_bg": float(hit[~obj].float().mean()),
                "shape": float((self.shape(feats).argmax(-1) == lab["shape"])[has].float().mean()),
                "box_l1": float((self.box(feats)[has] - lab["box"][has]).abs().mean())}


def _labels(bank: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(bank[k][idx]).reshape(len(idx), GRID * GRID, *bank[k].shape[3:])
            for k in ("colour", "shape", "box")}


def pretrain(out: str | Path, frames: int = 6000, steps: int = 2000, batch: int = 16, lr: float = 2e-3,
             sizes: TowerSizes | None = None, seed: int = 0, val_frames: int = 256) -> Path:
    """Train the tower on a bank of labelled frames; writes ``tower.safetensors`` (SiglipBody keys),
    ``config.json`` (the tower directory's, with the dropped layer counted) and ``log.jsonl``."""
    from safetensors.torch import save_file

    sizes = sizes or TowerSizes()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bank_path = out / f"bank_{frames}.npz"
    if bank_path.exists():
        bank = dict(np.load(bank_path))
    else:
        bank = make_bank(frames + val_frames)
        np.savez(bank_path, **bank)
    tower, heads = build_tower(sizes, seed), Heads(sizes.hidden_size)
    params = [*tower.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s / steps, 1.0))))
    rng = np.random.default_rng(seed)
    val = np.arange(frames, frames + val_frames)
    log = (out / "log.jsonl").open("w")
    t0 = time.time()
    for step in range(1, steps + 1):
        idx = rng.integers(0, frames, batch)
        feats = tower(_pixel_values(bank["pixels"][idx]))
        parts = heads.losses(feats, _labels(bank, idx))
        loss = parts["colour"] + 0.5 * parts["shape"] + 5.0 * parts["box"]
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps:
            row = {"step": step, "loss": loss.item(), **{k: v.item() for k, v in parts.items()},
                   "s": round(time.time() - t0, 1)}
            if step % 250 == 0 or step == steps:
                with torch.no_grad():
                    vf = torch.cat([tower(_pixel_values(bank["pixels"][val[i:i + 32]]))
                                    for i in range(0, len(val), 32)])
                row.update({f"val_{k}": v for k, v in heads.metrics(vf, _labels(bank, val)).items()})
            print(json.dumps(row), flush=True)
            log.write(json.dumps(row) + "\n")
            log.flush()
    save_file({k: v.contiguous() for k, v in tower.state_dict().items()}, str(out / "tower.safetensors"))
    (out / "config.json").write_text(json.dumps(tower_config(sizes), indent=2))
    (out / "sizes.json").write_text(json.dumps(asdict(sizes)))
    return out


def tower_config(sizes: TowerSizes) -> dict:
    return {
        "architectures": ["SiglipModel"], "model_type": "siglip", "torch_dtype": "float32",
        "vision_config": {"hidden_size": sizes.hidden_size, "image_size": 384,
                          "intermediate_size": sizes.intermediate_size, "model_type": "siglip_vision_model",
                          "num_attention_heads": sizes.num_attention_heads,
                          "num_hidden_layers": sizes.kept_layers + 1, "patch_size": 14,
                          "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6},
        "_comment": "stchat demo tower: SigLIP architecture, pretrained on the demo world "
                    "(stchat.demo.tower); the official loader drops the last layer, so its weights are "
                    "not stored."}




def _body_from(state: dict[str, torch.Tensor], vision: dict) -> nn.Module:
    """A SigLIP body (kept layers only) holding the ``model.vision_tower.*`` tensors of a checkpoint."""
    from stchat.model.checkpoint import tower_fields_from_tensors

    fields = tower_fields_from_tensors(state)
    if fields is None:
        raise ValueError("the checkpoint has no vision tower tensors")
    heads = {k: vision[k] for k in ("num_attention_heads", "image_size", "hidden_act", "layer_norm_eps")}
    body = _siglip_body(**{**fields, **heads})
    body.load_state_dict({k[len(TOWER_PREFIX):]: v for k, v in state.items() if k.startswith(TOWER_PREFIX)})
    return body.eval()


def graft(model_dir: str | Path, tower_dir: str | Path, out: str | Path, fit_frames: int = 384,
          fit_steps: int = 600, seed: int = 0) -> Path:
    """Put a pretrained tower into a trained demo checkpoint; refit the projector to it.

    Everything after the projector (LAPE, packer, language model, tables) is kept. The new projector (its
    input is the new tower's width) is fitted (mean squared error, on the tower bank's frames) to give the
    features the *old* tower and projector would give for an idealised version of each frame: every patch
    the old features of flat frames mixed by what covers it -- each object's pure palette colour, and mid
    grey for the background. So the language model starts from features in the space it was trained on,
    but an object patch now reads as its colour and a background patch as no colour at all, whatever the
    background's hue: in the old features a bluish background looked like a blue object (session 13:
    "blue shows in this frame" at chance from the packer input). Prints the fit's explained variance.
    """
    from safetensors.torch import load_file, save_file

    from stchat.processing.image import preprocess

    model_dir, tower_dir, out = Path(model_dir), Path(tower_dir), Path(out)
    cfg = json.loads((model_dir / "config.json").read_text())
    old_vision = json.loads((model_dir / cfg["mm_vision_tower"] / "config.json").read_text())["vision_config"]
    new_cfg = json.loads((tower_dir / "config.json").read_text())
    state = load_file(str(model_dir / "model.safetensors"))
    tower_state = load_file(str(tower_dir / "tower.safetensors"))
    new_tower_state = {TOWER_PREFIX + k: v for k, v in tower_state.items()}
    old_body, new_body = _body_from(state, old_vision), _body_from(new_tower_state, new_cfg["vision_config"])
    old_proj = nn.Sequential(nn.Linear(old_vision["hidden_size"], cfg["hidden_size"]), nn.GELU(),
                             nn.Linear(cfg["hidden_size"], cfg["hidden_size"]))
    old_proj.load_state_dict({k[len("model.mm_projector."):]: v for k, v in state.items()
                              if k.startswith("model.mm_projector.")})
    torch.manual_seed(seed)
    width = new_cfg["vision_config"]["hidden_size"]
    new_proj = nn.Sequential(nn.Linear(width, cfg["hidden_size"]), nn.GELU(),
                             nn.Linear(cfg["hidden_size"], cfg["hidden_size"]))
    new_proj[2].load_state_dict(old_proj[2].state_dict())
    saved = sorted(tower_dir.glob("bank_*.npz"))  # the pretraining's frames; the same seeds otherwise
    bank = dict(np.load(saved[0])) if saved else make_bank(fit_frames)
    pixels, cover = bank["pixels"][:fit_frames], torch.from_numpy(bank["colour"][:fit_frames])
    flat = [(128, 128, 128), *COLOURS.values()]  # COLOUR_CLASSES order: background first
    with torch.no_grad():
        ideal = old_proj(old_body(preprocess(np.stack([np.full((64, 64, 3), c, np.uint8) for c in flat]))))
        x_new, y_old = [], []
        for i in range(0, len(pixels), 16):
            x_new.append(new_body(_pixel_values(pixels[i:i + 16])))
            # (n, 27, 27, 9) cover fractions x (9, 729, C) flat-frame features -> (n, 729, C)
            y_old.append(torch.einsum("npk,kpc->npc", cover[i:i + 16].flatten(1, 2), ideal))
        x_new, y_old = torch.cat(x_new).flatten(0, 1), torch.cat(y_old).flatten(0, 1)
    # ~96 % of patches are background: sample the fit half from object patches, or they are not learnt
    is_obj = cover[..., 0].flatten() < 1 - COVERED
    gen = torch.Generator().manual_seed(seed)
    held = torch.rand(len(x_new), generator=gen) < 0.1
    pools = [torch.nonzero(m).flatten() for m in (is_obj & ~held, ~is_obj & ~held)]
    opt = torch.optim.Adam(new_proj.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, fit_steps)
    for _ in range(fit_steps):
        idx = torch.cat([p[torch.randint(0, len(p), (2048,), generator=gen)] for p in pools])
        loss = F.mse_loss(new_proj(x_new[idx]), y_old[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        for name, m in (("object", held & is_obj), ("background", held & ~is_obj)):
            err = (new_proj(x_new[m]) - y_old[m]).pow(2).sum(1).mean()
            var = (y_old[m] - y_old[m].mean(0)).pow(2).sum(1).mean()
            contrast = float((ideal[1:] - ideal[:1]).norm(dim=-1).mean())
            print(f"projector refit, held-out {name} patches: rms error {float(err.sqrt()):.2f} "
                  f"(colour codes differ from grey by {contrast:.2f}), "
                  f"explained variance {1 - float(err / var):.3f}")
    state = {k: v for k, v in state.items()
             if not k.startswith(("model.vision_tower.", "model.mm_projector."))}
    state.update(new_tower_state)
    state.update({f"model.mm_projector.{k}": v.detach().contiguous()
                  for k, v in new_proj.state_dict().items()})
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(model_dir, tmp)
    (tmp / cfg["mm_vision_tower"] / "config.json").write_text(json.dumps(new_cfg, indent=2))
    cfg["mm_hidden_size"] = new_cfg["vision_config"]["hidden_size"]
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
