"""Replay the official training goldens (``<fixture>/train/``) through our data path and objective.

For every case the samples are rebuilt from ``train_data.json`` (not from the stored ids), tokenised,
labelled, collated and run through ``training_loss`` + ``backward``; then compared with the official
numbers at the tolerances of ``train/tolerances.json`` / docs/official_quirks.md#golden-tolerances:

* exact: ``input_ids``, ``labels``, ``attention_mask``, supervised rows, soft-target rows/columns/values,
  the loss branch of each sample, the sampled frame indices;
* ``loss`` and ``per_sample_loss`` within 1e-4 (absolute), per-token losses within 1e-4;
* every stored gradient within ``1e-3 * max|ref|`` per tensor.

``verify_train_cases`` is self-contained: the ``verify-golden`` command calls it with a loaded fp32
model and its tokenizer and prints the returned rows.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from stchat.errors import StchatError
from stchat.train.data import TrainDataset, collate, load_records
from stchat.train.features import TowerCache
from stchat.train.forward import training_loss, unwrap
from stchat.train.media import load_pixels
from stchat.train.objective import CoordVocab

LOSS_ATOL = 1e-4
TOKEN_LOSS_ATOL = 1e-4
GRAD_REL = 1e-3


def _cases(train_dir: Path) -> list[str]:
    manifest = train_dir / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        names = [c.get("name") if isinstance(c, dict) else c for c in data.get("cases") or []]
        if names and all(isinstance(n, str) for n in names):
            return names
    return sorted(p.stem for p in train_dir.glob("train_*.json") if p.stem != "train_data")


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().float().cpu() - b.float()).abs().max()) if a.numel() else 0.0


def _replay_case(name: str, train_dir: Path, base, tokenizer, records: dict, pixels: dict,
                 cache: TowerCache) -> dict[str, Any]:
    meta = json.loads((train_dir / f"{name}.json").read_text())
    ref = load_file(str(train_dir / f"{name}.safetensors"))
    row: dict[str, Any] = {"case": name, "checks": {}, "max_diff": {}}
    checks, diffs = row["checks"], row["max_diff"]
    ids_in_case = [r["id"] for r in meta["training_records"]]
    ds = TrainDataset([records[i] for i in ids_in_case], tokenizer, load_media=False)
    examples = []
    for k in range(len(ds)):
        ex = ds[k]
        rec = records[ex.id]
        key = (str(rec.media), rec.split)
        if key not in pixels:
            pixels[key] = load_pixels(rec)
        ex.pixel_values, ex.frame_indices = pixels[key]
        examples.append(ex)
        want = meta["samples"][k].get("frame_indices_requested_by_loader")
        if want is not None:
            checks[f"s{k}_frame_indices"] = ex.frame_indices == want
    batch = collate(examples, pad_id=tokenizer.pad_token_id)
    for key in ("input_ids", "labels", "attention_mask"):
        got = getattr(batch, key)
        checks[key] = tuple(got.shape) == tuple(ref[key].shape) and bool(torch.equal(got, ref[key]))

    grads = [k[len("grad/"):] for k in ref if k.startswith("grad/")]
    params = dict(base.named_parameters())
    missing = [g for g in grads if g not in params]
    if missing:
        raise StchatError(f"the model has no parameter {missing[0]} (golden case {name})")
    saved = {n: p.requires_grad for n, p in params.items()}
    try:
        for n, p in params.items():
            p.requires_grad_(n in grads)
            p.grad = None
        t0 = time.perf_counter()
        out = training_loss(base, batch, CoordVocab.from_tokenizer(tokenizer), reduction="sum",
                            tower_cache=cache)
        out.loss.backward()
        row["seconds"] = round(time.perf_counter() - t0, 2)
        for k, tg in enumerate(out.targets):
            s = meta["samples"][k]
            checks[f"s{k}_branch"] = tg.soft == s["loss_branch"].startswith("soft")
            checks[f"s{k}_supervised_rows"] = bool(torch.equal(tg.rows, ref[f"s{k}_supervised_rows"]))
            if tg.soft:
                r, c, v = tg.nonzeros()
                checks[f"s{k}_targets"] = (
                    torch.equal(r, ref[f"s{k}_target_rows"]) and torch.equal(c, ref[f"s{k}_target_cols"])
                    and torch.equal(v, ref[f"s{k}_target_vals"])
                )
            d = _max_abs(out.token_losses[k], ref[f"s{k}_token_loss"])
            diffs[f"s{k}_token_loss"] = d
            checks[f"s{k}_token_loss"] = d <= TOKEN_LOSS_ATOL
        diffs["loss"] = abs(float(out.loss.detach()) - float(ref["loss"]))
        diffs["per_sample_loss"] = _max_abs(out.per_sample, ref["per_sample_loss"])
        checks["loss"] = diffs["loss"] <= LOSS_ATOL
        checks["per_sample_loss"] = diffs["per_sample_loss"] <= LOSS_ATOL
        for g in grads:
            got = params[g].grad
            scale = float(ref[f"grad/{g}"].abs().max())
            if got is None:
                checks[f"grad/{g}"] = scale == 0.0
                continue
            rel = _max_abs(got, ref[f"grad/{g}"]) / scale if scale > 0 else _max_abs(got, ref[f"grad/{g}"])
            diffs[f"grad/{g}"] = rel
            checks[f"grad/{g}"] = rel <= GRAD_REL
        row["loss"] = float(out.loss.detach())
        row["reference_loss"] = float(ref["loss"])
    finally:
        for n, p in params.items():
            p.grad = None
            p.requires_grad_(saved[n])
    row["passed"] = all(checks.values())
    row["failed"] = sorted(k for k, ok in checks.items() if not ok)
    return row


def verify_train_cases(fixture_dir: str | Path, model, tokenizer, cases: list[str] | None = None
                       ) -> list[dict[str, Any]]:
    """Replay every ``train/`` case; one dict per case with ``passed``, ``checks``, ``max_diff``, ``failed``.

    ``fixture_dir`` is the golden folder (holding ``train/`` and ``media/``); ``model`` must be the
    fp32 model of ``fixture_dir/model`` (the goldens are fp32; bf16/fp16 cannot meet the tolerances).
    ``cases`` restricts the replay to those case names (default: all).
    """
    root = Path(fixture_dir)
    train_dir = root / "train"
    if not (train_dir / "train_data.json").is_file():
        raise StchatError(f"no training goldens in {train_dir} (train_data.json missing)")
    base = unwrap(model)
    dtype = base.model.embed_tokens.weight.dtype
    if dtype != torch.float32:
        raise StchatError(f"the training goldens are fp32; the model is loaded as {dtype}")
    records = {r.id: r for r in load_records(train_dir / "train_data.json", root / "media")}
    was_training = base.training
    base.eval()  # the goldens were made in eval mode (no dropout anywhere, so train() is identical)
    pixels: dict = {}
    rows = []
    try:
        # The cases share one video and one image: the frozen SigLIP output is computed once each (no
        # gradient reaches the tower, so this changes no number).
        cache = TowerCache()
        for name in cases if cases is not None else _cases(train_dir):
            rows.append(_replay_case(name, train_dir, base, tokenizer, records, pixels, cache))
    finally:
        base.train(was_training)
    return rows
