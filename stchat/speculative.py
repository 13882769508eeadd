"""Format-aware speculative decoding: draft the next grounding entries from the answer grammar, verify.

A spatio-temporal answer is a long, regular list ``<TEMP-k>: [<WIDTH-a><HEIGHT-b><WIDTH-c><HEIGHT-d>], ...``
with one entry per sampled frame of the span. Once two entries have been generated the rest is mostly
predictable: the token layout of an entry repeats (whatever separators the model uses and however the
tokenizer splits them -- the drafter copies token ids from the previous entry, it never assumes strings),
the timestamp advances by the stride seen so far and the box repeats or drifts linearly.

:class:`GrammarDrafter` proposes those tokens; :func:`speculative_generate` feeds ``[last token] + draft`` to
the decoder in one forward pass with the KV cache, keeps the longest drafted prefix that equals what greedy
decoding picks at each position (the same :func:`~stchat.model.sampling.choose_token`, repetition penalty
included, applied to exactly the ids that precede the position), takes the model's own token at the first
mismatch and crops the cache back to the accepted tokens. The result is the greedy answer, token for token,
in fewer decoder passes.

Only greedy decoding is sped up. The official near-greedy sampling (``decoding="official"``) runs the plain
loop: exact speculative sampling would keep the distribution but not the seeded sample, and a seeded official
run must stay reproducible against earlier runs.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from stchat.errors import PromptError

NUM_BINS = 100  # coordinate tokens per kind: <TEMP-000> .. <TEMP-099>, then HEIGHT, then WIDTH
# kind index = (id - V) // 100, the official id layout (docs/official_quirks.md#token-ids)
_T, _H, _W = 0, 1, 2
DEFAULT_MAX_DRAFT = 24
# Float noise between a k-token and a 1-token forward is ~1e-6 in float32 (~1e-2 in half precision). When
# the best two scores at a drafted position are closer than this, the position is decided by a one-token
# pass instead, the way plain decoding decides it.
TIE_MARGIN = {torch.float32: 1e-4, torch.float64: 1e-9, torch.float16: 5e-2, torch.bfloat16: 1e-1}


@dataclass(frozen=True)
class DecodeStats:
    """What one generation cost: tokens out, decoder forward passes (prefill included), draft use."""

    generated_tokens: int
    decoder_passes: int
    drafted_tokens: int = 0
    accepted_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens_per_pass(self) -> float:
        return self.generated_tokens / self.decoder_passes if self.decoder_passes else 0.0


class GrammarDrafter:
    """Drafts the continuation of a ``<TEMP-k>: [box]`` list from the token ids generated so far.

    ``vocab_size`` is V, the first coordinate id. An *entry start* is a ``<TEMP-k>`` token whose next
    coordinate token is a box coordinate (so the span ``{<TEMP-s><TEMP-e>}`` and an ELC ``Ends in <TEMP-e>``
    are not entries). With the last two entry starts ``L`` tokens apart, the token at position ``p`` is
    predicted from the one at ``p - L``: text tokens are copied, ``<TEMP>`` advances by the stride, box
    coordinates repeat or continue linearly (per box slot, whichever predicted the recent entries better).
    """

    def __init__(self, vocab_size: int, max_draft: int = DEFAULT_MAX_DRAFT, history: int = 3) -> None:
        if max_draft < 1:
            raise PromptError(f"max_draft must be at least 1; got {max_draft}")
        self.v = int(vocab_size)
        self.max_draft = int(max_draft)
        self.history = int(history)

    def _kind(self, tok: int) -> int:
        k = tok - self.v
        return k // NUM_BINS if 0 <= k < 3 * NUM_BINS else -1

    def _entry_starts(self, seq: Sequence[int], want: int) -> list[int]:
        """Up to ``want`` latest entry starts, newest first.

        Vectorised: it runs once per decoder pass over the whole answer, and a free-text answer (no
        coordinates at all) must not pay a Python loop per token per pass.
        """
        arr = np.asarray(seq, dtype=np.int64) - self.v
        pos = np.flatnonzero((arr >= 0) & (arr < 3 * NUM_BINS))
        if pos.size < 2:
            return []
        kinds = arr[pos] // NUM_BINS
        starts = pos[:-1][(kinds[:-1] == _T) & (kinds[1:] != _T)]
        return [int(i) for i in starts[::-1][:want]]

    def draft(self, seq: Sequence[int], limit: int | None = None) -> list[int]:
        """Tokens predicted to follow ``seq`` (possibly none), at most ``min(limit, max_draft)``."""
        budget = self.max_draft if limit is None else min(self.max_draft, limit)
        if budget < 1:
            return []
        starts = self._entry_starts(seq, self.history + 2)
        if len(starts) < 2:
            return []
        last, prev = starts[0], starts[1]
        period = last - prev
        n = len(seq)
        # The periodic region: consecutive entry starts exactly one period apart, newest back.
        anchor = prev
        for s in starts[2:]:
            if anchor - s != period:
                break
            anchor = s
        # The current (partial) entry must follow the template so far: same text, same coordinate kinds.
        for p in range(last + 1, n):
            t = seq[p - period]
            kt = self._kind(t)
            if (kt < 0 and seq[p] != t) or (kt >= 0 and self._kind(seq[p]) != kt):
                return []
        stride = seq[last] - seq[prev]  # both <TEMP> ids: the difference is the step in k
        linear = self._linear_slots(seq, last, anchor, period)
        out: list[int] = []

        def tok(p: int) -> int:
            return seq[p] if p < n else out[p - n]

        for p in range(n, n + budget):
            t = tok(p - period)
            kind = self._kind(t)
            if kind < 0:
                out.append(t)
                continue
            val = (t - self.v) % NUM_BINS
            if kind == _T:
                val += stride
                if not 0 <= val < NUM_BINS:
                    break  # past the last frame: the answer must end here, nothing sensible to propose
            elif (p - last) % period in linear and p - 2 * period >= anchor:
                before = (tok(p - 2 * period) - self.v) % NUM_BINS
                val = min(max(2 * val - before, 0), NUM_BINS - 1)
            out.append(self.v + kind * NUM_BINS + val)
        return out

    def _linear_slots(self, seq: Sequence[int], last: int, anchor: int, period: int) -> set[int]:
        """Offsets within an entry (from its ``<TEMP>``) whose box coordinate recently moved linearly
        (``c - b == b - a`` over three entries) more often than it repeated (``c == b``)."""
        scores: dict[int, int] = {}
        counted: dict[int, int] = {}
        lowest = max(anchor, len(seq) - (self.history + 3) * period) + 2 * period  # p - 2*period >= anchor
        for p in range(len(seq) - 1, lowest - 1, -1):
            if self._kind(seq[p]) not in (_H, _W):
                continue
            phase = (p - last) % period
            if counted.get(phase, 0) >= self.history:
                continue
            counted[phase] = counted.get(phase, 0) + 1
            a, b, c = ((seq[q] - self.v) % NUM_BINS for q in (p - 2 * period, p - period, p))
            lin, rep = c == 2 * b - a, c == b
            if lin != rep:
                scores[phase] = scores.get(phase, 0) + (1 if lin else -1)
        return {ph for ph, score in scores.items() if score > 0}


def accept_draft(
    draft: Sequence[int], choices: Sequence[int], margins: Sequence[float] | None = None, tie: float = 0.0
) -> tuple[list[int], bool]:
    """The tokens one verification pass emits, and whether the position after them is still undecided.

    ``choices[i]`` is the greedy token after ``[last] + draft[:i]`` (``len(choices) == len(draft) + 1``).
    The longest prefix of ``draft`` equal to ``choices`` is accepted and the model's own token at the first
    mismatch (or after the whole draft) follows it. A position whose best two scores are closer than
    ``tie`` (``margins[i] < tie``) came from a multi-token pass, whose float noise could flip it: emission
    stops before it, ``(draft[:i], True)``, and a one-token pass decides it as plain decoding would. A
    pass without a draft *is* the one-token pass, so its single position is always decided.
    """
    if len(choices) != len(draft) + 1:
        raise ValueError("need one greedy choice per drafted token plus one")
    out: list[int] = []
    for i, c in enumerate(choices):
        if draft and margins is not None and margins[i] < tie:
            return out, True
        out.append(c)
        if i == len(draft) or draft[i] != c:
            break
    return out, False


def _crop(cache: Any, keep: int) -> None:
    remove = cache.get_seq_length() - keep
    if remove > 0:
        cache.crop(-remove)  # transformers 5: a negative count removes that many trailing positions


@torch.no_grad()
def speculative_generate(
    model: Any,
    input_ids: torch.Tensor,
    pixel_values: torch.Tensor | None = None,
    modality: str = "video",
    variables: Mapping[str, Sequence[float]] | None = None,
    max_new_tokens: int = 1024,
    streamer: Any = None,
    visual_features: torch.Tensor | None = None,
    drafter: GrammarDrafter | None = None,
    tie_margin: float | None = None,
) -> tuple[list[int], DecodeStats]:
    """Greedy generation of ``model`` (a ``LlavaSTForCausalLM``), same ids as ``model.generate_ids``.

    The prefill is ``generate_ids``'s; every later pass feeds the last emitted token plus a draft, embedded
    with ``model.embed_ids`` (coordinate ids through the reparameterised input tables, as plain decoding).
    """
    from transformers.cache_utils import DynamicCache

    from stchat.model.sampling import apply_repetition_penalty

    t0 = time.perf_counter()
    step_in, tables = model.prefill_inputs(input_ids, pixel_values, modality, variables, max_new_tokens,
                                           visual_features)
    device = step_in.device
    penalty = getattr(getattr(model, "generation_config", None), "repetition_penalty", None)
    eos = model._eos_ids()
    drafter = drafter or GrammarDrafter(model.vocab_size)
    if tie_margin is None:
        tie_margin = TIE_MARGIN.get(model.model.embed_tokens.weight.dtype, 1e-4)
    cache = DynamicCache(config=model.config)
    if streamer is not None:
        streamer.put(torch.empty((1, 0), dtype=torch.long))
    new_ids: list[int] = []
    passes = drafted = accepted = 0
    plain_next = False  # a near tie is pending: decide it with a one-token pass
    while len(new_ids) < max_new_tokens:
        draft: list[int] = []
        if new_ids:  # after the prefill: new_ids[-1] is emitted but not yet in the cache
            if not plain_next:
                draft = drafter.draft(new_ids, max_new_tokens - len(new_ids) - 1)
            step_in = model.embed_ids(torch.tensor([new_ids[-1:] + draft], device=device), tables)
        kept = cache.get_seq_length()
        out = model.model(inputs_embeds=step_in, cache=cache, use_cache=True)
        passes += 1
        rows = model.extended_logits(out.last_hidden_state[0, -(len(draft) + 1) :])
        choices: list[int] = []
        margins: list[float] = []
        for i in range(len(draft) + 1):
            scores = apply_repetition_penalty(rows[i], new_ids + draft[:i], penalty)
            choices.append(int(torch.argmax(scores)))  # first maximum, like HF greedy search
            if draft:
                top = torch.topk(scores, 2).values
                margins.append(float(top[0] - top[1]))
            if i < len(draft) and choices[-1] != draft[i]:
                break  # the later rows follow a rejected token: never used
        pad = len(draft) + 1 - len(choices)
        emitted, plain_next = accept_draft(
            draft, choices + [-1] * pad, (margins + [float("inf")] * pad) if draft else None, tie_margin
        )
        drafted += len(draft)
        accepted += sum(1 for a, b in zip(emitted, draft, strict=False) if a == b)
        if new_ids:
            # Valid rows: the fed token and the accepted drafts, less the one re-fed when a tie is pending.
            _crop(cache, kept + len(emitted))
        stop = False
        for j, tok in enumerate(emitted):
            if tok in eos:
                emitted, stop = emitted[: j + 1], True
                break
        new_ids.extend(emitted)
        if streamer is not None and emitted:
            streamer.put(torch.tensor(emitted))
        if stop:
            break
    if streamer is not None:
        streamer.end()
    stats = DecodeStats(len(new_ids), passes, drafted, accepted, time.perf_counter() - t0)
    return new_ids, stats


def replay(ids: Sequence[int], drafter: GrammarDrafter, max_new_tokens: int | None = None) -> DecodeStats:
    """The passes :func:`speculative_generate` would need if ``ids`` were the model's greedy output.

    Each simulated pass drafts from the ids so far, accepts the drafted prefix that equals ``ids`` and
    takes one more token (the model's own) -- the exact accounting of a verification pass, without a model.
    """
    ids = [int(i) for i in ids]
    limit = len(ids) if max_new_tokens is None else max_new_tokens
    pos = passes = drafted = accepted = 0
    while pos < len(ids):
        draft = drafter.draft(ids[:pos], limit - pos - 1) if pos else []
        a = 0
        while a < len(draft) and pos + a < len(ids) and draft[a] == ids[pos + a]:
            a += 1
        passes += 1
        drafted += len(draft)
        accepted += a
        pos += a + 1
    return DecodeStats(len(ids), passes, drafted, accepted)
