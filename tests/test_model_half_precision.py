"""GPU users run bf16/fp16. The same code path must work in half precision (here on the CPU), and agree
with the official fp32 first token wherever the golden's margin leaves room for half-precision rounding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from stchat.chat import StableChat

pytestmark = pytest.mark.slow

SAFE_MARGIN = 0.3  # logits ~10: bf16 rounding moves them by ~0.05


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_video_and_image(golden_dir, dtype):
    chat = StableChat(str(golden_dir / "model"), device="cpu", dtype=dtype)
    assert next(chat.model.parameters()).dtype == getattr(torch, dtype)
    frames = np.load(golden_dir / "media" / "video_frames.npy")
    checked = 0
    for name, media in (("video_stvg", frames), ("image_rec", str(golden_dir / "media" / "image.png"))):
        case = json.loads((golden_dir / "cases" / f"{name}.json").read_text())
        result = chat.ground(media, case["query"], task=case["task"], max_new_tokens=3)
        assert len(result.output_ids) == 3
        if case["generation_top5"][0]["top1_minus_top2"] > SAFE_MARGIN:
            assert result.output_ids[0] == case["output_ids"][0], (name, dtype)
            checked += 1
    assert checked >= 1
