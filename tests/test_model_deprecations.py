"""No deprecated transformers/peft API on the model path: every FutureWarning or DeprecationWarning raised
while stchat loads, runs, caches, checkpoints and LoRA-wraps the model is an error here, whichever module
the library attributes it to (transformers attributes its kwarg deprecations to its own wrapper, so the
pyproject filter on stchat modules alone would not see them)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from transformers.cache_utils import DynamicCache

from stchat.model.loading import load_model


@pytest.fixture()
def strict_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        warnings.simplefilter("error", DeprecationWarning)
        yield


def test_load_forward_cache_and_generate_use_current_apis(golden_model_dir: Path, strict_warnings) -> None:
    model, tokenizer = load_model(golden_model_dir, device="cpu", dtype=torch.float32)
    ids = torch.tensor([tokenizer("Where is the red square?").input_ids])
    with torch.no_grad():
        cache = DynamicCache(config=model.config)
        first = model(input_ids=ids, cache=cache, use_cache=True, logits_to_keep=1)
        assert first.cache is cache and cache.get_seq_length() == ids.shape[1]
        step = model(input_ids=first.logits[:, -1:].argmax(-1), cache=cache, use_cache=True)
        assert step.logits.shape[-1] == model.extended_vocab_size
        assert len(model.generate_ids(ids, max_new_tokens=3)) == 3


def test_lora_wrapping_and_activation_checkpointing(golden_model_dir: Path, strict_warnings) -> None:
    peft = pytest.importorskip("peft")
    from stchat.model.adapter import LORA_TARGET_REGEX

    model, _ = load_model(golden_model_dir, device="cpu", dtype=torch.float32)
    model.model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    assert model.is_gradient_checkpointing  # peft reads the old name; ours answers without a warning
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=LORA_TARGET_REGEX))
    assert any("lora_" in n for n, _ in wrapped.named_parameters())
