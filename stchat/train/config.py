"""Every training option, declared once: the keys of a YAML/JSON training config and the flags of
``stchat train run`` (generated from these fields by :mod:`stchat.options`).

Kept apart from :mod:`stchat.train.trainer` so that reading a config or building the command line does
not import torch, accelerate or peft.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from stchat.errors import StchatError
from stchat.options import option


@dataclass
class TrainConfig:
    """Every training option, declared once: a YAML/JSON config's keys and ``stchat train run``'s flags
    (:mod:`stchat.options` generates them from these fields)."""

    model: str = option("", "base checkpoint directory or hub id")
    data: str = option("", "training data: JSON/JSONL list, base{a,b}.json or a datasets YAML")
    data_folder: str | None = option(None, "media root for a JSON/JSONL data path (default: its folder)")
    data_format: str = option("auto", "record format", choices=("auto", "official", "stchat"),
                              aliases=("--format",))
    output_dir: str = option("runs/train", "where checkpoints, the log and the adapter go")
    mode: str = option("lora", "LoRA or full fine-tuning", choices=("lora", "full"))
    lora_r: int = option(128, "LoRA rank")
    lora_alpha: int = option(256, "LoRA alpha")
    lora_dropout: float = option(0.05, "LoRA dropout (official); 0 for reproducible runs")
    train_packer: bool = option(True, "train the spatio-temporal packer")
    train_embed_tokens: bool = option(True, "train the token embeddings")
    train_coord_tables: bool = option(True, "train the six coordinate tables")
    learning_rate: float = option(2e-4, "LoRA / main learning rate", aliases=("--lr",))
    mm_vision_resampler_lr: float | None = option(2e-5, "packer/embeddings/tables learning rate",
                                                  aliases=("--resampler-lr",))
    weight_decay: float = option(0.0, "AdamW weight decay")
    max_grad_norm: float | None = option(1.0, "clip the global gradient norm (the HF Trainer default the "
                                         "official scripts inherit); none: no clipping")
    warmup_ratio: float = option(0.03, "share of the steps spent warming up")
    lr_scheduler: str = option("cosine", "learning-rate schedule", choices=("cosine", "constant"))
    per_device_batch_size: int = option(2, "per-device batch size", aliases=("--batch-size",))
    gradient_accumulation_steps: int = option(2, "gradient accumulation steps", aliases=("--grad-accum",))
    epochs: float = option(1.0, "epochs (fractions allowed)")
    max_steps: int | None = option(None, "optimizer steps (overrides --epochs)")
    reduction: str = option("sum", "batch loss: the official sum of per-sample means, or their mean",
                            choices=("sum", "mean"))
    temporal_loss_weight: float = option(1.0, "weight of <TEMP-k> target rows in each sample's mean loss "
                                         "(1: the official objective)")
    bf16: bool | None = option(None, "bf16 mixed precision (default: on CUDA, off on CPU)")
    gradient_checkpointing: bool = option(False, "activation checkpointing (less memory, slower)")
    # SigLIP is frozen and runs under no_grad: its output can be reused.
    cache_vision_features: bool = option(True, "compute the frozen SigLIP output once per media item")
    # A 7B-model video is ~168 MB of bf16 tower output.
    vision_cache_mb: int = option(4096, "bound of the vision feature cache in MB")
    vision_cache_dir: str | None = option(None, "also keep the tower output on disk here (one file per "
                                          "media item, keyed by the tower's weights): resumes skip the tower")
    cache_media: bool = option(False, "keep decoded pixels in memory (only useful without the vision cache)")
    seed: int = option(0, "seed of the data order, initialisation and dropout")
    save_steps: int = option(200, "checkpoint every N optimizer steps")
    save_total_limit: int = option(3, "checkpoints kept")
    max_length: int = option(32768, "longest token sequence")
    device: str | None = option(None, "cpu, cuda, cuda:1 ... (default: best available)")
    attn_implementation: str | None = option(None, "attention kernel (e.g. sdpa, flash_attention_2)")
    resume: str | None = option(None, "'auto' (the output dir's latest checkpoint) or a checkpoint directory")
    # Stops early but keeps the schedule of the full run: for tests and quick looks.
    stop_after_steps: int | None = option(None, "stop after N steps, keeping the full run's schedule")
    progress: bool = option(True, "progress bar")
    extra: dict[str, Any] = option(default_factory=dict, cli=False)

    @classmethod
    def from_file(cls, path: str | Path, **overrides: Any) -> TrainConfig:
        """Read a YAML/JSON config; ``overrides`` (non-None) win."""
        p = Path(path)
        if not p.is_file():
            raise StchatError(f"training config not found: {p}")
        try:
            if p.suffix in (".yaml", ".yml"):
                data = yaml.safe_load(p.read_text()) or {}
            else:
                data = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError, yaml.YAMLError) as exc:  # JSONDecodeError is a ValueError
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StchatError(f"{p}: cannot parse the training config ({first})") from None
        if not isinstance(data, dict):
            raise StchatError(f"{p}: a training config must be a mapping of option: value")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise StchatError(f"{p}: unknown training option(s): {', '.join(unknown)}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**data)

    def validate(self) -> None:
        if not self.model or not self.data:
            raise StchatError("training needs a model and a data path")
        if self.mode not in ("lora", "full"):
            raise StchatError(f"mode must be 'lora' or 'full', not {self.mode!r}")
        if self.reduction not in ("sum", "mean"):
            raise StchatError(f"reduction must be 'sum' or 'mean', not {self.reduction!r}")
        if self.data_format not in ("auto", "official", "stchat"):
            raise StchatError(f"data_format must be 'auto', 'official' or 'stchat', not {self.data_format!r}")
        if self.lr_scheduler not in ("cosine", "constant"):
            raise StchatError(f"lr_scheduler must be 'cosine' or 'constant', not {self.lr_scheduler!r}")
        if not self.temporal_loss_weight > 0:
            raise StchatError(f"temporal_loss_weight must be positive, not {self.temporal_loss_weight!r}")
        for name in ("per_device_batch_size", "gradient_accumulation_steps", "save_steps"):
            if getattr(self, name) < 1:
                raise StchatError(f"{name} must be at least 1")
