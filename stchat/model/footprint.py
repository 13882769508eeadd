"""Estimated GPU memory for one 100-frame video question, from a checkpoint's tensor shapes alone.

Used by ``stchat inspect-model`` before a 16 GB download or load. The estimate is a sum of the large
buffers that coexist at the peak, each named so a user can see what dominates:

* weights: every parameter at the load dtype (int8/4-bit: the LLM decoder's linear weights quantized,
  everything ``load_model`` keeps unquantized at bf16);
* the SigLIP pass over 100 frames in one batch (the official tower batch): hidden states, the MLP
  intermediate and the (frames x heads x 729 x 729) score matrix of its eager attention;
* the LLM prefill over the prompt: MLP intermediates and (eager LLM attention) one layer's scores;
* the KV cache for prompt + new tokens, and one fp32 logits row.

Framework overhead (CUDA context, allocator slack) is a fixed allowance. It is an estimate: the
allocator's fragmentation and kernels' workspaces vary by GPU and library version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from stchat.model.checkpoint import TensorInfo

VIDEO_PROMPT_TOKENS = 2554  # a 100-frame video question on the released model (2520 media tokens + text)
NUM_FRAMES = 100
PATCHES = 729
CUDA_OVERHEAD = 1.0 * 2**30  # CUDA context + allocator slack, roughly constant
BYTES = {"float32": 4.0, "bfloat16": 2.0, "float16": 2.0, "int8": 1.0, "4bit": 0.5}
_QUANTIZABLE = (".self_attn.q_proj.weight", ".self_attn.k_proj.weight", ".self_attn.v_proj.weight",
                ".self_attn.o_proj.weight", ".mlp.gate_proj.weight", ".mlp.up_proj.weight",
                ".mlp.down_proj.weight")  # fmt: skip


@dataclass(frozen=True)
class Geometry:
    """The sizes the estimate needs, read from config fields and tensor shapes."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    vision_hidden: int
    vision_intermediate: int
    vision_heads: int


@dataclass(frozen=True)
class Footprint:
    dtype: str
    weights: float
    vision: float
    prefill: float
    kv_cache: float
    overhead: float

    @property
    def total(self) -> float:
        return self.weights + self.vision + self.prefill + self.kv_cache + self.overhead


def estimate(
    tensors: Mapping[str, TensorInfo],
    geo: Geometry,
    dtype: str,
    prompt_tokens: int = VIDEO_PROMPT_TOKENS,
    new_tokens: int = 1024,
    eager_attention: bool = True,
) -> Footprint:
    """Peak bytes for one video question at ``dtype`` (float32, bfloat16, float16, int8, 4bit)."""
    if dtype not in BYTES:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {', '.join(BYTES)}")
    q = BYTES[dtype]
    act = 4.0 if dtype == "float32" else 2.0  # activations of quantized models run in bf16
    weights = 0.0
    for name, t in tensors.items():
        quantized = q < 2 and name.startswith("model.layers.") and name.endswith(_QUANTIZABLE)
        weights += t.numel * (q if quantized else act)
    frames = NUM_FRAMES * PATCHES
    vision = frames * act * (3 * geo.vision_hidden + geo.vision_intermediate)
    # The tower is always eager (as the official one), so its score matrix is always materialised.
    vision += NUM_FRAMES * geo.vision_heads * PATCHES * PATCHES * act
    vision += frames * geo.hidden * act * 2  # projector output + LAPE features
    seq = prompt_tokens + new_tokens
    prefill = prompt_tokens * act * (3 * geo.intermediate + 4 * geo.hidden)
    if eager_attention:
        prefill += geo.heads * prompt_tokens * prompt_tokens * act
    prefill += (geo.vocab + 300) * 4.0
    head_dim = geo.hidden // geo.heads
    kv = 2 * geo.layers * geo.kv_heads * head_dim * seq * act
    return Footprint(dtype, weights, vision, prefill, kv, CUDA_OVERHEAD)


def geometry(
    config: Mapping[str, Any], tensors: Mapping[str, TensorInfo], vision: Mapping[str, Any]
) -> Geometry:
    """Sizes from tensor shapes where the checkpoint has them, else from the config fields."""

    def dim(key: str, axis: int, fallback: Any) -> int:
        t = tensors.get(key)
        return int(t.shape[axis]) if t is not None else int(fallback)

    layers = len({k.split(".")[2] for k in tensors if k.startswith("model.layers.")})
    return Geometry(
        hidden=dim("model.embed_tokens.weight", 1, config.get("hidden_size")),
        intermediate=dim("model.layers.0.mlp.gate_proj.weight", 0, config.get("intermediate_size")),
        layers=layers or int(config["num_hidden_layers"]),
        heads=int(config["num_attention_heads"]),
        kv_heads=int(config.get("num_key_value_heads") or config["num_attention_heads"]),
        vocab=dim("model.embed_tokens.weight", 0, config.get("vocab_size")),
        vision_hidden=int(vision["hidden_size"]),
        vision_intermediate=int(vision["intermediate_size"]),
        vision_heads=int(vision["num_attention_heads"]),
    )


def gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"
