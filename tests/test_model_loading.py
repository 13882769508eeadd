"""Loading: local dirs, refused pickle weights, incomplete checkpoints, config resolution, error lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from stchat.errors import ModelLoadError, PromptError, VideoError
from stchat.model import LlavaSTConfig, LlavaSTForCausalLM
from stchat.model.loading import load_model, load_tokenizer, pick_attn_implementation, pick_dtype
from stchat.model.sampling import choose_token


def _copy_checkpoint(src: Path, dst: Path, with_weights: bool = False) -> Path:
    dst.mkdir()
    for item in src.iterdir():
        if item.name == "model.safetensors" and not with_weights:
            continue
        (shutil.copytree if item.is_dir() else shutil.copy)(item, dst / item.name)
    return dst


@pytest.fixture(scope="module")
def golden_model(golden_model_dir: Path):
    return load_model(golden_model_dir, device="cpu", dtype=torch.float32)


def test_bin_only_checkpoint_is_refused_without_opt_in(golden_model_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(golden_model_dir, tmp_path / "ckpt")
    torch.save(load_file(golden_model_dir / "model.safetensors"), ckpt / "pytorch_model.bin")
    with pytest.raises(ModelLoadError, match="allow_pickle"):
        load_model(ckpt)
    model, _ = load_model(ckpt, allow_pickle=True, device="cpu")
    ref = load_file(golden_model_dir / "model.safetensors")
    assert torch.equal(model.lm_head.weight, ref["lm_head.weight"])


def test_incomplete_checkpoint_names_the_missing_weights(golden_model_dir: Path, tmp_path: Path) -> None:
    ckpt = _copy_checkpoint(golden_model_dir, tmp_path / "ckpt")
    weights = load_file(golden_model_dir / "model.safetensors")
    del weights["model.temporal_input_embeddings.weight"]
    save_file(weights, ckpt / "model.safetensors")
    with pytest.raises(ModelLoadError, match="temporal_input_embeddings"):
        load_model(ckpt, device="cpu")


@pytest.mark.parametrize("source", ["/no/such/dir", "./missing-model", "not a model id"])
def test_missing_local_model_is_one_clear_error(source: str) -> None:
    with pytest.raises(ModelLoadError, match="not found"):
        load_model(source)


def test_unreachable_hub_id_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelLoadError, match="nobody-stchat/none.*STCHAT_MODEL"):
        load_model("nobody-stchat/none")


def test_tokenizer_layout_is_checked(golden_model_dir: Path) -> None:
    assert len(load_tokenizer(golden_model_dir, 900)) == 1200
    with pytest.raises(ModelLoadError, match="<TEMP-000>"):
        load_tokenizer(golden_model_dir, 901)


def test_defaults_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert pick_dtype(None, cpu) == torch.float32
    assert pick_dtype("bfloat16", cpu) == torch.bfloat16
    assert pick_attn_implementation(None, cpu) == "sdpa"
    with pytest.raises(ModelLoadError):
        pick_dtype("float77", cpu)


def test_quantized_loading_without_cuda_is_a_clean_error(golden_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError):
        load_model(golden_model_dir, device="cpu", load_in_8bit=True)


def test_config_without_packer_keys_uses_official_defaults_and_known_tower(golden_model_dir: Path) -> None:
    raw = json.loads((golden_model_dir / "config.json").read_text())
    for key in ("mm_token_packer_embed_dim", "mm_token_packer_num_heads"):
        raw.pop(key)
    raw.update(
        mm_vision_tower="google/siglip-so400m-patch14-384", rope_scaling={"type": "linear", "factor": 4.0}
    )
    cfg = LlavaSTConfig.from_dict(raw)
    assert (cfg.packer_embed_dim, cfg.packer_num_heads) == (1024, 8)
    assert cfg.rope_parameters == {"rope_type": "default", "rope_theta": 1e6}
    vc = cfg.vision_config()
    assert (vc.hidden_size, vc.intermediate_size, vc.num_hidden_layers, vc.num_attention_heads) == (
        1152,
        4304,
        26,
        16,
    )
    assert (vc.image_size, vc.patch_size, vc.layer_norm_eps, vc.hidden_act) == (
        384,
        14,
        1e-6,
        "gelu_pytorch_tanh",
    )


def test_tower_dir_resolves_relative_to_the_checkpoint(golden_model_dir: Path) -> None:
    cfg = LlavaSTConfig.from_pretrained(golden_model_dir)
    assert cfg.vision_config(golden_model_dir).hidden_size == 32
    cfg.mm_vision_tower = str((golden_model_dir / "siglip-tiny-so400m-patch14-384").resolve())
    assert cfg.vision_config("/elsewhere").num_hidden_layers == 2
    cfg.mm_vision_tower = "openai/clip-vit-large-patch14"
    with pytest.raises(ModelLoadError, match="SigLIP"):
        cfg.vision_config()


def test_auto_class_builds_our_model(golden_model_dir: Path) -> None:
    from transformers import AutoModelForCausalLM

    assert isinstance(AutoModelForCausalLM.from_pretrained(golden_model_dir), LlavaSTForCausalLM)


def test_bad_inputs_raise_stchat_errors(golden_model) -> None:
    model, tokenizer = golden_model
    with pytest.raises(VideoError, match="100"):
        model.encode_video(torch.zeros(7, 3, 384, 384))
    with pytest.raises(VideoError, match="shape"):
        model.encode_image(torch.zeros(1, 3, 224, 224))
    with pytest.raises(VideoError, match="NaN"):
        model.encode_image(torch.full((1, 3, 384, 384), float("nan")))
    t = model.token_ids
    ids = torch.tensor([[5, t.temporal_input, 6, t.temporal_input]])
    with pytest.raises(PromptError, match="temporal_input_locations"):
        model.prepare_inputs_embeds(ids, None, {"temporal_input_locations": [0.5]})
    with pytest.raises(PromptError, match="finite"):
        model.prepare_inputs_embeds(ids, None, {"temporal_input_locations": [0.5, float("nan")]})
    block = torch.tensor([[5, t.im_start] + [t.im_patch] * 10 + [6]])
    with pytest.raises(PromptError, match="malformed image block"):
        model.prepare_inputs_embeds(block, torch.zeros(729, model.config.hidden_size))
    with pytest.raises(PromptError, match="out of range"):
        model.prepare_inputs_embeds(torch.tensor([[5, model.extended_vocab_size]]))


def test_coordinate_ids_feed_back_as_input_table_rows(golden_model) -> None:
    model, tokenizer = golden_model
    v = model.vocab_size
    ids = torch.tensor([[3, v + 7, v + 100 + 42, v + 299]])
    with torch.no_grad():
        rows = model.embed_ids(ids)[0]
        tables = model.coordinate_tables()
    assert torch.equal(rows[0], model.model.embed_tokens.weight[3])
    assert torch.equal(rows[1], tables["temporal_input"][7])
    assert torch.equal(rows[2], tables["spatial_height_input"][42])
    assert torch.equal(rows[3], tables["spatial_width_input"][99])


def test_sampling_is_seeded_and_top_k_1_is_greedy(golden_model) -> None:
    model, tokenizer = golden_model
    ids = torch.tensor([tokenizer("Where is the red square?").input_ids])
    greedy = model.generate_ids(ids, max_new_tokens=6)
    assert model.generate_ids(ids, max_new_tokens=6, do_sample=True, top_k=1, seed=1) == greedy
    a = model.generate_ids(ids, max_new_tokens=6, do_sample=True, temperature=5.0, seed=3)
    b = model.generate_ids(ids, max_new_tokens=6, do_sample=True, temperature=5.0, seed=3)
    assert a == b and len(a) == 6


def test_choose_token_warpers() -> None:
    logits = torch.tensor([0.0, 3.0, 2.9, -1.0])
    assert choose_token(logits, False) == 1
    gen = torch.Generator().manual_seed(0)
    picks = {choose_token(logits, True, top_k=2, generator=gen) for _ in range(200)}
    assert picks == {1, 2}
    picks = {choose_token(logits, True, top_p=0.3, generator=gen) for _ in range(50)}
    assert picks == {1}
    with pytest.raises(PromptError):
        choose_token(logits, True, temperature=0.0)


def test_generation_stops_at_eos_and_streams(golden_model) -> None:
    from transformers import TextStreamer

    model, tokenizer = golden_model
    ids = torch.tensor([tokenizer("Where is the red square?").input_ids])
    first = model.generate_ids(ids, max_new_tokens=3)
    eos_before = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = first[1]
    try:
        assert model.generate_ids(ids, max_new_tokens=3) == first[:2]
    finally:
        model.generation_config.eos_token_id = eos_before

    seen: list[str] = []

    class Collect(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            seen.append(text)

    out = model.generate_ids(ids, max_new_tokens=3, streamer=Collect(tokenizer, skip_prompt=True))
    assert "".join(seen) == tokenizer.decode(out)
