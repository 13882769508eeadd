"""The official LLaVA-ST training objective: soft two-hot coordinate cross-entropy
(docs/official_quirks.md#training-objective).

Per sample ``b`` the official ``LlavaQwenForCausalLM.forward`` does:

1. logits ``x = h_b @ [lm_head; reparam(T_out); reparam(H_out); reparam(W_out)]^T`` (width V+300);
2. if the sample's labels hold any ``*-OUTPUT`` placeholder: a dense target ``Y`` (L, V+300) = one-hot of
   every label, where the j-th OUTPUT placeholder of a type is replaced by a *two-hot* split of its
   location over the two neighbouring grid tokens (``position_transfer``); per-row loss =
   ``-sum_c Y[i+1, c] * log_softmax(x_i)_c``, averaged over supervised rows;
3. otherwise ordinary hard-label cross-entropy (mean over supervised rows);
4. batch loss = **sum** of the per-sample means (Q12): not divided by the batch size.

This module computes exactly that, but memory-light: a two-hot target has at most two non-zero columns,
so instead of a dense (L, V+300) matrix (1.6 GB per video sample for the real model) we keep, per
supervised row, two column indices and two weights, and we only form logits at supervised rows. Rows
whose label is -100 never contribute to the loss (nor its gradient), so the result is identical.
``dense_targets`` builds the official dense matrix too, only to prove the equivalence in tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from stchat.errors import StchatError
from stchat.model.modeling_llava_st import reparam

IGNORE_INDEX = -100
NUM_BINS = 100  # rows of each coordinate table; the grid step is 1/99 (docs/official_quirks.md#token-ids)

# ``variables`` keys of the three OUTPUT placeholder types, in table order T, H, W
# (docs/official_quirks.md#coordinates-in-prompts).
OUTPUT_KEYS = (
    "temporal_output_locations",
    "spatial_height_output_locations",
    "spatial_width_output_locations",
)


class TrainDataError(StchatError):
    """A training sample cannot be turned into inputs/targets (placeholders vs. locations, format)."""


@dataclass(frozen=True)
class CoordVocab:
    """Ids the objective needs: the base vocabulary size V and the three OUTPUT placeholder ids."""

    # V: rows of embed_tokens / lm_head; <TEMP-000> == V (invariant: docs/official_quirks.md#token-ids)
    vocab_size: int
    temp_output_id: int
    height_output_id: int
    width_output_id: int

    @property
    def output_ids(self) -> tuple[int, int, int]:
        return (self.temp_output_id, self.height_output_id, self.width_output_id)

    @property
    def width(self) -> int:
        """Logits width V + 300."""
        return self.vocab_size + 3 * NUM_BINS

    @classmethod
    def from_tokenizer(cls, tokenizer) -> CoordVocab:
        """Read the ids from a LLaVA-ST tokenizer (``<TEMP-000>`` gives V)."""
        ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<TEMP-000>", "<TEMP-OUTPUT>", "<HEIGHT-OUTPUT>",
                                                             "<WIDTH-OUTPUT>")]
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise TrainDataError("the tokenizer lacks the LLaVA-ST coordinate tokens (<TEMP-000>, ...)")
        return cls(vocab_size=ids[0], temp_output_id=ids[1], height_output_id=ids[2], width_output_id=ids[3])


# ---------------------------------------------------------------------------------------------------
# NTP reparametrisation (docs/official_quirks.md#neighbouring-token-propagation, Q4)


# ``ntp_matrix``/``reparam`` are the model's own (same arithmetic for LAPE, inputs and the output head).


def output_head_weight(lm_head: torch.Tensor, coord_out_tables: Sequence[torch.Tensor]) -> torch.Tensor:
    """The training output matrix ``[lm_head; reparam(T_out); reparam(H_out); reparam(W_out)]`` (V+300, C).

    Inference uses the raw output tables (docs/official_quirks.md#logits); training goes through
    ``reparam`` so that the gradient of each table carries the NTP term (Q4). Values are identical up to
    ~1 ulp.
    """
    return torch.cat([lm_head, *(reparam(t.to(lm_head.dtype)) for t in coord_out_tables)], dim=0)


# ---------------------------------------------------------------------------------------------------
# Targets


def position_transfer(p: float) -> tuple[int, int, float, float]:
    """Official two-hot split of a location: ``(floor, ceil, weight_floor, weight_ceil)``.

    ``p`` is clipped to [0, 1], ``e = 99 p`` in float64, ``λ = e - floor(e)``; the floor bin gets ``1-λ``
    and the ceil bin ``λ`` (a one-hot when ``e`` is an integer). Weights are float64 here; the official
    target stores their fp32 roundings, which ``SparseTargets`` reproduces.
    """
    p = min(max(float(p), 0.0), 1.0)
    e = p * (NUM_BINS - 1)
    f, c = math.floor(e), math.ceil(e)
    lam = e - f
    return f, c, 1.0 - lam, lam


@dataclass
class SparseTargets:
    """The non-zeros of one sample's (shifted) target matrix: at most two columns per supervised row.

    ``rows[i]`` is a row of the shifted sequence (row r predicts the label at position r+1);
    ``cols[i] = (c0, c1)`` and ``vals[i] = (w0, w1)`` (fp32); a one-hot row has ``w1 = 0`` and ``c1 = c0``.
    ``soft`` tells which official branch the sample takes (soft two-hot vs. hard-label CE).
    """

    rows: torch.Tensor  # (n,) int64
    cols: torch.Tensor  # (n, 2) int64
    vals: torch.Tensor  # (n, 2) float32
    soft: bool

    def nonzeros(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(rows, cols, vals)`` of the non-zero entries, row-major and column-sorted (official order)."""
        r = self.rows[:, None].expand_as(self.cols).reshape(-1)
        c, v = self.cols.reshape(-1), self.vals.reshape(-1)
        keep = v != 0
        r, c, v = r[keep], c[keep], v[keep]
        order = torch.argsort(r * (1 << 32) + c)
        return r[order], c[order], v[order]


def _output_type(vocab: CoordVocab) -> dict[int, int]:
    return {pid: k for k, pid in enumerate(vocab.output_ids)}


def has_output_placeholders(labels: torch.Tensor, vocab: CoordVocab) -> bool:
    """Whether a sample takes the official soft branch (any ``*-OUTPUT`` id among its labels)."""
    return bool(torch.isin(labels, torch.tensor(vocab.output_ids, device=labels.device)).any())


def build_targets(labels: torch.Tensor, variables: Mapping[str, Sequence[float]] | None,
                  vocab: CoordVocab) -> SparseTargets:
    """Sparse official targets of one sample from its labels (L,) and its ``variables`` dict.

    The j-th ``<T-OUTPUT>`` placeholder *in label order* takes ``variables[T_output_locations][j]``
    (docs/official_quirks.md#training-objective: targets count occurrences in the labels). More
    placeholders than locations is an error, as in the official code; extra locations are ignored.
    """
    labels = labels.detach().to("cpu", torch.int64)
    shifted = labels[1:]
    rows = torch.nonzero(shifted != IGNORE_INDEX).flatten()
    ids = shifted[rows]
    cols = torch.stack([ids, ids], dim=1).clone()
    vals = torch.zeros(len(rows), 2, dtype=torch.float64)
    vals[:, 0] = 1.0
    soft = has_output_placeholders(labels, vocab)
    if soft:
        types = _output_type(vocab)
        counters = [0, 0, 0]
        variables = variables or {}
        # Occurrences are counted over the whole label sequence (position 0 included, as officially),
        # but position 0 has no shifted row; it cannot hold a placeholder in practice.
        for pos in torch.nonzero(torch.isin(labels, torch.tensor(vocab.output_ids))).flatten().tolist():
            t = types[int(labels[pos])]
            key = OUTPUT_KEYS[t]
            locs = variables.get(key) or []
            j = counters[t]
            counters[t] += 1
            if j >= len(locs):
                raise TrainDataError(
                    f"more <{('TEMP', 'HEIGHT', 'WIDTH')[t]}-OUTPUT> placeholders than values in "
                    f"variables['{key}'] ({len(locs)})"
                )
            if pos == 0:
                continue
            f, c, wf, wc = position_transfer(locs[j])
            i = int(torch.searchsorted(rows, torch.tensor(pos - 1)))
            off = vocab.vocab_size + NUM_BINS * t
            cols[i, 0], vals[i, 0] = off + f, wf
            cols[i, 1], vals[i, 1] = (off + c, wc) if c != f else (off + f, 0.0)
    return SparseTargets(rows=rows, cols=cols, vals=vals.to(torch.float32), soft=soft)


def dense_targets(labels: torch.Tensor, variables: Mapping[str, Sequence[float]] | None,
                  vocab: CoordVocab) -> torch.Tensor:
    """The official dense target matrix (L, V+300) fp32, unshifted -- for equivalence tests only.

    Built the official way: one-hot of every label != -100, then for each OUTPUT placeholder the
    placeholder column is zeroed and the floor/ceil columns get the fp32 weights.
    """
    labels = labels.detach().to("cpu", torch.int64)
    y = torch.zeros(len(labels), vocab.width, dtype=torch.float32)
    sup = torch.nonzero(labels != IGNORE_INDEX).flatten()
    y[sup, labels[sup]] = 1.0
    types = _output_type(vocab)
    counters = [0, 0, 0]
    for pos in sup.tolist():
        t = types.get(int(labels[pos]))
        if t is None:
            continue
        p = (variables or {})[OUTPUT_KEYS[t]][counters[t]]
        counters[t] += 1
        f, c, wf, wc = position_transfer(p)
        off = vocab.vocab_size + NUM_BINS * t
        y[pos, labels[pos]] = 0.0
        y[pos, off + f] = wf
        if c != f:
            y[pos, off + c] = wc
    return y


# ---------------------------------------------------------------------------------------------------
# Loss


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar: batch loss (sum or mean of per-sample means)
    per_sample: torch.Tensor  # (B,) per-sample means
    token_losses: list[torch.Tensor]  # per sample: (n_b,) loss of each supervised row
    targets: list[SparseTargets]


def sample_token_losses(logits_rows: torch.Tensor, targets: SparseTargets) -> torch.Tensor:
    """Per-row loss ``-sum_c Y_c log_softmax(x)_c`` from logits at the supervised rows only (n, W).

    Same expression for both branches: a hard label is a row with weights (1, 0), for which this equals
    ``F.cross_entropy``. Logits are upcast to fp32 first: the official soft branch keeps bf16 logits
    (docs/official_quirks.md#training-objective); fp32 is more accurate and identical in the fp32 goldens.
    """
    x = logits_rows if logits_rows.dtype in (torch.float32, torch.float64) else logits_rows.float()
    lse = torch.logsumexp(x, dim=-1, keepdim=True)
    cols = targets.cols.to(x.device)
    logp = torch.gather(x, 1, cols) - lse
    return -(targets.vals.to(x.device, x.dtype) * logp).sum(dim=-1)


def coordinate_loss(hidden: torch.Tensor, labels: torch.Tensor,
                    variables: Sequence[Mapping[str, Sequence[float]] | None], head_weight: torch.Tensor,
                    vocab: CoordVocab, reduction: str = "sum", temporal_weight: float = 1.0) -> LossOutput:
    """Official training loss from the last hidden states (B, L, C) and the output matrix (V+300, C).

    ``reduction="sum"`` is the official batch loss (sum of per-sample means, Q12: the effective learning
    rate grows with the per-device batch size); ``"mean"`` divides by B instead, which makes the loss
    independent of how a global batch is split over devices and accumulation steps.

    ``temporal_weight`` != 1 (not official; stchat's own knob) makes each sample's loss a weighted mean in
    which rows whose target is a ``<TEMP-k>`` bin count that many times: a box list has ~10 box
    coordinates per time, and a small model can fit the boxes while the times stay at the prior.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', not {reduction!r}")
    if not temporal_weight > 0:
        raise ValueError(f"temporal_weight must be positive, not {temporal_weight!r}")
    per_sample, token_losses, all_targets = [], [], []
    for b in range(hidden.shape[0]):
        tg = build_targets(labels[b], variables[b] if b < len(variables) else None, vocab)
        rows = tg.rows.to(hidden.device)
        logits = hidden[b, rows] @ head_weight.t()
        tok = sample_token_losses(logits, tg)
        # An all-masked sample would give NaN officially (mean of nothing); it contributes 0 here.
        if temporal_weight != 1.0 and len(tok):
            first = tg.cols[:, 0].to(tok.device)
            is_temp = (first >= vocab.vocab_size) & (first < vocab.vocab_size + NUM_BINS)
            w = torch.where(is_temp, temporal_weight, 1.0).to(tok.dtype)
            per_sample.append((w * tok).sum() / w.sum())
        else:
            per_sample.append(tok.mean() if len(tok) else tok.sum())
        token_losses.append(tok)
        all_targets.append(tg)
    ps = torch.stack(per_sample)
    loss = ps.sum() if reduction == "sum" else ps.mean()
    return LossOutput(loss=loss, per_sample=ps, token_losses=token_losses, targets=all_targets)


def dense_reference_loss(logits: torch.Tensor, labels: torch.Tensor,
                         variables: Sequence[Mapping[str, Sequence[float]] | None],
                         vocab: CoordVocab) -> torch.Tensor:
    """Literal official formulation on full logits (B, L, W): dense targets, soft/hard branch, batch sum.

    Kept for tests that prove ``coordinate_loss`` equals the definition; it is O(L x W) in memory.
    """
    total = []
    for b in range(logits.shape[0]):
        x = logits[b, :-1]
        lab = labels[b]
        if has_output_placeholders(lab, vocab):
            y = dense_targets(lab, variables[b], vocab)[1:].to(x.device)
            tok = F.cross_entropy(x, y, reduction="none")
            total.append(tok[lab[1:] != IGNORE_INDEX].mean())
        else:
            total.append(F.cross_entropy(x, lab[1:], ignore_index=IGNORE_INDEX))
    return torch.stack(total).sum()
