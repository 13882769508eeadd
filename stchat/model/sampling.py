"""Next-token choice with HF ``generate`` semantics (greedy, or temperature -> top-k -> top-p sampling).

The official demo samples with ``do_sample=True, temperature=0.01`` and HF's default ``top_k=50``
(reference Q22). We apply the warpers in HF's order on the float32 logits so a seeded run follows the
same distribution the official one draws from.
"""

from __future__ import annotations

import torch

from stchat.errors import PromptError


def choose_token(
    logits: torch.Tensor,
    do_sample: bool,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """One token id from a 1-D logits row."""
    if not do_sample:
        return int(torch.argmax(logits))  # first maximum, like HF greedy search
    scores = logits.float().clone()
    if temperature is not None and temperature != 1.0:
        if not temperature > 0:
            raise PromptError(f"temperature must be > 0 when sampling; got {temperature}")
        scores = scores / temperature
    if top_k is not None and top_k > 0:
        k = min(int(top_k), scores.shape[-1])
        kth = torch.topk(scores, k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        if not 0 < top_p <= 1:
            raise PromptError(f"top_p must be in (0, 1]; got {top_p}")
        sorted_scores, order = torch.sort(scores, descending=False)
        cum = sorted_scores.softmax(-1).cumsum(-1)
        remove = cum <= (1 - top_p)
        remove[-1] = False  # keep at least one token
        scores = scores.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    probs = scores.softmax(-1)
    return int(torch.multinomial(probs, 1, generator=generator))
