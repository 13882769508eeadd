"""Next-token choice with HF ``generate`` semantics (greedy, or temperature -> top-k -> top-p sampling).

The official demo samples with ``do_sample=True, temperature=0.01`` and HF's default ``top_k=50``
(reference Q22). We apply the warpers in HF's order on the float32 logits so a seeded run follows the
same distribution the official one draws from.
"""

from __future__ import annotations

import torch

from stchat.errors import PromptError


def apply_repetition_penalty(
    scores: torch.Tensor, previous: list[int], penalty: float | None
) -> torch.Tensor:
    """HF's ``RepetitionPenaltyLogitsProcessor`` over the ids generated so far.

    The official ``generate`` receives the prompt as ``inputs_embeds`` only, so HF's running
    ``input_ids`` -- what the penalty looks at -- holds just the generated tokens, not the prompt.
    It is a no-op unless the checkpoint's ``generation_config.json`` sets ``repetition_penalty``.
    """
    if penalty is None or penalty == 1.0 or not previous:
        return scores
    if not penalty > 0:
        raise PromptError(f"repetition_penalty must be > 0; got {penalty}")
    idx = torch.tensor(sorted(set(previous)), device=scores.device)
    picked = scores[idx]
    scores = scores.clone()
    scores[idx] = torch.where(picked < 0, picked * penalty, picked / penalty)
    return scores


def choose_token(
    logits: torch.Tensor,
    do_sample: bool,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    previous: list[int] | None = None,
    repetition_penalty: float | None = None,
) -> int:
    """One token id from a 1-D logits row (``previous``: the ids generated so far)."""
    scores = apply_repetition_penalty(logits.float(), previous or [], repetition_penalty)
    if not do_sample:
        return int(torch.argmax(scores))  # first maximum, like HF greedy search
    scores = scores.clone()
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
