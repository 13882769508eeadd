"""Fine-tuning loop: LoRA (official stage-3 defaults) or full fine-tuning, with exact resume.

Defaults follow the official stage 2/3 scripts (docs/official_quirks.md#training-stages): LoRA r 128, alpha
256, dropout 0.05 on
q,k,v,o,gate,up,down of every decoder layer; trainable packer, ``embed_tokens`` and the six coordinate
tables at ``mm_vision_resampler_lr`` (2e-5) and LoRA at ``learning_rate`` (2e-4); AdamW, weight decay 0,
cosine schedule with 3 % warm-up; per-device batch 2 x accumulation 2; bf16 on GPU; the loss is the
official sum of per-sample means (Q12), divided by the accumulation steps as the HF Trainer does.

Deviation from the official scripts (Q14): the official ``initialize_vision_modules`` replaces the loaded
packer with a freshly initialised one; we start from the released packer weights, which is what
fine-tuning a released checkpoint needs.

Multi-GPU / multi-node runs go through ``accelerate`` (``accelerate launch --config_file
configs/accelerate_zero2.yaml -m stchat.cli train run ...``; ``torchrun --nproc_per_node N -m stchat.cli
train run ...`` works too, with gloo on CPU). Process r takes every N-th sample of each global batch and
gradients are averaged over processes, so N processes with per-device batch b train the same adapter
as one process with batch N*b -- to rounding (measured: <= 6e-6 after 4 steps, 2 gloo processes) --
when ``reduction`` is ``mean``, ``lora_dropout`` is 0 (masks are drawn per process) and the sample
count is a multiple of N*b. With the official ``sum`` the effective learning rate scales with b, as
officially.

Speed (``cache_vision_features``, default on): the SigLIP tower is frozen, so its output is computed
once per media item (``stchat.train.features``) and later visits skip decoding, preprocessing and the
tower; projector, LAPE and packer still run every step (they are trainable or feed trainable tables).
Measured on the tiny golden model, 2 loaded CPU cores, 6 synthetic clips: 1.5 s per cached step
against 8.2 s uncached, with an identical loss curve.

Resume is exact: a checkpoint holds the trainable weights, optimizer, scheduler, every RNG state and
the data position (global step); the per-epoch data order is a pure function of (seed, epoch).
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors.torch import load_file
from tqdm import tqdm
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from stchat.errors import StchatError
from stchat.model.adapter import LORA_TARGET_REGEX, NON_LORA_FILE, _clean_name, save_adapter
from stchat.model.loading import load_model
from stchat.train.config import TrainConfig
from stchat.train.data import TrainDataset, check_media, collate, load_records
from stchat.train.features import TowerCache, tower_fingerprint
from stchat.train.forward import training_loss, unwrap
from stchat.train.objective import CoordVocab, TrainDataError

# Names of the "mm_vision_resampler" tunable parts the official LLaVATrainer puts in the second LR group.
RESAMPLER_GROUP_KEYS = ("vision_resampler", "embed_tokens", "_input_embeddings", "_output_embeddings")


# ---------------------------------------------------------------------------------------------------
# model set-up


def set_trainable(model, cfg: TrainConfig):
    """Freeze/unfreeze as the official stage 2/3 (or everything but SigLIP for full fine-tuning).

    Returns the (possibly peft-wrapped) model.
    """
    base = unwrap(model)
    for p in base.parameters():
        p.requires_grad_(False)
    if cfg.mode == "lora":
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout, bias="none",
                          target_modules=LORA_TARGET_REGEX)
        model = get_peft_model(base, lcfg)
        base = unwrap(model)
    else:
        for name, p in base.named_parameters():
            # The tower never receives gradients officially (no_grad forward); lm_head stays frozen as in
            # every official stage (its 14 added rows stay at their initial means, Q15).
            if ".vision_tower." not in name and not name.startswith("lm_head"):
                p.requires_grad_(True)
    for name, p in base.named_parameters():
        if "lora_" in name:
            continue
        if (cfg.train_packer and "vision_resampler" in name) or (
                cfg.train_embed_tokens and "embed_tokens" in name) or (
                cfg.train_coord_tables and ("_input_embeddings" in name or "_output_embeddings" in name)):
            p.requires_grad_(True)
    if cfg.gradient_checkpointing:
        llm = base.model
        if hasattr(llm, "activation_checkpointing_enable"):  # transformers >= 5.x name
            llm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        base.model.config.use_cache = False
    return model


def param_groups(model, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Two LR groups as the official ``LLaVATrainer.create_optimizer`` (decay 0 for biases/norms)."""
    main, side = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        in_side = cfg.mm_vision_resampler_lr is not None and "lora_" not in name and any(
            k in name for k in RESAMPLER_GROUP_KEYS)
        (side if in_side else main).append(p)
    groups = []
    if main:
        groups.append({"params": main, "lr": cfg.learning_rate, "weight_decay": cfg.weight_decay})
    if side:
        groups.append({"params": side, "lr": cfg.mm_vision_resampler_lr, "weight_decay": cfg.weight_decay})
    if not groups:
        raise StchatError("nothing to train: every parameter is frozen")
    return groups


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    """HF Trainer schedules (the official scripts: cosine, warm-up ratio 0.03 -> ceil(0.03 * steps))."""
    warmup = math.ceil(cfg.warmup_ratio * total_steps)
    if cfg.lr_scheduler == "constant":
        return get_constant_schedule_with_warmup(optimizer, warmup)
    return get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)


class _LossModule(torch.nn.Module):
    """Wraps the model so that ``accelerate``/DDP sees one module whose forward returns the loss."""

    def __init__(self, model, vocab: CoordVocab, reduction: str, tower_cache: TowerCache | None,
                 temporal_weight: float = 1.0) -> None:
        super().__init__()
        self.inner = model
        self.vocab = vocab
        self.reduction = reduction
        self.temporal_weight = temporal_weight
        self.tower_cache = tower_cache

    def forward(self, batch):
        return training_loss(self.inner, batch, self.vocab, self.reduction, tower_cache=self.tower_cache,
                             temporal_weight=self.temporal_weight)


# ---------------------------------------------------------------------------------------------------
# data order


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(seed * 1000003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def global_batches(n: int, global_batch: int, seed: int, epoch: int) -> list[list[int]]:
    """Sample indices of each global batch (all processes together) of one epoch; the tail is dropped
    only when it cannot fill one sample per process (kept otherwise, as a smaller batch)."""
    order = epoch_order(n, seed, epoch)
    return [order[i:i + global_batch] for i in range(0, n, global_batch)]


# ---------------------------------------------------------------------------------------------------
# the loop


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _latest_checkpoint(out: Path) -> Path | None:
    cks = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    cks = [c for c in cks if (c / "trainer_state.pt").is_file()]
    return cks[-1] if cks else None


def _plot_curve(log_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="o", ms=2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)


def _reset_single_process_precision(mixed_precision: str) -> None:
    """Let a second ``train`` call in the same single process use another precision.

    accelerate keeps one process-wide ``AcceleratorState`` and refuses a different ``mixed_precision``
    once it exists (a notebook or test session training fp32 then bf16). In a single, non-distributed
    process nothing else depends on that state, so it is dropped; launched runs are left alone.
    """
    shared = AcceleratorState._shared_state
    single = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    if shared and single and str(shared.get("_mixed_precision")) != mixed_precision:
        AcceleratorState._reset_state()


@dataclass
class _Run:
    """Everything one training run holds between its stages (setup -> resume -> fit -> save)."""

    cfg: TrainConfig
    accelerator: Any
    model: Any
    tokenizer: Any
    dataset: TrainDataset
    wrapper: Any
    optimizer: Any
    scheduler: Any
    total: int  # optimizer steps of the full schedule
    global_batch: int
    out: Path
    log_path: Path
    step: int = 0  # optimizer steps done
    micro: int = 0  # micro-batches consumed (the data position)
    losses: list[float] = field(default_factory=list)
    t_start: float = 0.0

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index


def train(cfg: TrainConfig, model=None, tokenizer=None) -> dict[str, Any]:
    """Run fine-tuning; returns a summary (losses per step, output paths).

    ``model``/``tokenizer`` may be passed in (already loaded, fp32/bf16); otherwise ``cfg.model`` is loaded.
    """
    run = setup(cfg, model, tokenizer)
    resume(run)
    fit(run)
    return save(run)


def setup(cfg: TrainConfig, model=None, tokenizer=None) -> _Run:
    """Validate, seed, read and check the data, load and prepare the model, optimizer and schedule."""
    cfg.validate()
    cuda = torch.cuda.is_available() and (cfg.device is None or str(cfg.device).startswith("cuda"))
    bf16 = cfg.bf16 if cfg.bf16 is not None else cuda
    _reset_single_process_precision("bf16" if bf16 else "no")
    accelerator = Accelerator(
        mixed_precision="bf16" if bf16 else "no", cpu=not cuda,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    world = accelerator.num_processes
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    # Data problems (missing file, malformed JSON, missing media) are reported before the model loads:
    # minutes for a 7B checkpoint, and hours into a run for a missing video found only when reached.
    records = load_records(cfg.data, cfg.data_folder, seed=cfg.seed,
                           fmt={"official": "official", "stchat": "stchat"}.get(cfg.data_format, "auto"))
    check_media(records)
    if model is None:
        model, tokenizer = load_model(cfg.model, device=str(accelerator.device), dtype=torch.float32,
                                      attn_implementation=cfg.attn_implementation)
    vocab = CoordVocab.from_tokenizer(tokenizer)
    cache = None
    if cfg.cache_vision_features:
        disk = Path(cfg.vision_cache_dir) / tower_fingerprint(unwrap(model)) if cfg.vision_cache_dir else None
        cache = TowerCache(cfg.vision_cache_mb << 20, directory=disk)
    dataset = TrainDataset(records, tokenizer, max_length=cfg.max_length, cache_media=cfg.cache_media,
                           skip_media=cache.__contains__ if cache is not None else None)
    model = set_trainable(model, cfg)
    model.train()
    global_batch = cfg.per_device_batch_size * world
    if len(records) < world:
        raise TrainDataError(f"{len(records)} samples cannot feed {world} processes")
    steps_per_epoch = math.ceil(len(dataset) / (global_batch * cfg.gradient_accumulation_steps))
    total = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.learning_rate, betas=(0.9, 0.999),
                                  eps=1e-8)
    scheduler = make_scheduler(optimizer, cfg, total)
    wrapper = _LossModule(model, vocab, cfg.reduction, cache, cfg.temporal_loss_weight)
    wrapper, optimizer = accelerator.prepare(wrapper, optimizer)
    out = Path(cfg.output_dir)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
    return _Run(cfg, accelerator, model, tokenizer, dataset, wrapper, optimizer, scheduler, total,
                global_batch, out, out / "train_log.jsonl")


def resume(run: _Run) -> None:
    """Continue from ``cfg.resume`` ("auto": the latest checkpoint) -- weights, optimizer, schedule, RNG and
    data position -- or start a fresh log."""
    cfg, accelerator, log_path = run.cfg, run.accelerator, run.log_path
    resume_dir = Path(cfg.resume) if cfg.resume and cfg.resume != "auto" else None
    if cfg.resume == "auto":
        resume_dir = _latest_checkpoint(run.out)
    if resume_dir is not None:
        state = torch.load(resume_dir / "trainer_state.pt", map_location="cpu", weights_only=False)
        apply_adapter_weights(run.model, resume_dir / "adapter")
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        run.step, run.micro = state["step"], state["micro"]
        _set_rng_state(state["rng"][run.rank] if isinstance(state["rng"], list) else state["rng"])
        if accelerator.is_main_process and log_path.is_file():  # drop log lines past the checkpoint
            lines = [ln for ln in log_path.read_text().splitlines() if ln.strip()]
            kept = [ln for ln in lines if json.loads(ln)["step"] <= run.step]
            log_path.write_text("".join(k + "\n" for k in kept))
    elif accelerator.is_main_process and log_path.exists():
        log_path.unlink()


def fit(run: _Run) -> None:
    """Optimizer steps until the schedule (or ``stop_after_steps``) ends, logging and checkpointing."""
    cfg = run.cfg
    stop_at = min(run.total, cfg.stop_after_steps) if cfg.stop_after_steps else run.total
    bar = None
    if cfg.progress and run.accelerator.is_main_process:
        bar = tqdm(total=run.total, initial=run.step, desc="train", unit="step", dynamic_ncols=True)
    run.t_start = time.perf_counter()
    try:
        while run.step < stop_at:
            total_loss = _optimizer_step(run)
            run.losses.append(total_loss)
            if run.accelerator.is_main_process:
                with run.log_path.open("a") as f:
                    f.write(json.dumps({"step": run.step, "loss": total_loss,
                                        "lr": [g["lr"] for g in run.optimizer.param_groups],
                                        "seconds": round(time.perf_counter() - run.t_start, 2)}) + "\n")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total_loss:.4f}")
            if run.step % cfg.save_steps == 0 or run.step == stop_at:
                _save_checkpoint(run.accelerator, run.model, run.optimizer, run.scheduler, cfg, run.out,
                                 run.step, run.micro)
    finally:
        if bar is not None:
            bar.close()


def _optimizer_step(run: _Run) -> float:
    """One optimizer step over ``gradient_accumulation_steps`` micro-batches; the step's mean loss."""
    cfg, accelerator, dataset = run.cfg, run.accelerator, run.dataset
    epoch, offset = divmod(run.micro, math.ceil(len(dataset) / run.global_batch))
    batches = global_batches(len(dataset), run.global_batch, cfg.seed, epoch)
    acc_loss = torch.zeros((), device=accelerator.device)
    for _ in range(cfg.gradient_accumulation_steps):
        if offset >= len(batches):
            epoch, offset = epoch + 1, 0
            batches = global_batches(len(dataset), run.global_batch, cfg.seed, epoch)
        idx = batches[offset]
        mine = idx[run.rank::run.world] or idx[:1]
        examples = [dataset[i] for i in mine]
        batch = collate(examples, pad_id=run.tokenizer.pad_token_id, max_length=cfg.max_length)
        with accelerator.autocast():
            result = run.wrapper(batch)
        loss = result.loss / cfg.gradient_accumulation_steps  # as the HF Trainer does
        accelerator.backward(loss)
        acc_loss += loss.detach()
        offset += 1
        run.micro += 1
    if cfg.max_grad_norm:
        accelerator.clip_grad_norm_(run.model.parameters(), cfg.max_grad_norm)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return float(accelerator.reduce(acc_loss, reduction="mean"))


def save(run: _Run) -> dict[str, Any]:
    """The loss curve and, when the schedule is complete, the final adapter; the run's summary."""
    accelerator, out = run.accelerator, run.out
    summary: dict[str, Any] = {"steps": run.step, "total_steps": run.total, "losses": run.losses,
                               "output_dir": str(out), "main_process": accelerator.is_main_process,
                               "num_processes": run.world,
                               "seconds": round(time.perf_counter() - run.t_start, 2)}
    if accelerator.is_main_process:
        _plot_curve(run.log_path, out / "loss_curve.png")
        if run.step >= run.total:
            final = accelerator.unwrap_model(run.wrapper).inner
            save_adapter(final, out / "adapter", _meta(run.cfg, run.step))
            summary["adapter"] = str(out / "adapter")
    accelerator.wait_for_everyone()
    return summary


def _meta(cfg: TrainConfig, step: int) -> dict[str, Any]:
    return {"format": "stchat-adapter-1", "mode": cfg.mode, "base_model": cfg.model, "step": step,
            "config": {k: v for k, v in asdict(cfg).items() if k != "extra"}}


def apply_adapter_weights(model, adapter_dir: Path) -> None:
    """Load checkpointed trainable weights into a model that is already set up for training (resume)."""
    state = load_file(str(adapter_dir / NON_LORA_FILE))
    lora_file = adapter_dir / "adapter_model.safetensors"
    if lora_file.is_file():
        set_peft_model_state_dict(model, load_file(str(lora_file)))
    params = {_clean_name(n): p for n, p in model.named_parameters()}
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v.to(params[k].dtype))


def _save_checkpoint(accelerator, model, optimizer, scheduler, cfg: TrainConfig, out: Path, step: int,
                     micro: int) -> None:
    rng = _rng_state()
    gathered = [None] * accelerator.num_processes if accelerator.num_processes > 1 else None
    if gathered is not None:
        torch.distributed.all_gather_object(gathered, rng)
    if not accelerator.is_main_process:
        accelerator.wait_for_everyone()
        return
    ck = out / f"checkpoint-{step}"
    tmp = out / f".checkpoint-{step}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_adapter(accelerator.unwrap_model(model), tmp / "adapter", _meta(cfg, step))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "step": step,
                "micro": micro, "rng": gathered if gathered is not None else rng}, tmp / "trainer_state.pt")
    if ck.exists():
        shutil.rmtree(ck)
    tmp.rename(ck)
    cks = sorted(out.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    for old in cks[:-cfg.save_total_limit]:
        shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
