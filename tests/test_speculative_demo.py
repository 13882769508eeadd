"""Speculative decoding on the embedded demo model (#11): same answers as plain greedy on generated clips."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from stchat.chat import StableChat
from stchat.model.choice import demo_model_dir

pytestmark = pytest.mark.slow


@pytest.mark.skipif(not (demo_model_dir() / "config.json").is_file(), reason="the demo model is not built")
def test_demo_model_answers_identically_with_and_without_speculation() -> None:
    from stchat.demo.text import phrase
    from stchat.demo.world import background_image, render_frame, sample_scene

    chat = StableChat(str(demo_model_dir()), device="cpu", dtype=torch.float32)
    for seed in (920_001, 920_002, 920_003):
        scene = sample_scene(seed, height=240, max_seconds=6.0)
        bg = background_image(scene)
        frames = np.stack([render_frame(scene, f, bg) for f in range(scene.n_frames)])
        t = scene.target
        desc = phrase(t.colour, t.shape, None, random.Random(seed))
        on = chat.ground(frames, desc, task="stvg", max_new_tokens=300)
        off = chat.ground(frames, desc, task="stvg", max_new_tokens=300, speculative=False)
        assert on.output_ids == off.output_ids, seed
        assert off.decoder_passes == off.generated_tokens == len(off.output_ids)
        assert on.decoder_passes <= on.generated_tokens
