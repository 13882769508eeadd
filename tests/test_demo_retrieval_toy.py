"""The learnability measurement's data (scripts/demo_retrieval_toy.py): its answer is the first frame in
which the asked colour shows, and the asked colour word is in the question. If this were wrong, the steps
the script reports would measure nothing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo_retrieval_toy.py"


def _toy():
    spec = importlib.util.spec_from_file_location("demo_retrieval_toy", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_answer_is_the_first_frame_showing_the_asked_colour():
    toy = _toy()
    gen = torch.Generator().manual_seed(3)
    codes = toy.make_codes(gen)
    words = torch.randn(toy.WORDS, toy.WIDTH, generator=gen) * 0.5
    for tokens in (9, 81):
        for _ in range(20):
            x, start = toy.sample(codes, codes["colour"], words, tokens, gen)
            assert x.shape == (toy.FRAMES * tokens + 9, toy.WIDTH)
            question = x[toy.FRAMES * tokens:]
            asked = [c for c in range(toy.COLOURS)
                     if any(torch.equal(row, codes["colour"][c]) for row in question)]
            assert len(asked) == 1
            video = x[: toy.FRAMES * tokens].reshape(toy.FRAMES, tokens, toy.WIDTH)
            # the asked colour's share of each token: 1 where it was added; elsewhere noise (rms 0.15)
            # and other colours (~0.1)
            share = (video - codes["time"][:, None]) @ codes["colour"][asked[0]] / 4
            shown = (share > 0.6).any(dim=1).nonzero().flatten().tolist()
            assert shown and shown[0] == start
            assert shown == list(range(start, shown[-1] + 1)) and len(shown) >= 4
