"""``stchat verify-golden DIR [--model-dir M]``: replay a golden fixture, exit 1 on any mismatch."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify-golden",
        help="check our model against goldens produced by the official code",
        description="Replay every case of a golden fixture directory through the public loading path and "
        "print max|Δ| per tensor and whether greedy tokens and decoded text match. Exit code 1 on mismatch.",
    )
    p.add_argument(
        "fixture_dir", metavar="DIR", type=Path, help="golden fixture directory (holds cases/, vision/)"
    )
    p.add_argument("--model-dir", type=Path, default=None, help="checkpoint to test (default: DIR/model)")
    p.add_argument("--case", action="append", default=None, help="replay only this case (repeatable)")
    p.add_argument("--no-train", action="store_true", help="skip the training goldens in DIR/train")
    p.add_argument(
        "--attn", choices=("eager", "sdpa"), default=None, help="LLM attention kernel (default: sdpa on CPU)"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from stchat.golden import format_report, verify_fixture

    report = verify_fixture(
        args.fixture_dir,
        args.model_dir,
        cases=args.case,
        include_train=not args.no_train,
        attn_implementation=args.attn,
    )
    print(format_report(report))
    return 0 if report.ok else 1
