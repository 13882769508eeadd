"""Fine-tuning outputs: the adapter directory, applying it to a loaded model, and merging to a checkpoint.

An adapter directory holds what training changed, in the official stage-2/3 split
(docs/official_quirks.md#training-stages):

* ``adapter_config.json`` + ``adapter_model.safetensors`` -- the peft LoRA weights (absent after full
  fine-tuning, where every trainable tensor goes to the next file);
* ``non_lora_trainables.safetensors`` -- the other trained tensors (packer, ``embed_tokens``, the six
  coordinate tables) under their official state-dict names (official: ``non_lora_trainables.bin``);
* ``stchat_adapter.json`` -- what produced it (mode, base model, step).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from stchat.errors import ModelLoadError

NON_LORA_FILE = "non_lora_trainables.safetensors"
META_FILE = "stchat_adapter.json"
# Official LoRA targets: every nn.Linear of the LLM decoder (q,k,v,o,gate,up,down), not the vision
# tower, projector, packer, coordinate tables or lm_head (docs/official_quirks.md#training-stages).
LORA_TARGET_REGEX = r".*model\.layers\.\d+\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)"


def _clean_name(name: str) -> str:
    """Official state-dict name of a (possibly peft-wrapped) parameter."""
    for prefix in ("base_model.model.", "module."):
        if name.startswith(prefix):
            name = name[len(prefix):]
    return name.replace(".base_layer.", ".")


def non_lora_state(model) -> dict[str, torch.Tensor]:
    """Trainable tensors that are not LoRA weights, by official name, on CPU."""
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad and "lora_" not in name:
            out[_clean_name(name)] = p.detach().to("cpu").contiguous().clone()
    return out


def save_adapter(model, out_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Write the adapter directory (LoRA via peft if the model is a PeftModel, plus non-LoRA trainables)."""
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    if hasattr(model, "peft_config"):
        model.save_pretrained(str(tmp), safe_serialization=True)
    save_file(non_lora_state(model), str(tmp / NON_LORA_FILE))
    (tmp / META_FILE).write_text(json.dumps(meta, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # atomic: a killed run never leaves a half-written adapter under the final name
    return out


def check_adapter_dir(adapter_dir: str | Path) -> Path:
    """The adapter directory, or a one-line ``ModelLoadError`` when it is not one."""
    d = Path(adapter_dir)
    # A stchat adapter (META_FILE) or a plain peft LoRA directory (adapter_config.json) made elsewhere.
    if not ((d / META_FILE).is_file() or (d / "adapter_config.json").is_file()):
        raise ModelLoadError(
            f"{d} is not an adapter directory (neither {META_FILE} nor adapter_config.json is there)"
        )
    return d


def apply_adapter(model, adapter_dir: str | Path, merge: bool = True):
    """Load an adapter directory onto a loaded ``LlavaSTForCausalLM``; returns the (merged) model.

    With ``merge=True`` (inference) the LoRA deltas are folded into the base weights, giving a plain
    ``LlavaSTForCausalLM`` again; with ``merge=False`` a peft model is returned (to continue training).
    """
    d = check_adapter_dir(adapter_dir)
    if (d / "adapter_config.json").is_file():
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, str(d), is_trainable=not merge)
        except Exception as exc:  # peft raises many types for mismatched shapes / names
            raise ModelLoadError(f"cannot apply the LoRA weights in {d}: {str(exc).splitlines()[0]}") from exc
    if (d / NON_LORA_FILE).is_file():
        state = load_file(str(d / NON_LORA_FILE))
        params = {_clean_name(n): p for n, p in model.named_parameters()}
        unknown = [k for k in state if k not in params]
        if unknown:
            raise ModelLoadError(f"{d}: {len(unknown)} trained tensors are not in the model ({unknown[0]})")
        with torch.no_grad():
            for k, v in state.items():
                if params[k].shape != v.shape:
                    want = tuple(params[k].shape)
                    raise ModelLoadError(f"{d}: {k} has shape {tuple(v.shape)}, the model {want}")
                params[k].copy_(v.to(params[k].dtype))
    if merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    return model
