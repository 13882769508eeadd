"""Training checkpoint -> the shipped demo model directory (official format, fp32 safetensors).

The export also puts the three base special tokens in the official order
(docs/official_quirks.md#visual-pipeline:
``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` at V0, V0+1, V0+2) and points ``bos``/``eos`` at
``<|endoftext|>``/``<|im_end|>``. ``build_tokenizer`` lets transformers register eos/pad first, so the
training checkpoint has them as ``<|im_end|>``, ``<|endoftext|>``, ``<|im_start|>``; the export swaps
the tokenizer ids *and* the matching rows of ``embed_tokens`` and ``lm_head`` together, which changes no
answer (a relabelling), and keeps the reproduction from scratch bit-identical to the shipped run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

OFFICIAL_ORDER = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def _official_special_order(ckpt: Path) -> None:
    from safetensors.torch import load_file, save_file

    tok_path = ckpt / "tokenizer.json"
    tok = json.loads(tok_path.read_text())
    ids = {a["content"]: a["id"] for a in tok["added_tokens"]}
    old = [ids[t] for t in OFFICIAL_ORDER]
    base = min(old)
    new = [base, base + 1, base + 2]
    cfg_path = ckpt / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if old != new:
        remap = dict(zip(old, new, strict=True))
        for a in tok["added_tokens"]:
            a["id"] = remap.get(a["id"], a["id"])
        tok["added_tokens"].sort(key=lambda a: a["id"])
        tok_path.write_text(json.dumps(tok, ensure_ascii=False, indent=2))
        weights = ckpt / "model.safetensors"
        state = load_file(str(weights))
        for key in ("model.embed_tokens.weight", "lm_head.weight"):
            w = state[key].clone()
            for o, n in remap.items():
                w[n] = state[key][o]
            state[key] = w
        save_file(state, str(weights), metadata={"format": "pt"})
    for path in (cfg_path, ckpt / "generation_config.json"):
        data = cfg if path == cfg_path else json.loads(path.read_text())
        data["bos_token_id"], data["eos_token_id"] = new[0], new[2]
        path.write_text(json.dumps(data, indent=2) + "\n")


def export_checkpoint(checkpoint: str | Path, out: str | Path, base: str | Path) -> Path:
    """Fold a full-fine-tuning checkpoint (its ``adapter/`` trainables) into ``base``; write ``out``."""
    from stchat.model.loading import merge_to_checkpoint

    ck = Path(checkpoint)
    adapter = ck / "adapter" if (ck / "adapter").is_dir() else ck
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    merge_to_checkpoint(base, adapter, tmp)
    _official_special_order(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
