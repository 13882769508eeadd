"""``load_model``: a local checkpoint directory or a hub id -> (LlavaSTForCausalLM, tokenizer).

One public path used by every command, so the golden check exercises exactly what users run.
Safetensors only unless the caller opts in to pickle weights; every failure is one ModelLoadError line.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from stchat.errors import ModelLoadError
from stchat.model.adapter import apply_adapter, check_adapter_dir
from stchat.model.checkpoint import inspect_checkpoint
from stchat.model.configuration_llava_st import NUM_COORD_BINS, LlavaSTConfig
from stchat.model.modeling_llava_st import LlavaSTForCausalLM

DEFAULT_MODEL_ID = "appletea2333/LLaVA-ST-Qwen2-7B"
MODEL_ENV = "STCHAT_MODEL"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HOW_TO_CHOOSE = f"pass --model DIR_OR_HUB_ID or set {MODEL_ENV}"
# Modules that must stay in full precision under bitsandbytes: the vision path and every weight the
# model reads directly as a tensor (coordinate tables, lm_head for the extended logits).
_KEEP_UNQUANTIZED = [
    "vision_tower", "mm_projector", "vision_resampler", "lm_head",
    "temporal_output_embeddings", "spatial_height_output_embeddings", "spatial_width_output_embeddings",
]  # fmt: skip


def default_model_source(explicit: str | Path | None = None) -> str:
    """The model to load: ``explicit``, else ``$STCHAT_MODEL``, else the released 7B on a big enough GPU,
    else the embedded demo model (``stchat.model.choice``, the one place that decides)."""
    from stchat.model.choice import choose_model

    return choose_model(explicit)


def resolve_checkpoint_dir(model: str | Path, allow_pickle: bool = False) -> Path:
    """A local directory as is; a hub id through ``snapshot_download`` (with progress bars)."""
    if str(model) == "demo":  # the embedded demo model's name (stchat.model.choice)
        from stchat.model.choice import demo_model_dir

        model = demo_model_dir()
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    text = str(model)
    if path.exists() or not _HUB_ID.match(text) or text.startswith((".", "/", "~")):
        raise ModelLoadError(f"model directory {text!r} not found ({_HOW_TO_CHOOSE})")
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "*.py", "*/*.json"]
    if allow_pickle:
        patterns.append("*.bin")
    try:
        return Path(snapshot_download(repo_id=text, allow_patterns=patterns))
    except Exception as exc:  # offline, unknown repo, gated, disk full: all reach the user as one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"cannot get model {text!r} from the Hugging Face hub ({reason}); "
            f"{_HOW_TO_CHOOSE} to use a local copy"
        ) from exc


def _check_weight_files(ckpt: Path, allow_pickle: bool) -> bool:
    """True when safetensors weights are present; pickle ``.bin`` only with explicit opt-in."""
    if not (ckpt / "config.json").is_file():
        raise ModelLoadError(f"{ckpt} has no config.json: not a model checkpoint directory")
    if any(ckpt.glob("*.safetensors")):
        return True
    if any(ckpt.glob("*.bin")):
        if allow_pickle:
            return False
        raise ModelLoadError(
            f"{ckpt} only has pickle (.bin) weights, which can run code when loaded; "
            "convert them to safetensors, or pass allow_pickle=True (--allow-pickle) if you trust the source"
        )
    raise ModelLoadError(f"{ckpt} has no model weights (*.safetensors)")


def pick_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: torch.dtype | str | None, device: torch.device) -> torch.dtype:
    """CUDA: bf16 where supported, else fp16. CPU: fp32 (half precision is slow and inexact there)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype != "auto":
        value = getattr(torch, dtype, None)
        if not isinstance(value, torch.dtype):
            raise ModelLoadError(f"unknown dtype {dtype!r}")
        return value
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def pick_attn_implementation(requested: str | None, device: torch.device) -> str:
    """flash_attention_2 when flash_attn is installed and we are on CUDA, else sdpa.

    The golden was produced with eager attention; sdpa stays within 5e-5 of it on every golden logit
    (tests/test_model_golden.py measures this), well inside the 1e-4 acceptance, so sdpa is the default.
    """
    if requested:
        return requested
    if device.type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _quantization_config(load_in_8bit: bool, load_in_4bit: bool, device: torch.device) -> Any:
    if not (load_in_8bit or load_in_4bit):
        return None
    if load_in_8bit and load_in_4bit:
        raise ModelLoadError("choose one of 8-bit and 4-bit loading, not both")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError("8/4-bit loading needs bitsandbytes: pip install 'stchat[gpu]'")
    if device.type != "cuda":
        raise ModelLoadError("8/4-bit loading needs a CUDA GPU")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_8bit=load_in_8bit,
        load_in_4bit=load_in_4bit,
        llm_int8_skip_modules=_KEEP_UNQUANTIZED,
    )


def load_tokenizer(ckpt: Path, vocab_size: int) -> Any:
    """The checkpoint's tokenizer, checked against the coordinate-token layout the model relies on
    (docs/official_quirks.md#token-ids)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(ckpt))
    except Exception as exc:
        raise ModelLoadError(f"cannot load the tokenizer of {ckpt}: {exc}") from exc
    expected = {
        "<TEMP-000>": vocab_size,
        "<HEIGHT-000>": vocab_size + NUM_COORD_BINS,
        "<WIDTH-000>": vocab_size + 2 * NUM_COORD_BINS,
        "<WIDTH-099>": vocab_size + 3 * NUM_COORD_BINS - 1,
    }
    for token, want in expected.items():
        got = tokenizer.convert_tokens_to_ids(token)
        if got != want:
            raise ModelLoadError(
                f"tokenizer of {ckpt} maps {token} to {got}, expected {want} (vocab_size {vocab_size})"
            )
    if len(tokenizer) != vocab_size + 3 * NUM_COORD_BINS:
        raise ModelLoadError(
            f"tokenizer of {ckpt} has {len(tokenizer)} tokens, expected vocab_size + 300 = "
            f"{vocab_size + 3 * NUM_COORD_BINS}"
        )
    return tokenizer


def load_model(
    model: str | Path,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    attn_implementation: str | None = None,
    device_map: str | dict | None = None,
    load_in_8bit: bool = False,
    load_in_4bit: bool = False,
    allow_pickle: bool = False,
    adapter: str | Path | None = None,
) -> tuple[LlavaSTForCausalLM, Any]:
    """Load an official-format LLaVA-ST checkpoint and its tokenizer, ready for inference (eval mode).

    ``adapter``: a fine-tuning output directory (``stchat train``, or a plain peft LoRA directory); its
    LoRA deltas are merged into the weights and its other trained tensors (packer, embeddings,
    coordinate tables) replace the base ones.
    """
    from transformers import GenerationConfig

    ckpt = resolve_checkpoint_dir(model, allow_pickle)
    use_safetensors = _check_weight_files(ckpt, allow_pickle)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    quant = _quantization_config(load_in_8bit, load_in_4bit, dev)
    # config.json, the shard index, the safetensors headers and the tokenizer files must agree before
    # anything is allocated; the flattened config carries the vocabulary size the weights have.
    layout = inspect_checkpoint(ckpt, tensors_required=use_safetensors)
    try:
        config = LlavaSTConfig.from_dict(dict(layout.config))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot read {ckpt / 'config.json'}: {exc}") from exc
    config._name_or_path = str(ckpt)  # the tower reads its geometry from this checkpoint's tensors
    kwargs: dict[str, Any] = {
        "config": config,
        "dtype": torch_dtype,
        "attn_implementation": pick_attn_implementation(attn_implementation, dev),
        "use_safetensors": use_safetensors,
        "output_loading_info": True,
    }
    if device_map is not None:
        kwargs["device_map"] = device_map
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs.setdefault("device_map", {"": dev.index or 0})
    try:
        net, info = LlavaSTForCausalLM.from_pretrained(str(ckpt), **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load weights from {ckpt}: {first}") from exc
    missing = sorted(info.get("missing_keys") or [])
    if missing:
        shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
        raise ModelLoadError(
            f"{ckpt} is not a complete LLaVA-ST checkpoint: {len(missing)} weights missing ({shown})"
        )
    if device_map is None and quant is None:
        net = net.to(dev)
    tokenizer = load_tokenizer(ckpt, layout.vocab_size)
    net.bind_tokenizer(tokenizer)
    if (ckpt / "generation_config.json").is_file():
        net.generation_config = GenerationConfig.from_pretrained(str(ckpt))
    else:
        net.generation_config = GenerationConfig.from_model_config(config)
    if adapter is not None:
        net = apply_adapter(net, adapter, merge=True)
    net.eval()
    return net, tokenizer


def merge_to_checkpoint(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path,
                        dtype: torch.dtype | None = None) -> Path:
    """Base checkpoint + adapter -> a full official-format checkpoint (``demo/merge_model.py`` analogue)."""
    check_adapter_dir(adapter_dir)  # before loading the base model, which takes minutes for 7B
    base_path = resolve_checkpoint_dir(base_dir)
    model, tokenizer = load_model(base_path, device="cpu", dtype=torch.float32)
    model = apply_adapter(model, adapter_dir, merge=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if dtype is not None:
        model = model.to(dtype)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    # Side directories (e.g. the SigLIP tower config the config's mm_vision_tower names) go along.
    for sub in base_path.iterdir():
        if sub.is_dir() and not (out / sub.name).exists():
            shutil.copytree(sub, out / sub.name)
    if (base_path / "generation_config.json").is_file():
        shutil.copy2(base_path / "generation_config.json", out / "generation_config.json")
    return out
