"""Official decoding settings that the goldens (greedy ids) do not exercise.

The official ``generate`` call passes ``top_p=None`` explicitly. In HF ``generate`` an explicit keyword
overrides ``generation_config``, so top-p filtering is off even when the checkpoint's
``generation_config.json`` sets ``top_p``; ``top_k`` is not passed, so the checkpoint's value (else HF's
50) applies.
"""

from __future__ import annotations

import json

import pytest
import torch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chat(golden_model_dir):
    from stchat.chat import StableChat

    return StableChat(str(golden_model_dir), device="cpu", dtype=torch.float32)


def _ids(chat, golden_dir, **kw):
    case = json.loads((golden_dir / "cases" / "image_reg.json").read_text())
    return chat.ground(golden_dir / "media" / "image.png", case["query"], task="reg", max_new_tokens=40,
                       **kw).output_ids


def test_official_decoding_ignores_a_checkpoint_top_p(chat, golden_dir):
    greedy = _ids(chat, golden_dir)
    # A seed where temperature-0.01 sampling leaves the argmax path on this tiny model.
    seed = next((s for s in range(60) if _ids(chat, golden_dir, decoding="official", seed=s) != greedy), None)
    assert seed is not None, "no seed leaves the greedy path; the check below would prove nothing"
    sampled = _ids(chat, golden_dir, decoding="official", seed=seed)
    gen = chat.model.generation_config
    saved = gen.top_p
    try:
        gen.top_p = 1e-6  # would collapse sampling to the argmax if it were applied
        assert _ids(chat, golden_dir, decoding="official", seed=seed) == sampled
    finally:
        gen.top_p = saved


def test_official_decoding_uses_the_checkpoint_top_k(chat, golden_dir):
    greedy = _ids(chat, golden_dir)
    seed = next((s for s in range(60) if _ids(chat, golden_dir, decoding="official", seed=s) != greedy), None)
    assert seed is not None
    gen = chat.model.generation_config
    saved = gen.top_k
    try:
        gen.top_k = 1  # only the argmax survives: the official call inherits this from the checkpoint
        assert _ids(chat, golden_dir, decoding="official", seed=seed) == greedy
    finally:
        gen.top_k = saved


def test_benchmark_runner_uses_the_same_official_sampling_as_the_chat():
    from stchat.chat import OFFICIAL_SAMPLING
    from stchat.eval.samples import Decoding

    d = Decoding.official(max_new_tokens=7, seed=3)
    assert (d.do_sample, d.temperature, d.top_p, d.top_k) == (True, 0.01, 1.0, None)
    assert {k: getattr(d, k) for k in OFFICIAL_SAMPLING} == OFFICIAL_SAMPLING
