"""A checkpoint whose generation_config sets ``repetition_penalty`` decodes as HF ``generate`` would:
the penalty applies to the generated ids only (the official prompt goes in as ``inputs_embeds``)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from stchat.model.loading import load_model

pytestmark = pytest.mark.slow


def test_greedy_with_repetition_penalty_matches_hf_processor(golden_dir):
    model, _ = load_model(str(golden_dir / "model"), device="cpu", dtype=torch.float32)
    case = json.loads((golden_dir / "cases" / "image_rec.json").read_text())
    raw_ids = case["input_ids"]
    ids = torch.tensor([json.loads(raw_ids) if isinstance(raw_ids, str) else raw_ids])
    from safetensors.torch import load_file

    vision = load_file(str(golden_dir / "vision" / "image.safetensors"))
    pixels = vision["pixel_values"]
    plain = model.generate_ids(ids, pixels, modality="image", max_new_tokens=12)
    assert plain == case["output_ids"][:12]  # no penalty configured: the official greedy ids

    model.generation_config.repetition_penalty = 0.2  # < 1 rewards repeats: surely visible
    steps: list[torch.Tensor] = []
    penalised = model.generate_ids(ids, pixels, modality="image", max_new_tokens=12, step_logits=steps)
    proc = RepetitionPenaltyLogitsProcessor(0.2)
    for i, row in enumerate(steps):
        prefix = torch.tensor([penalised[:i]], dtype=torch.long)
        expected = int(proc(prefix, row.float().unsqueeze(0).clone()).argmax(-1))
        assert penalised[i] == expected, i
    assert penalised != plain  # the penalty changed the answer
