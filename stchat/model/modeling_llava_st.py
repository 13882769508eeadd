"""``LlavaSTForCausalLM``: our transformers-style implementation of the official LLaVA-ST model.

Pipeline (docs/official_quirks.md#visual-pipeline, #input-splice): pixels -> SigLIP (last layer dropped) ->
mlp2x_gelu projector -> LAPE
(coordinate-table injections) -> Spatial-Temporal Packer -> spliced into the Qwen2 input embeddings
together with interpolated coordinate rows -> Qwen2 decoder -> logits over the extended vocabulary
``[lm_head; temporal_out; height_out; width_out]`` (width V+300).

Every official quirk the trained weights depend on is reproduced where it lives and cites the
Q-number listed in ``docs/official_quirks.md``.
State-dict keys are the official ones, so an official ``model.safetensors`` loads with no missing
and no unexpected keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Qwen2Model
from transformers.cache_utils import DynamicCache
from transformers.modeling_outputs import CausalLMOutputWithPast
from transformers.models.qwen2.modeling_qwen2 import Qwen2PreTrainedModel
from transformers.models.siglip.modeling_siglip import SiglipEncoder, SiglipVisionEmbeddings

from stchat.errors import PromptError, VideoError
from stchat.model.configuration_llava_st import (
    NUM_COORD_BINS,
    NUM_FRAMES,
    NUM_SLOW_FRAMES,
    SPATIAL_KERNEL,
    TEMPORAL_KERNEL,
    LlavaSTConfig,
)
from stchat.processing.coords import VARIABLE_KEYS  # the six location lists of a prompt

# extended-vocabulary order: T, H, W (docs/official_quirks.md#token-ids)
COORD_KINDS = ("temporal", "spatial_height", "spatial_width")


# ====================================================================== NTP / coordinate helpers
def ntp_matrix(n: int, dtype: torch.dtype, device: torch.device | str) -> torch.Tensor:
    """M[i, j] = 2^-|i-j|, built in float32 and then cast, as the official code does (in fp16 the far
    entries underflow to 0, which the official numbers include)."""
    idx = torch.arange(n)
    m = 2.0 ** (-(idx[:, None] - idx[None]).abs().to(torch.float32))
    return m.to(dtype=dtype, device=device)


def reparam(weight: torch.Tensor) -> torch.Tensor:
    """NTP reparameterisation ``(W + M@W) - stopgrad(M@W)`` (Q4).

    The identity in exact arithmetic, but about half the fp32 elements move by one ulp; the trained
    weights saw exactly these values, so we keep the arithmetic rather than returning ``W``. The
    gradient is ``(I + M)^T G``, which fine-tuning needs.
    """
    mw = ntp_matrix(weight.shape[0], weight.dtype, weight.device) @ weight
    return (weight + mw) - mw.detach()


def token_transfer(location: float, table: torch.Tensor) -> torch.Tensor:
    """Embedding of a coordinate placeholder at ``location`` in [0, 1] (Q3).

    ``(1-r)*T[floor(99p)] + r*T[ceil(99p)]`` with r computed in double precision; torch rounds the
    Python scalars to the table dtype before multiplying, exactly like the official code.
    """
    p = float(location)
    if not math.isfinite(p):
        raise PromptError(f"coordinate value {location!r} is not a finite number")
    p = min(max(p, 0.0), 1.0)
    e = p * (table.shape[0] - 1)
    f, c = math.floor(e), math.ceil(e)
    r = e - f
    return table[f] * (1 - r) + table[c] * r


@dataclass(frozen=True)
class SpecialTokenIds:
    """Ids of the media markers and coordinate placeholders (the official ``vision_config`` ids)."""

    im_start: int
    im_end: int
    im_patch: int
    vid_start: int
    vid_end: int
    vid_patch: int
    slow_vid_start: int
    slow_vid_end: int
    temporal_input: int
    temporal_output: int
    height_input: int
    height_output: int
    width_input: int
    width_output: int

    @classmethod
    def from_vocab_size(cls, vocab_size: int) -> SpecialTokenIds:
        """The layout every stage-2 checkpoint has: the 14 added tokens are the last rows below V
        (docs/official_quirks.md#token-ids)."""
        return cls(*range(vocab_size - 14, vocab_size))

    @classmethod
    def from_tokenizer(cls, tokenizer: Any) -> SpecialTokenIds:
        names = (
            "<im_start>", "<im_end>", "<im_patch>", "<vid_start>", "<vid_end>", "<vid_patch>",
            "<slow_vid_start>", "<slow_vid_end>", "<TEMP-INPUT>", "<TEMP-OUTPUT>",
            "<HEIGHT-INPUT>", "<HEIGHT-OUTPUT>", "<WIDTH-INPUT>", "<WIDTH-OUTPUT>",
        )  # fmt: skip
        return cls(*(int(tokenizer.convert_tokens_to_ids(n)) for n in names))


# ====================================================================== vision tower (Q6/Q9)
class SiglipBody(nn.Module):
    """SigLIP vision transformer: keys ``embeddings.*``, ``encoder.layers.*``, ``post_layernorm.*``."""

    def __init__(self, vision_config: Any) -> None:
        super().__init__()
        self.config = vision_config
        self.embeddings = SiglipVisionEmbeddings(vision_config)
        self.encoder = SiglipEncoder(vision_config)
        # Loaded (the key is in every checkpoint) but never applied: the official feature is the
        # last kept layer's output *before* post_layernorm (Q6).
        self.post_layernorm = nn.LayerNorm(vision_config.hidden_size, eps=vision_config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        # Patchify + learned position rows 0..728. The position table is added directly rather than via
        # the module's non-persistent ``position_ids`` buffer, which a meta-device load leaves unset.
        patches = self.embeddings.patch_embedding(pixel_values).flatten(2).transpose(1, 2)
        hidden = patches + self.embeddings.position_embedding.weight
        return self.encoder(inputs_embeds=hidden, attention_mask=None).last_hidden_state


class _SiglipVisionModel(nn.Module):
    """Holds ``vision_model`` so the keys read ``vision_tower.vision_tower.vision_model.*`` as officially."""

    def __init__(self, vision_config: Any) -> None:
        super().__init__()
        self.vision_model = SiglipBody(vision_config)


class SiglipTower(nn.Module):
    """The official ``SigLipVisionTower``: frozen, run under ``no_grad``, output cast to the input dtype."""

    def __init__(self, vision_config: Any) -> None:
        super().__init__()
        self.vision_tower = _SiglipVisionModel(vision_config)
        self.config = vision_config

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        param = self.vision_tower.vision_model.embeddings.patch_embedding.weight
        with torch.no_grad():  # the official tower never receives gradients, even when trainable
            out = self.vision_tower.vision_model(pixel_values.to(device=param.device, dtype=param.dtype))
        return out.to(pixel_values.dtype)


# ====================================================================== Spatial-Temporal Packer (Q7, Q11)
class PackerAttention(nn.Module):
    """Point-to-region attention (official ``TokenPackerAttention``; keep the key names)."""

    def __init__(self, dim: int, embed_dim: int, num_heads: int) -> None:
        super().__init__()
        self.to_q = nn.Sequential(nn.Linear(dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        self.to_k = nn.Sequential(nn.Linear(dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        self.to_v = nn.Sequential(nn.Linear(dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, embed_dim))
        self.ln_q = nn.LayerNorm(embed_dim)
        self.ln_k = nn.LayerNorm(embed_dim)
        self.ln_v = nn.LayerNorm(embed_dim)
        self.attn = nn.MultiheadAttention(embed_dim, num_heads)  # sequence-first, as officially
        self.to_out = nn.Linear(embed_dim, dim, bias=False)

    @staticmethod
    def _regions(x: torch.Tensor, k_t: int, k_hw: int) -> torch.Tensor:
        """(hw, t, E) -> (window size, number of windows, E); windows ordered (row, col, frame) like the
        queries, window members ordered (row offset, col offset, frame offset) (Q7b)."""
        hw, t, e = x.shape
        side = math.isqrt(hw)
        if t == 1:
            k_t = 1  # an image has one frame: the temporal window shrinks to it
        x = x.reshape(side // k_hw, k_hw, side // k_hw, k_hw, t // k_t, k_t, e)
        return x.permute(1, 3, 5, 0, 2, 4, 6).reshape(k_hw * k_hw * k_t, -1, e)

    def forward(self, query: torch.Tensor, x: torch.Tensor, k_t: int, k_hw: int) -> torch.Tensor:
        tq, hwq, _ = query.shape
        q = self.ln_q(self.to_q(query)).permute(1, 0, 2).reshape(1, hwq * tq, -1)
        k = self._regions(self.ln_k(self.to_k(x)).permute(1, 0, 2), k_t, k_hw)
        v = self._regions(self.ln_v(self.to_v(x)).permute(1, 0, 2), k_t, k_hw)
        out = self.attn(q, k, v, need_weights=False)[0]
        return self.to_out(out.reshape(hwq, tq, -1).permute(1, 0, 2))


class PackerModule(nn.Module):
    """One ``TokenPackerModule``: query = strided pick, output = query + attention over its window."""

    def __init__(self, dim: int, embed_dim: int, num_heads: int, pattern: str, out_grid: int) -> None:
        super().__init__()
        self.pattern = pattern  # "spatial" or "temporal"
        self.out_grid = out_grid  # spatial: output side (9 or 3); temporal: unused
        self.devide_attention = PackerAttention(dim, embed_dim, num_heads)  # official (mis)spelling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, hw, c = x.shape
        if self.pattern == "spatial":
            side = math.isqrt(hw)
            # Q11: the official bilinear 27->9 / 9->3 resize (align_corners False, scale 3) lands on
            # integer source positions 3i+1, so it *is* a pick; we index instead of interpolating.
            # (Identical for finite inputs; the interpolation would also mix in 0*neighbour.)
            s = side // self.out_grid
            query = x.reshape(t, side, side, c)[:, s // 2 :: s, s // 2 :: s].reshape(t, -1, c)
            return query + self.devide_attention(query, x, 1, SPATIAL_KERNEL)
        if t == 1:
            query = x  # the official temporal resize is skipped for a single frame
        else:
            s = t // NUM_SLOW_FRAMES  # linear 100->20 hits frames 5T+2 exactly (Q11)
            query = x[s // 2 :: s]
        return query + self.devide_attention(query, x, TEMPORAL_KERNEL, 1)


class TokenPacker(nn.Module):
    """``vision_resampler``: spatial 27x27->9x9, then temporal 100->20 (slow) and spatial 9x9->3x3 (fast)."""

    def __init__(self, config: LlavaSTConfig) -> None:
        super().__init__()
        c, e, h = config.hidden_size, config.packer_embed_dim, config.packer_num_heads
        slow_side = math.isqrt(int(config.mm_perceiver_latents))
        fast_side = math.isqrt(int(config.mm_perceiver_latents_fast))
        self.token_packer = PackerModule(c, e, h, "spatial", slow_side)
        self.token_packer_slow = PackerModule(c, e, h, "temporal", slow_side)
        self.token_packer_fast = PackerModule(c, e, h, "spatial", fast_side)

    def forward(
        self, features: torch.Tensor, with_fast: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (slow, fast). The fast stream is only computed on request: its tokens never reach the
        LLM (Q1), and the official ``slow + 0*mean(fast)`` is value-neutral for finite values (Q7b)."""
        spatial = self.token_packer(features)
        slow = self.token_packer_slow(spatial)
        fast = self.token_packer_fast(spatial) if with_fast else None
        return slow, fast


# ====================================================================== the model
class LlavaSTModel(Qwen2Model):
    """Qwen2 decoder plus the LLaVA-ST modules, under the official ``model.*`` key names."""

    config_class = LlavaSTConfig

    def __init__(self, config: LlavaSTConfig) -> None:
        super().__init__(config)
        vision_config = config.vision_config()
        # The official SigLipAttention is its own eager code (matmul, fp32 softmax, matmul) whatever the LLM's
        # attn_implementation says; an SDPA kernel here moved the tower output by up to 7e-6 on the golden
        # and more with width (issue #8), so the tower is always eager, like the official one.
        vision_config._attn_implementation = "eager"
        self.vision_tower = SiglipTower(vision_config)
        c = config.hidden_size
        # mlp2x_gelu; nn.GELU() is the exact erf GELU the official projector uses
        self.mm_projector = nn.Sequential(nn.Linear(config.mm_hidden_size, c), nn.GELU(), nn.Linear(c, c))
        self.vision_resampler = TokenPacker(config)
        for kind in COORD_KINDS:
            setattr(self, f"{kind}_input_embeddings", nn.Embedding(NUM_COORD_BINS, c))
            setattr(self, f"{kind}_output_embeddings", nn.Linear(c, NUM_COORD_BINS, bias=False))
        self.post_init()


class LlavaSTForCausalLM(Qwen2PreTrainedModel):
    """LLaVA-ST (``llava_qwen``) with our implementation of the official vision path and splicing."""

    config_class = LlavaSTConfig
    _no_split_modules = ["Qwen2DecoderLayer", "SiglipEncoderLayer", "TokenPacker"]

    def __init__(self, config: LlavaSTConfig) -> None:
        super().__init__(config)
        self.model = LlavaSTModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.token_ids = SpecialTokenIds.from_vocab_size(config.vocab_size)
        self.post_init()

    # ------------------------------------------------------------------ plumbing
    @property
    def is_gradient_checkpointing(self) -> bool:
        """transformers 5 deprecates this name for ``is_activation_checkpointing``; peft still reads it
        when it wraps a model, so answer under the old name without the FutureWarning."""
        return bool(self.is_activation_checkpointing)

    def bind_tokenizer(self, tokenizer: Any) -> None:
        """Take the marker ids from the tokenizer, as the official ``init_vision_config`` does."""
        self.token_ids = SpecialTokenIds.from_tokenizer(tokenizer)

    @property
    def vocab_size(self) -> int:
        return int(self.config.vocab_size)

    @property
    def extended_vocab_size(self) -> int:
        return self.vocab_size + 3 * NUM_COORD_BINS

    def coordinate_tables(self) -> dict[str, torch.Tensor]:
        """The six reparameterised tables (Q4), named like the golden tensors ``reparam_<kind>_<io>``."""
        out = {}
        for kind in COORD_KINDS:
            out[f"{kind}_input"] = reparam(getattr(self.model, f"{kind}_input_embeddings").weight)
            out[f"{kind}_output"] = reparam(getattr(self.model, f"{kind}_output_embeddings").weight)
        return out

    def embed_ids(
        self, input_ids: torch.Tensor, tables: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Look ids up in ``[embed_tokens; reparam(T_in); reparam(H_in); reparam(W_in)]``
        (docs/official_quirks.md#input-splice step 1).

        A generated coordinate id V+100*type+k thus gets row k of that type's *input* table, no
        interpolation (Q3). Done by masking instead of concatenating so no vocabulary-sized copy is made.
        """
        tables = tables if tables is not None else self.coordinate_tables()
        v = self.vocab_size
        if bool(((input_ids < 0) | (input_ids >= self.extended_vocab_size)).any()):
            raise PromptError(f"token id out of range [0, {self.extended_vocab_size})")
        embeds = self.model.embed_tokens(input_ids.clamp(max=v - 1))
        coord = input_ids >= v
        if bool(coord.any()):
            w = self.model.embed_tokens.weight
            table = torch.cat([tables[f"{k}_input"].to(w.device, w.dtype) for k in COORD_KINDS])
            embeds = embeds.clone()
            embeds[coord] = table[input_ids[coord] - v]
        return embeds

    def extended_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits over V+300 columns with the *raw* output weights (inference path,
        docs/official_quirks.md#logits), in float32.

        Two matmuls instead of one over a concatenated weight: same per-column dot products, without
        copying the vocabulary-sized lm_head every step.
        """
        w = torch.cat([getattr(self.model, f"{k}_output_embeddings").weight for k in COORD_KINDS])
        text = self.lm_head(hidden)
        coords = F.linear(hidden, w.to(hidden.device))
        return torch.cat([text, coords.to(text.device)], dim=-1).float()

    # ------------------------------------------------------------------ vision path
    def _lape(self, tables: Mapping[str, torch.Tensor], grid: int) -> dict[str, torch.Tensor]:
        """LAPE injections (docs/official_quirks.md#visual-pipeline, Q5/Q6): mean of the input/output tables;
        height/width resampled
        100 -> grid with torch linear interpolation (align_corners False)."""
        inj = {k: (tables[f"{k}_input"] + tables[f"{k}_output"]) / 2 for k in COORD_KINDS}

        def resize(e: torch.Tensor) -> torch.Tensor:
            return F.interpolate(e.unsqueeze(1).permute(1, 2, 0), size=(grid,), mode="linear")[0].T

        return {
            "lape_temporal_injection": inj["temporal"],
            "lape_height_injection": inj["spatial_height"],
            "lape_width_injection": inj["spatial_width"],
            "lape_height_injection_resized": resize(inj["spatial_height"]),
            "lape_width_injection_resized": resize(inj["spatial_width"]),
        }

    def _project_and_lape(
        self, pixel_values: torch.Tensor, modality: str, tables: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        return self.project_and_lape(self.model.vision_tower(pixel_values), modality, tables)

    def project_and_lape(
        self, tower: torch.Tensor, modality: str, tables: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """SigLIP features (T, 729, Dv) -> projector -> + LAPE (Q10: the projector runs before LAPE)."""
        proj = self.model.mm_projector(tower.to(self.model.mm_projector[0].weight.dtype))
        t, hw, c = proj.shape
        side = math.isqrt(hw)
        lape = self._lape(tables, side)
        h = lape["lape_height_injection_resized"][None, :, None, :]
        w = lape["lape_width_injection_resized"][None, None, :, :]
        if modality == "video":
            temporal = lape["lape_temporal_injection"][:, None, None, :]  # row f onto frame f: needs t == 100
        else:
            # Images use temporal row 0; the official ``+ 0*sum(table)`` term is value-neutral (Q7).
            temporal = lape["lape_temporal_injection"][0:1, None, None, :]
        # Q5: addition order height, width, temporal
        feats = (((proj.reshape(t, side, side, c) + h) + w) + temporal).reshape(t, hw, c)
        return {"vision_tower_out": tower, "projector_out": proj, "lape_features": feats, **lape}

    def _check_pixels(self, pixel_values: torch.Tensor, modality: str) -> torch.Tensor:
        if modality not in ("video", "image"):
            raise PromptError(f"unknown modality {modality!r}: expected 'video' or 'image'")
        if pixel_values.ndim == 3:
            pixel_values = pixel_values.unsqueeze(0)
        vc = self.model.vision_tower.config
        size = vc.image_size
        if pixel_values.ndim != 4 or tuple(pixel_values.shape[1:]) != (vc.num_channels, size, size):
            raise VideoError(
                f"pixel values must have shape (N, {vc.num_channels}, {size}, {size}); "
                f"got {tuple(pixel_values.shape)}"
            )
        if modality == "video" and pixel_values.shape[0] != NUM_FRAMES:
            # LAPE adds temporal row f to frame f, so the official model only works on 100 frames (Q5).
            raise VideoError(
                f"a video must be exactly {NUM_FRAMES} sampled frames; got {pixel_values.shape[0]}"
            )
        if modality == "image" and pixel_values.shape[0] != 1:
            raise VideoError(f"an image must be a single frame; got {pixel_values.shape[0]}")
        if not torch.isfinite(pixel_values).all():
            raise VideoError("pixel values contain NaN or infinity")
        return pixel_values

    def vision_intermediates(
        self, pixel_values: torch.Tensor, modality: str = "video"
    ) -> dict[str, torch.Tensor]:
        """Every vision-path tensor under its golden name (vision/<modality>.safetensors), fast path too."""
        pixel_values = self._check_pixels(pixel_values, modality)
        tables = self.coordinate_tables()
        out = self._project_and_lape(pixel_values, modality, tables)
        packer = self.model.vision_resampler
        spatial = packer.token_packer(out["lape_features"])
        slow = packer.token_packer_slow(spatial)
        fast = packer.token_packer_fast(spatial)
        out.update(
            token_packer_out=spatial,
            token_packer_slow_out=slow,
            token_packer_fast_out=fast,
            resampler_slow_out=slow + fast.mean() * 0,  # the official dummy term, here only to compare
            resampler_fast_out=fast,
            pixel_values=pixel_values,
        )
        out.update({f"reparam_{k}": v for k, v in tables.items()})
        return out

    def encode_video(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(100, 3, S, S) -> the 1620 slow tokens (20 frames x 81, frame-major) the LLM sees.

        The fast packer is not run: its 900 tokens are overwritten by the official splice (Q1).
        """
        pixel_values = self._check_pixels(pixel_values, "video")
        feats = self._project_and_lape(pixel_values, "video", self.coordinate_tables())["lape_features"]
        slow, _ = self.model.vision_resampler(feats)
        return slow.flatten(0, 1)

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(1, 3, S, S) -> the 729 LAPE-added projected tokens (81 packer tokens if use_downsample_image)."""
        pixel_values = self._check_pixels(pixel_values, "image")
        feats = self._project_and_lape(pixel_values, "image", self.coordinate_tables())["lape_features"]
        if getattr(self.config, "use_downsample_image", False):
            slow, _ = self.model.vision_resampler(feats)
            return slow.flatten(0, 1)
        # The official ``+ 0*mean(packer output)`` is value-neutral, so the packer is skipped (Q7).
        return feats.flatten(0, 1)

    def encode(self, pixel_values: torch.Tensor, modality: str) -> torch.Tensor:
        return self.encode_video(pixel_values) if modality == "video" else self.encode_image(pixel_values)

    # ------------------------------------------------------------------ input splice
    # (docs/official_quirks.md#input-splice)
    def _media_block(self, ids: torch.Tensor, start: int, end: int, length: int, what: str) -> int | None:
        starts = (ids == start).nonzero().flatten().tolist()
        if not starts:
            return None
        if len(starts) > 1:
            raise PromptError(f"the prompt holds {len(starts)} {what} blocks; exactly one is supported")
        pos = starts[0]
        # The official splice checks that the block's last token is the matching end marker (Q8).
        if pos + length > ids.shape[0] or int(ids[pos + length - 1]) != end:
            raise PromptError(
                f"malformed {what} block: expected {length} tokens from its start to its end marker"
            )
        return pos

    def prepare_inputs_embeds(
        self,
        input_ids: torch.Tensor,
        visual_features: torch.Tensor | None = None,
        variables: Mapping[str, Sequence[float]] | None = None,
    ) -> torch.Tensor:
        """(1, L) prompt ids -> (1, L, C) decoder inputs: token rows, the spliced visual block and the
        interpolated coordinate rows, exactly as the official prefill builds them."""
        if input_ids.ndim != 2 or input_ids.shape[0] != 1:
            raise PromptError(f"input_ids must have shape (1, L); got {tuple(input_ids.shape)}")
        tables = self.coordinate_tables()
        embeds = self.embed_ids(input_ids, tables)[0]
        ids = input_ids[0]
        tok = self.token_ids
        if visual_features is not None:
            n = visual_features.shape[0]
            slow_pos = self._media_block(ids, tok.slow_vid_start, tok.slow_vid_end, n, "slow video")
            image_pos = (
                None if slow_pos is not None else self._media_block(ids, tok.im_start, tok.im_end, n, "image")
            )
            pos = slow_pos if slow_pos is not None else image_pos
            if pos is None:
                raise PromptError(
                    "visual features were given but the prompt has no <slow_vid_start> or <im_start> block"
                )
            if slow_pos is not None:
                # Q1: the fast block (<vid_start> ... <vid_end>) is validated like the official code does,
                # but its positions keep their token embeddings: the official fast splice is overwritten.
                fast_len = NUM_FRAMES * int(self.config.mm_perceiver_latents_fast)
                self._media_block(ids, tok.vid_start, tok.vid_end, fast_len, "fast video")
            # Q8: the features overwrite the delimiters too
            embeds = torch.cat([embeds[:pos], visual_features.to(embeds), embeds[pos + n :]])
        if variables:  # the official code requires a non-empty dict here (``all(variables)``)
            embeds = self._place_coordinates(ids, embeds, variables, tables)
        return embeds.unsqueeze(0)

    def _place_coordinates(
        self,
        ids: torch.Tensor,
        embeds: torch.Tensor,
        variables: Mapping[str, Sequence[float]],
        tables: Mapping[str, torch.Tensor],
    ) -> torch.Tensor:
        tok = self.token_ids
        placeholders = (
            (tok.temporal_input, "temporal_input_locations", "temporal", True),
            (tok.temporal_output, "temporal_output_locations", "temporal", True),
            (tok.height_input, "spatial_height_input_locations", "spatial_height", True),
            (tok.height_output, "spatial_height_output_locations", "spatial_height", True),
            # Q2: the official width-input loop computes the row but never stores it, so prompt
            # x-coordinates keep the plain <WIDTH-INPUT> embedding; the weights were trained that way.
            (tok.width_input, "spatial_width_input_locations", "spatial_width", False),
            (tok.width_output, "spatial_width_output_locations", "spatial_width", True),
        )
        unknown = set(variables) - set(VARIABLE_KEYS)
        if unknown:
            raise PromptError(f"unknown coordinate variables {sorted(unknown)}")
        # One index_copy for all rows: a per-row ``embeds[pos] = row`` costs a full (L, C) gradient copy
        # per placeholder in backward (a long STVG answer has hundreds), which dominated training steps.
        where: list[int] = []
        rows: list[torch.Tensor] = []
        for token_id, key, kind, assigned in placeholders:
            positions = (ids == token_id).nonzero().flatten().tolist()
            locations = list(variables.get(key, []))
            if len(positions) > len(locations):
                raise PromptError(
                    f"{len(positions)} placeholders need {key}, but only {len(locations)} values given"
                )
            for pos, loc in zip(positions, locations, strict=False):
                row = token_transfer(loc, tables[f"{kind}_input"])  # Q3: output placeholders use input tables
                if assigned:
                    where.append(pos)
                    rows.append(row.to(embeds))
        if not rows:
            return embeds.clone()
        index = torch.tensor(where, dtype=torch.long, device=embeds.device)
        return embeds.index_copy(0, index, torch.stack(rows))

    # ------------------------------------------------------------------ forward / generation
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        pixel_values: torch.Tensor | None = None,
        modality: str = "video",
        variables: Mapping[str, Sequence[float]] | None = None,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Any = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        """Logits of width V+300. ``logits_to_keep``: 0 = all, n = the last n, or an index tensor.

        ``cache`` is transformers' name for the KV cache since 5.x (``past_key_values`` is deprecated there
        and removed in 5.40); ``past_key_values`` stays accepted here as an alias for older callers.
        """
        cache = cache if cache is not None else past_key_values
        if inputs_embeds is None:
            if input_ids is None:
                raise PromptError("forward needs input_ids or inputs_embeds")
            if pixel_values is not None and input_ids.shape[1] != 1:
                feats = self.encode(pixel_values, modality)
                inputs_embeds = self.prepare_inputs_embeds(input_ids, feats, variables)
            elif input_ids.shape[1] != 1 and input_ids.shape[0] == 1:
                inputs_embeds = self.prepare_inputs_embeds(input_ids, None, variables)
            else:
                inputs_embeds = self.embed_ids(input_ids)
        out = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=use_cache,
            **kwargs,
        )
        hidden = out.last_hidden_state
        if isinstance(logits_to_keep, int):
            hidden = hidden[:, -logits_to_keep:] if logits_to_keep > 0 else hidden
        else:
            hidden = hidden[:, logits_to_keep]
        return CausalLMOutputWithPast(
            logits=self.extended_logits(hidden), cache=out.cache
        )

    def _eos_ids(self) -> set[int]:
        gen = getattr(self, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None) if gen is not None else None
        if eos is None:
            eos = self.config.eos_token_id
        if eos is None:
            return set()
        return {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}

    def prefill_inputs(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None,
        modality: str,
        variables: Mapping[str, Sequence[float]] | None,
        max_new_tokens: int,
        visual_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Any]:
        """The prompt's ``inputs_embeds`` and the coordinate tables, as every decoding loop starts
        (plain ``generate_ids`` and the speculative loop share it, so their prefills are the same)."""
        if input_ids.ndim == 1:
            input_ids = input_ids.unsqueeze(0)
        if max_new_tokens < 1:
            raise PromptError(f"max_new_tokens must be at least 1; got {max_new_tokens}")
        device = self.model.embed_tokens.weight.device
        input_ids = input_ids.to(device)
        feats = visual_features
        if feats is None and pixel_values is not None:
            feats = self.encode(pixel_values.to(device), modality)
        return self.prepare_inputs_embeds(input_ids, feats, variables), self.coordinate_tables()

    @torch.no_grad()
    def generate_ids(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        modality: str = "video",
        variables: Mapping[str, Sequence[float]] | None = None,
        max_new_tokens: int = 1024,
        do_sample: bool = False,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
        streamer: Any = None,
        step_logits: list[torch.Tensor] | None = None,
        visual_features: torch.Tensor | None = None,
    ) -> list[int]:
        """Generate new token ids (the prompt is not included; an EOS token is, as HF generate returns it).

        Greedy by default. The official demo/benchmark decoding is ``do_sample=True, temperature=0.01``
        with HF's default top_k 50 (Q22). Coordinate tokens are fed back through the reparameterised
        input tables (docs/official_quirks.md#generation). ``step_logits``, if given, receives the float32
        logits row of every step.
        ``visual_features`` (from ``encode_video``/``encode_image``) replaces ``pixel_values`` when the
        same media is asked about repeatedly, so the vision path runs once.
        """
        from stchat.model.sampling import choose_token  # local: keeps this file about the model

        embeds, tables = self.prefill_inputs(input_ids, pixel_values, modality, variables, max_new_tokens,
                                             visual_features)
        device = embeds.device
        gen = getattr(self, "generation_config", None)
        if do_sample:
            temperature = temperature if temperature is not None else getattr(gen, "temperature", None) or 1.0
            top_k = top_k if top_k is not None else getattr(gen, "top_k", None)
            top_k = 50 if top_k is None else top_k  # HF's default, which the official call inherits
            top_p = top_p if top_p is not None else getattr(gen, "top_p", None)
        penalty = getattr(gen, "repetition_penalty", None)  # HF applies it in greedy search as well
        generator = None
        if seed is not None:
            generator = torch.Generator(device=device).manual_seed(int(seed))
        eos = self._eos_ids()
        cache = DynamicCache(config=self.config)
        if streamer is not None:
            streamer.put(torch.empty((1, 0), dtype=torch.long))  # HF generate "puts" the (empty) prompt first
        new_ids: list[int] = []
        step_in = embeds
        for _ in range(max_new_tokens):
            out = self.model(inputs_embeds=step_in, cache=cache, use_cache=True)
            logits = self.extended_logits(out.last_hidden_state[:, -1])[0]
            if step_logits is not None:
                step_logits.append(logits.detach().cpu())
            token = choose_token(logits, do_sample, temperature, top_k, top_p, generator, new_ids, penalty)
            new_ids.append(token)
            if streamer is not None:
                streamer.put(torch.tensor([token]))
            if token in eos:
                break
            step_in = self.embed_ids(torch.tensor([[token]], device=device), tables)
        if streamer is not None:
            streamer.end()
        return new_ids
