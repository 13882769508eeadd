"""Training forward pass: collated batch -> official loss, built on the model's public pieces.

The model's own ``forward`` is the inference path (raw output tables, logits at every position, batch
size 1 for the splice). Training needs (docs/official_quirks.md#training-objective): per-sample media encoding
and splicing with teacher-forced
coordinate rows (``prepare_inputs_embeds``, whose tables go through ``reparam`` so they get the NTP
gradient), one batched decoder pass with the padding mask, and the soft two-hot loss on an output
matrix whose coordinate tables are ``reparam``'d too (Q4). Logits are formed only at supervised rows
(``stchat.train.objective``), which is what makes 150k-wide vocabularies affordable.
"""

from __future__ import annotations

import torch

from stchat.model.modeling_llava_st import COORD_KINDS
from stchat.train.data import Batch
from stchat.train.features import TowerCache, encode_from_tower
from stchat.train.objective import CoordVocab, LossOutput, coordinate_loss, output_head_weight


def unwrap(model):
    """The ``LlavaSTForCausalLM`` under peft / DDP / accelerate wrappers (LoRA layers stay injected)."""
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "get_base_model"):
            model = model.get_base_model()
        elif hasattr(model, "module") and not hasattr(model, "prepare_inputs_embeds"):
            model = model.module
        else:
            break
    return model


def batch_inputs_embeds(model, batch: Batch, tower_cache: TowerCache | None = None) -> torch.Tensor:
    """(B, L, C) decoder inputs: each sample's media features and coordinate rows spliced in.

    With ``tower_cache`` the frozen SigLIP output is looked up per media item (computed once).
    """
    base = unwrap(model)
    device = base.model.embed_tokens.weight.device
    dtype = base.model.embed_tokens.weight.dtype
    rows = []
    for b, ex in enumerate(batch.examples):
        feats = None
        if tower_cache is not None and (ex.pixel_values is not None or ex.media_key in tower_cache):
            pixels = ex.pixel_values.to(device=device, dtype=dtype) if ex.pixel_values is not None else None
            tower_out = tower_cache.tower_output(base, ex.media_key, pixels)
            feats = encode_from_tower(base, tower_out.to(device=device, dtype=dtype), ex.modality)
        elif ex.pixel_values is not None:
            feats = base.encode(ex.pixel_values.to(device=device, dtype=dtype), ex.modality)
        rows.append(base.prepare_inputs_embeds(batch.input_ids[b:b + 1].to(device), feats, ex.variables)[0])
    return torch.stack(rows)


def training_loss(model, batch: Batch, vocab: CoordVocab, reduction: str = "sum",
                  return_hidden: bool = False, tower_cache: TowerCache | None = None,
                  temporal_weight: float = 1.0) -> LossOutput:
    """Official training loss of a batch (``reduction="sum"``: sum of per-sample means, Q12)."""
    base = unwrap(model)
    embeds = batch_inputs_embeds(model, batch, tower_cache)
    device = embeds.device
    out = base.model(inputs_embeds=embeds, attention_mask=batch.attention_mask.to(device).long(),
                     use_cache=False)
    hidden = out.last_hidden_state
    head = output_head_weight(base.lm_head.weight,
                              [getattr(base.model, f"{k}_output_embeddings").weight for k in COORD_KINDS])
    result = coordinate_loss(hidden, batch.labels.to(device), batch.variables, head, vocab, reduction,
                             temporal_weight)
    if return_hidden:
        result.hidden = hidden  # type: ignore[attr-defined]
    return result
