"""``stchat inspect-model PATH_OR_ID``: what a checkpoint is and whether it fits, before loading it.

Reads config.json, the shard index, the tokenizer files and the safetensors headers only (for a hub id:
those small files plus the headers over HTTP range requests), so it takes seconds and no RAM, and reports
the same reconciliation ``load_model`` does.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from stchat.errors import ModelLoadError

DTYPES = ("bfloat16", "float16", "float32", "int8", "4bit")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "inspect-model",
        help="describe a checkpoint and estimate its GPU memory, without loading it",
        description="Read a checkpoint's config, shard index, tokenizer files and safetensors headers "
        "(no weights) and print its architecture, parameter count, dtype, shards, tokenizer check, "
        "vision tower source and the estimated memory of one 100-frame video question per dtype.",
    )
    p.add_argument("model", metavar="PATH_OR_ID", help="checkpoint directory or Hugging Face hub id")
    p.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    p.set_defaults(handler=run)


def _hub_layout(repo: str) -> Any:
    """Small files downloaded, safetensors headers read remotely: no weight is fetched."""
    from huggingface_hub import get_safetensors_metadata, hf_hub_download
    from huggingface_hub.utils import EntryNotFoundError

    from stchat.model.checkpoint import TensorInfo, inspect_checkpoint

    try:
        config = Path(hf_hub_download(repo, "config.json"))
        for name in ("tokenizer.json", "vocab.json", "added_tokens.json"):
            try:
                hf_hub_download(repo, name)
            except EntryNotFoundError:
                pass
        meta = get_safetensors_metadata(repo)
    except Exception as exc:  # offline, unknown or gated repo: one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot read {repo!r} from the Hugging Face hub ({reason})") from exc
    tensors = {
        name: TensorInfo(info.dtype, tuple(info.shape), file)
        for file, fm in meta.files_metadata.items()
        for name, info in fm.tensors.items()
    }
    files = [Path(f) for f in sorted(meta.files_metadata)]
    return inspect_checkpoint(config.parent, tensor_source=(tensors, files, meta.sharded))


def describe(layout: Any) -> dict[str, Any]:
    """The facts ``inspect-model`` prints, as plain data."""
    from stchat.model.footprint import estimate, geometry

    cfg = layout.config
    geo = geometry(cfg, layout.tensors, layout.tower.fields)
    gpus = _visible_gpus()
    memory = {}
    for dtype in DTYPES:
        fp = estimate(layout.tensors, geo, dtype)
        memory[dtype] = {
            "total_bytes": int(fp.total),
            "weights_bytes": int(fp.weights),
            "activations_bytes": int(fp.vision + fp.prefill),
            "kv_cache_bytes": int(fp.kv_cache),
            "fits": {g["name"]: fp.total <= g["total_bytes"] for g in gpus} if gpus else None,
        }
    tok_ok = layout.tokenizer_len is not None and layout.tokenizer_len == layout.vocab_size + 300
    return {
        "path": str(layout.path),
        "architecture": {
            "model_type": cfg.get("model_type"),
            "llm": f"Qwen2: hidden {geo.hidden}, MLP {geo.intermediate}, {geo.layers} layers, "
            f"{geo.heads} heads / {geo.kv_heads} KV heads",
            "vision": f"SigLIP: hidden {layout.tower.fields['hidden_size']}, MLP "
            f"{layout.tower.fields['intermediate_size']}, {layout.tower.fields['num_hidden_layers']} layers, "
            f"{layout.tower.fields['num_attention_heads']} heads",
            "packer": f"attention {cfg.get('mm_token_packer_embed_dim', 1024)} wide, "
            f"{cfg.get('mm_token_packer_num_heads', 8)} heads",
        },
        "parameters": layout.num_parameters,
        "dtypes": layout.dtypes,
        "size_bytes": layout.size_bytes,
        "shards": [p.name for p in layout.files],
        "sharded": layout.sharded,
        "vocab_size": layout.vocab_size,
        "tokenizer": {
            "length": layout.tokenizer_len,
            "expected": layout.vocab_size + 300,
            "ok": tok_ok,
            "coordinate_ids": [layout.vocab_size, layout.vocab_size + 299],
        },
        "tower": {
            "name": layout.tower.name,
            "source": layout.tower.source,
            "tensors": layout.tower.num_tensors,
        },
        "memory_100_frame_video": memory,
        "gpus": gpus,
    }


def _visible_gpus() -> list[dict[str, Any]]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        out.append({"name": f"cuda:{i} {props.name}", "total_bytes": int(props.total_memory)})
    return out


def _count(n: int) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e9 else f"{n / 1e6:.2f} M"


def format_facts(facts: dict[str, Any]) -> str:
    from stchat.model.footprint import gib

    arch = facts["architecture"]
    tok = facts["tokenizer"]
    dtypes = ", ".join(f"{k} {_count(v)}" for k, v in sorted(facts["dtypes"].items()))
    lines = [
        f"checkpoint     {facts['path']}",
        f"architecture   {arch['model_type']}; {arch['llm']}",
        f"               {arch['vision']}; packer {arch['packer']}",
        f"parameters     {_count(facts['parameters'])} ({dtypes}); {gib(facts['size_bytes'])} on disk",
        f"weights        {len(facts['shards'])} file(s){' with an index' if facts['sharded'] else ''}: "
        + ", ".join(facts["shards"]),
        f"vocabulary     {facts['vocab_size']} rows (embed_tokens = lm_head = config)",
        f"tokenizer      {tok['length']} tokens, expected vocab + 300 = {tok['expected']}: "
        + ("ok" if tok["ok"] else "MISMATCH")
        + f"; coordinate ids {tok['coordinate_ids'][0]}..{tok['coordinate_ids'][1]}",
        f"vision tower   {facts['tower']['name']}: {facts['tower']['source']}",
        "memory         one 100-frame video question (weights + activations + KV cache + ~1 GiB overhead):",
    ]
    gpus = facts["gpus"]
    for dtype, m in facts["memory_100_frame_video"].items():
        if m["fits"] is None:
            fit = "no visible GPU"
        else:
            fit = ", ".join(f"{'fits' if ok else 'does not fit'} {name}" for name, ok in m["fits"].items())
        lines.append(
            f"  {dtype:<9} {gib(m['total_bytes']):>10}  (weights {gib(m['weights_bytes'])}, "
            f"activations {gib(m['activations_bytes'])}, KV {gib(m['kv_cache_bytes'])})  {fit}"
        )
    if gpus:
        lines.append("visible GPUs   " + ", ".join(f"{g['name']} {gib(g['total_bytes'])}" for g in gpus))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stchat.model.checkpoint import inspect_checkpoint
    from stchat.model.loading import _HUB_ID

    path = Path(args.model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json: not a model checkpoint directory")
        layout = inspect_checkpoint(path)
    elif _HUB_ID.match(str(args.model)) and not str(args.model).startswith((".", "/", "~")):
        layout = _hub_layout(str(args.model))
    else:
        raise ModelLoadError(f"model directory {args.model!r} not found")
    facts = describe(layout)
    print(json.dumps(facts, indent=1) if args.json else format_facts(facts))
    return 0 if facts["tokenizer"]["ok"] else 1
