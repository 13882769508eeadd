"""``LlavaSTConfig``: the official ``llava_qwen`` config.json, read as a Qwen2 config plus the mm_* fields.

The official ``LlavaQwenConfig`` is a bare ``Qwen2Config`` subclass; everything LLaVA-ST adds
(``mm_vision_tower``, ``mm_perceiver_latents``, ...) rides along as extra attributes, so we read
the same file the same way and give the few fields the model needs typed accessors here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import Qwen2Config, SiglipVisionConfig

from stchat.model.checkpoint import flatten_config, read_tensor_infos, resolve_tower

# Sizes the official code hard-codes (VisionConfig constants / TokenPacker defaults), not config fields.
NUM_COORD_BINS = 100  # rows of each coordinate table; the config's num_*_tokens only gate creation (Q5/Q13)
NUM_FRAMES = 100  # sampled frames per video; LAPE broadcasts the 100-row temporal table over them
NUM_SLOW_FRAMES = 20  # temporal packer output frames (100 -> 20)
TEMPORAL_KERNEL = 5  # frames per temporal packer window
SPATIAL_KERNEL = 3  # patches per side of a spatial packer window


@strict
class LlavaSTConfig(Qwen2Config):
    """Config of ``LlavaSTForCausalLM``; loads the official ``config.json`` unchanged."""

    model_type = "llava_qwen"

    mm_vision_tower: str = "google/siglip-so400m-patch14-384"
    mm_hidden_size: int = 1152
    mm_projector_type: str = "mlp2x_gelu"
    mm_resampler_type: str = "fast_slow_resampler"
    mm_perceiver_latents: int = 81
    mm_perceiver_latents_fast: int = 9
    # The official TokenPacker hard-codes 1024 / 8; only the golden's tiny checkpoint carries these keys.
    mm_token_packer_embed_dim: int = 1024
    mm_token_packer_num_heads: int = 8
    use_downsample_image: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        # Official configs carry ``rope_scaling: null``; the official constructor forces None anyway, and
        # passing it on would only trigger transformers' deprecation warning.
        kwargs.pop("rope_scaling", None)
        super().__post_init__(**kwargs)
        # The official constructor sets ``config.rope_scaling = None``: plain RoPE with the
        # checkpoint's theta, whatever scaling the file might carry.
        theta = (self.rope_parameters or {}).get("rope_theta", getattr(self, "rope_theta", None)) or 10000.0
        self.rope_parameters = {"rope_type": "default", "rope_theta": float(theta)}

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> LlavaSTConfig:
        """Also reads a composite config: LLM fields under ``text_config`` are lifted to the top level."""
        return super().from_dict(flatten_config(config_dict), **kwargs)

    # ------------------------------------------------------------------ vision tower
    def vision_config(self, checkpoint_dir: str | os.PathLike | None = None) -> SiglipVisionConfig:
        """Architecture of the SigLIP tower as the official loader builds it (last layer dropped, no head).

        Widths and depth come from the checkpoint's own tower tensors when the checkpoint directory
        (argument, else the directory the config was read from) has safetensors weights; heads, eps and
        activation from ``mm_vision_tower`` as a local directory (absolute, or relative to the checkpoint;
        the golden stores the bare sub-directory name), else ``vision_config`` in config.json, else the
        released SigLIP family. No network call is ever made for the tower.
        """
        base = checkpoint_dir if checkpoint_dir is not None else getattr(self, "_name_or_path", "")
        ckpt = Path(base) if base else None
        tensors = None
        if ckpt is not None and ckpt.is_dir():
            tensors = read_tensor_infos(ckpt)[0] or None
        extra = getattr(self, "mm_vision_config", None)
        extra = extra if isinstance(extra, dict) else None
        spec = resolve_tower(str(self.mm_vision_tower), ckpt, tensors, extra)
        return SiglipVisionConfig(**spec.fields, vision_use_head=False)  # Q6: pooling head replaced

    # ------------------------------------------------------------------ packer geometry
    @property
    def packer_embed_dim(self) -> int:
        return int(self.mm_token_packer_embed_dim)

    @property
    def packer_num_heads(self) -> int:
        return int(self.mm_token_packer_num_heads)

