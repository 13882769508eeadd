"""``StableChat(adapter=...)`` merges a PEFT LoRA adapter into the loaded weights."""

from __future__ import annotations

import pytest
import torch

from stchat.errors import ModelLoadError

pytestmark = pytest.mark.slow


def test_lora_adapter_is_merged(golden_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model

    from stchat.chat import StableChat
    from stchat.model.loading import load_model

    base, _ = load_model(str(golden_model_dir), device="cpu", dtype=torch.float32)
    name = "model.layers.0.self_attn.q_proj.weight"
    before = dict(base.named_parameters())[name].detach().clone()
    peft_model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"]))
    params = dict(peft_model.named_parameters())
    # The LLM's first q_proj (SigLIP's are under ``encoder.layers``).
    prefix = "base_model.model.model.layers.0.self_attn.q_proj"
    a, b = params[f"{prefix}.lora_A.default.weight"], params[f"{prefix}.lora_B.default.weight"]
    with torch.no_grad():
        b.copy_(torch.randn(b.shape, generator=torch.Generator().manual_seed(0)) * 0.1)  # B starts at 0
    delta = (b.detach() @ a.detach()) * (4 / 2)  # lora_alpha / r
    peft_model.save_pretrained(str(tmp_path / "adapter"))

    chat = StableChat(str(golden_model_dir), device="cpu", dtype=torch.float32, adapter=tmp_path / "adapter")
    after = dict(chat.model.named_parameters())[name].detach()
    assert torch.allclose(after, before + delta, atol=1e-6)
    assert not torch.allclose(after, before)


def test_a_directory_without_adapter_config_is_refused(golden_model_dir, tmp_path):
    from stchat.chat import StableChat

    with pytest.raises(ModelLoadError, match="not an adapter directory"):
        StableChat(str(golden_model_dir), device="cpu", dtype=torch.float32, adapter=tmp_path)
