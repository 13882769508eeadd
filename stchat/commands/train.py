"""``stchat train``: fine-tune LLaVA-ST (``run``), fold an adapter into a checkpoint (``merge``), and build
STVG training data from VidOR annotations (``prepare-vidor``)."""

from __future__ import annotations

import argparse
import json


def _run(args: argparse.Namespace) -> int:
    from stchat.train.trainer import TrainConfig, train

    overrides = {
        "model": args.model, "data": args.data, "data_folder": args.data_folder, "data_format": args.format,
        "output_dir": args.output_dir, "mode": args.mode, "max_steps": args.max_steps, "epochs": args.epochs,
        "learning_rate": args.lr, "mm_vision_resampler_lr": args.resampler_lr,
        "per_device_batch_size": args.batch_size, "gradient_accumulation_steps": args.grad_accum,
        "lora_r": args.lora_r, "lora_alpha": args.lora_alpha, "lora_dropout": args.lora_dropout,
        "reduction": args.reduction, "seed": args.seed,
        "save_steps": args.save_steps, "resume": args.resume, "device": args.device,
        "gradient_checkpointing": True if args.gradient_checkpointing else None,
        "bf16": {"on": True, "off": False}.get(args.bf16 or ""),
    }
    if args.config:
        cfg = TrainConfig.from_file(args.config, **overrides)
    else:
        cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    summary = train(cfg)
    if not summary.get("main_process", True):
        return 0  # under torchrun / accelerate launch only the main process reports
    if summary["losses"]:
        losses = summary["losses"]
        print(f"trained {summary['steps']}/{summary['total_steps']} steps; loss {losses[0]:.4f} -> "
              f"{losses[-1]:.4f}; outputs in {summary['output_dir']}")
    if "adapter" in summary:
        print(f"adapter: {summary['adapter']}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    import torch

    from stchat.model.adapter import merge_to_checkpoint

    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype]
    out = merge_to_checkpoint(args.base, args.adapter, args.out, dtype=dtype)
    print(f"merged checkpoint written to {out}")
    return 0


def _prepare_vidor(args: argparse.Namespace) -> int:
    from stchat.train.vidor import prepare_vidor

    report = prepare_vidor(args.annotations, args.out, video_root=args.video_root, scorer=args.scorer,
                           model=args.model, max_samples=args.max_samples)
    print(json.dumps({k: v for k, v in report.items() if k != "skipped_details"}, indent=1))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="fine-tune LLaVA-ST, merge adapters, prepare VidOR")
    sub = p.add_subparsers(dest="train_command", required=True, metavar="ACTION")

    r = sub.add_parser("run", help="fine-tune from a YAML/JSON config and/or options")
    r.add_argument("config", nargs="?", help="YAML/JSON training config (options below override it)")
    r.add_argument("--model", help="base checkpoint directory or hub id")
    r.add_argument("--data", help="training data: JSON/JSONL list, base{a,b}.json or a datasets YAML")
    r.add_argument("--data-folder", help="media root for a JSON/JSONL data path (default: its folder)")
    r.add_argument("--format", choices=["auto", "official", "stchat"], help="record format (default auto)")
    r.add_argument("--output-dir")
    r.add_argument("--mode", choices=["lora", "full"])
    r.add_argument("--max-steps", type=int)
    r.add_argument("--epochs", type=float)
    r.add_argument("--lr", type=float, help="LoRA / main learning rate (default 2e-4)")
    r.add_argument("--resampler-lr", type=float, help="packer/embeddings/tables LR (default 2e-5)")
    r.add_argument("--batch-size", type=int, help="per-device batch size (default 2)")
    r.add_argument("--grad-accum", type=int, help="gradient accumulation steps (default 2)")
    r.add_argument("--lora-r", type=int)
    r.add_argument("--lora-alpha", type=int)
    r.add_argument("--lora-dropout", type=float, help="default 0.05 (official); 0 for reproducible runs")
    r.add_argument("--reduction", choices=["sum", "mean"], help="batch loss: official sum or mean")
    r.add_argument("--seed", type=int)
    r.add_argument("--save-steps", type=int)
    r.add_argument("--resume", help="'auto' (latest checkpoint in the output dir) or a checkpoint directory")
    r.add_argument("--device")
    r.add_argument("--bf16", choices=["on", "off"])
    r.add_argument("--gradient-checkpointing", action="store_true")
    r.set_defaults(handler=_run)

    m = sub.add_parser("merge", help="base checkpoint + adapter -> full official-format checkpoint")
    m.add_argument("--base", required=True)
    m.add_argument("--adapter", required=True)
    m.add_argument("--out", required=True)
    m.add_argument("--dtype", choices=["fp32", "bf16", "fp16"], default="fp32")
    m.set_defaults(handler=_merge)

    v = sub.add_parser("prepare-vidor", help="VidOR annotations -> STVG training samples (stchat format)")
    v.add_argument("annotations", help="a VidOR annotation JSON file or a folder of them")
    v.add_argument("--out", required=True, help="output JSON (training data)")
    v.add_argument("--video-root", help="folder of the VidOR videos (default: next to the annotations)")
    v.add_argument("--scorer", choices=["auto", "model", "heuristic"], default="auto",
                   help="target selection among same-category instances (default: model if --model is given)")
    v.add_argument("--model", help="checkpoint for the model scorer")
    v.add_argument("--max-samples", type=int)
    v.set_defaults(handler=_prepare_vidor)

