"""``stchat inspect-model``: the released layout read from headers, and the memory estimator on 7B shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stchat.cli import main
from stchat.model.checkpoint import INDEX_FILE, TensorInfo, inspect_checkpoint
from stchat.model.footprint import estimate, geometry

RELEASED_7B = dict(hidden=3584, inter=18944, layers=28, heads=28, kv=4, vocab=151660, v_hidden=1152,
                   v_inter=4304, v_layers=26, packer=1024, mm_hidden=1152)  # fmt: skip


def released_shapes(hidden, inter, layers, heads, kv, vocab, v_hidden, v_inter, v_layers, packer, mm_hidden):
    """Every tensor of the released checkpoint by its official name
    (docs/official_quirks.md#checkpoint-layout), at any size."""
    hd = hidden // heads
    s: dict[str, tuple[int, ...]] = {
        "model.embed_tokens.weight": (vocab, hidden), "lm_head.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
    }  # fmt: skip
    for i in range(layers):
        p = f"model.layers.{i}."
        s |= {p + "self_attn.q_proj.weight": (hidden, hidden), p + "self_attn.q_proj.bias": (hidden,),
              p + "self_attn.k_proj.weight": (kv * hd, hidden), p + "self_attn.k_proj.bias": (kv * hd,),
              p + "self_attn.v_proj.weight": (kv * hd, hidden), p + "self_attn.v_proj.bias": (kv * hd,),
              p + "self_attn.o_proj.weight": (hidden, hidden), p + "mlp.gate_proj.weight": (inter, hidden),
              p + "mlp.up_proj.weight": (inter, hidden), p + "mlp.down_proj.weight": (hidden, inter),
              p + "input_layernorm.weight": (hidden,),
              p + "post_attention_layernorm.weight": (hidden,)}  # fmt: skip
    t = "model.vision_tower.vision_tower.vision_model."
    s |= {t + "embeddings.patch_embedding.weight": (v_hidden, 3, 14, 14),
          t + "embeddings.patch_embedding.bias": (v_hidden,),
          t + "embeddings.position_embedding.weight": (729, v_hidden),
          t + "post_layernorm.weight": (v_hidden,), t + "post_layernorm.bias": (v_hidden,)}  # fmt: skip
    for i in range(v_layers):
        p = f"{t}encoder.layers.{i}."
        for n in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"):
            s |= {p + n + ".weight": (v_hidden, v_hidden), p + n + ".bias": (v_hidden,)}
        for n in ("layer_norm1", "layer_norm2"):
            s |= {p + n + ".weight": (v_hidden,), p + n + ".bias": (v_hidden,)}
        s |= {p + "mlp.fc1.weight": (v_inter, v_hidden), p + "mlp.fc1.bias": (v_inter,),
              p + "mlp.fc2.weight": (v_hidden, v_inter), p + "mlp.fc2.bias": (v_hidden,)}  # fmt: skip
    s |= {"model.mm_projector.0.weight": (hidden, mm_hidden), "model.mm_projector.0.bias": (hidden,),
          "model.mm_projector.2.weight": (hidden, hidden),
          "model.mm_projector.2.bias": (hidden,)}  # fmt: skip
    for m in ("token_packer", "token_packer_slow", "token_packer_fast"):
        p = f"model.vision_resampler.{m}.devide_attention."
        for n in ("to_q", "to_k", "to_v"):
            s |= {p + n + ".0.weight": (packer, hidden), p + n + ".0.bias": (packer,),
                  p + n + ".2.weight": (packer, packer), p + n + ".2.bias": (packer,)}  # fmt: skip
        for n in ("ln_q", "ln_k", "ln_v"):
            s |= {p + n + ".weight": (packer,), p + n + ".bias": (packer,)}
        s |= {p + "attn.in_proj_weight": (3 * packer, packer), p + "attn.in_proj_bias": (3 * packer,),
              p + "attn.out_proj.weight": (packer, packer), p + "attn.out_proj.bias": (packer,),
              p + "to_out.weight": (hidden, packer)}  # fmt: skip
    for k in ("temporal", "spatial_height", "spatial_width"):
        s |= {f"model.{k}_input_embeddings.weight": (100, hidden),
              f"model.{k}_output_embeddings.weight": (100, hidden)}
    return s


def test_estimator_on_the_released_7b_shapes() -> None:
    shapes = released_shapes(**RELEASED_7B)
    tensors = {k: TensorInfo("BF16", v, "x") for k, v in shapes.items()}
    assert sum(k.startswith("model.vision_tower.") for k in tensors) == 421  # as the release holds
    n = sum(t.numel for t in tensors.values())
    assert 8.0e9 < n < 8.1e9  # Qwen2-7B with 151660 rows + 26-layer so400m + projector/packers/tables
    config = {"num_attention_heads": 28, "num_key_value_heads": 4}
    vision = {"hidden_size": 1152, "intermediate_size": 4304, "num_attention_heads": 16}
    geo = geometry(config, tensors, vision)
    assert (geo.hidden, geo.intermediate, geo.layers, geo.vocab) == (3584, 18944, 28, 151660)
    bf16 = estimate(tensors, geo, "bfloat16")
    assert bf16.weights == 2 * n
    # KV cache: K and V, 28 layers, 4 KV heads of 128, prompt 2554 + 1024 new tokens, 2 bytes
    assert bf16.kv_cache == 2 * 28 * 4 * 128 * (2554 + 1024) * 2
    # eager SigLIP scores over 100 frames (100 x 16 x 729^2 x 2 B = 1.7 GB) dominate the activations
    assert bf16.vision > 100 * 16 * 729 * 729 * 2
    fp32, int8, q4 = (estimate(tensors, geo, d) for d in ("float32", "int8", "4bit"))
    assert q4.total < int8.total < bf16.total < fp32.total
    assert 17 * 2**30 < bf16.total < 22 * 2**30  # does not fit a 16 GB GPU, fits 24 GB
    assert fp32.weights == 4 * n
    assert 8 * 2**30 < int8.weights < 10 * 2**30  # the decoder linears at 1 B, embeddings/head/vision at 2 B


def _tiny_released_layout(root: Path) -> Path:
    """The released layout at tiny width: official key names, 4 shards with an index, vocabulary only under
    text_config, a hub-id tower with all 421 SigLIP tensors (26 kept layers), tokenizer of vocab + 300."""
    ckpt = root / "released"
    ckpt.mkdir()
    vocab = 40
    shapes = released_shapes(hidden=16, inter=24, layers=3, heads=4, kv=1, vocab=vocab, v_hidden=8,
                             v_inter=12, v_layers=26, packer=8, mm_hidden=8)  # fmt: skip
    names = sorted(shapes)
    weight_map = {}
    for i in range(4):
        file = f"model-{i + 1:05d}-of-00004.safetensors"
        part = {k: torch.zeros(shapes[k], dtype=torch.bfloat16) for k in names[i::4]}
        save_file(part, ckpt / file, metadata={"format": "pt"})
        weight_map |= dict.fromkeys(part, file)
    (ckpt / INDEX_FILE).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    config = {
        "model_type": "llava_qwen",
        "mm_vision_tower": "google/siglip-so400m-patch14-384",
        "vision_config": {"num_attention_heads": 2},
        "mm_hidden_size": 8,
        "mm_token_packer_embed_dim": 8,
        "text_config": {"vocab_size": vocab, "hidden_size": 16, "intermediate_size": 24,
                        "num_hidden_layers": 3, "num_attention_heads": 4,
                        "num_key_value_heads": 1},  # fmt: skip
    }
    (ckpt / "config.json").write_text(json.dumps(config))
    bpe = vocab - 17
    tok = {
        "model": {"vocab": {f"t{i}": i for i in range(bpe)}},
        "added_tokens": [{"id": i, "content": f"<a{i}>"} for i in range(bpe, vocab + 300)],
    }
    (ckpt / "tokenizer.json").write_text(json.dumps(tok))
    return ckpt


def test_inspect_model_reports_the_released_layout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = _tiny_released_layout(tmp_path)
    layout = inspect_checkpoint(ckpt)
    assert layout.tower.num_tensors == 421 and layout.tower.fields["num_hidden_layers"] == 26
    assert main(["inspect-model", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert "4 file(s) with an index" in out
    assert "vocabulary     40 rows" in out
    assert "tokenizer      340 tokens, expected vocab + 300 = 340: ok; coordinate ids 40..339" in out
    assert "checkpoint tensors (421; hub id google/siglip-so400m-patch14-384 not downloaded)" in out
    assert "SigLIP: hidden 8, MLP 12, 26 layers, 2 heads" in out
    assert "3 layers, 4 heads / 1 KV heads" in out
    assert all(d in out for d in ("bfloat16", "float32", "int8", "4bit"))
    assert main(["inspect-model", str(ckpt), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["parameters"] == layout.num_parameters and facts["dtypes"] == {"BF16": layout.num_parameters}


def test_inspect_model_flags_a_tokenizer_mismatch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _tiny_released_layout(tmp_path)
    tok = json.loads((ckpt / "tokenizer.json").read_text())
    tok["added_tokens"] = tok["added_tokens"][:-1]
    (ckpt / "tokenizer.json").write_text(json.dumps(tok))
    assert main(["inspect-model", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert "39 (tokenizer length 339 - 300)" in err and "40 (embed_tokens rows, lm_head rows" in err
