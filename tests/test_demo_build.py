"""The demo model's untrained checkpoint (stchat.demo.build): the colour-paired init of ``--align-colours``
really pairs each colour word with the pixels of its colour, and the default recipe is left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stchat.demo.world import COLOURS


@pytest.fixture(scope="module")
def inits(tmp_path_factory):
    from stchat.demo.build import build_model

    root = tmp_path_factory.mktemp("demo_init")
    return build_model(root / "plain"), build_model(root / "aligned", sizes={"align_colours": True})


def _colour_scores(model_dir):
    """(colour word, pixel colour) -> layer-0 attention logit of query head 0 on a flat frame's tokens."""
    from stchat.model.loading import load_model
    from stchat.processing.image import preprocess

    model, tok = load_model(str(model_dir), dtype=torch.float32)
    attn = model.model.layers[0].self_attn
    head_dim = model.config.hidden_size // model.config.num_attention_heads
    names = list(COLOURS)
    with torch.no_grad():
        keys = []
        for name in names:
            px = preprocess(np.full((64, 64, 3), COLOURS[name], dtype=np.uint8))
            feats = model.model.mm_projector(model.model.vision_tower(px)).mean((0, 1))
            keys.append(attn.k_proj(feats)[:head_dim])
        scores = torch.zeros(len(names), len(names))
        for i, name in enumerate(names):
            (word,) = tok.encode(" " + name, add_special_tokens=False)
            query = attn.q_proj(model.model.embed_tokens.weight[word])[:head_dim]
            scores[i] = torch.stack([query @ k for k in keys])
    return scores


def test_aligned_init_pairs_every_colour_word_with_its_pixels(inits):
    scores = _colour_scores(inits[1])
    # every word's highest-scoring pixel colour is its own (the diagonal wins each row)
    assert torch.equal(scores.argmax(1), torch.arange(len(COLOURS))), scores
    assert (scores.diagonal() - scores.mean(1)).min() > 0.5


def test_plain_init_has_no_such_pairing(inits):
    scores = _colour_scores(inits[0])
    assert (scores.argmax(1) == torch.arange(len(COLOURS))).sum() < len(COLOURS)


def test_alignment_touches_only_its_tensors(inits):
    from safetensors.torch import load_file

    plain = load_file(str(inits[0] / "model.safetensors"))
    aligned = load_file(str(inits[1] / "model.safetensors"))
    changed = {k for k in plain if not torch.equal(plain[k], aligned[k])}
    # lm_head differs only because the projector's draws come first from the same generator
    assert changed == {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                       "model.layers.0.self_attn.k_proj.weight", "model.mm_projector.0.weight",
                       "model.mm_projector.2.weight", "lm_head.weight"}
