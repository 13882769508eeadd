"""``stchat train``: fine-tune LLaVA-ST (``run``), fold an adapter into a checkpoint (``merge``), and build
STVG training data from VidOR annotations (``prepare-vidor``)."""

from __future__ import annotations

import argparse
import json

from stchat.options import add_options, given_options
from stchat.train.config import TrainConfig

# The handlers import torch, accelerate and peft (seconds): ``stchat train ... --help`` and option errors
# answer without them.


def _run(args: argparse.Namespace) -> int:
    overrides = given_options(args, TrainConfig)  # only the flags typed: a config file's values stand
    cfg = TrainConfig.from_file(args.config, **overrides) if args.config else TrainConfig(**overrides)
    from stchat.train.trainer import train

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

    from stchat.model.loading import merge_to_checkpoint

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
    add_options(r, TrainConfig)
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

