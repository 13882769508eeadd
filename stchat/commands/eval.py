"""``stchat eval``: benchmark sub-commands (``score`` here; run, report, sweep, make-synthetic next to
their code in :mod:`stchat.eval`, each imported only when it is the one being run)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from stchat.cli import add_lazy_commands
from stchat.errors import StchatError
from stchat.eval.captions import caption_score
from stchat.eval.score import score_dir, write_report

#: ``stchat eval`` sub-commands living in :mod:`stchat.eval` (module with ``register``, help), help order.
EVAL_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("stchat.eval.runner",
            "run the model over a benchmark (resumable; torchrun/accelerate for several processes)"),
    "report": ("stchat.eval.report", "breakdown tables, plots and a case gallery for a result folder"),
    "sweep": ("stchat.eval.sweep", "run a benchmark once per decoding setting and plot the stability study"),
    "make-synthetic": ("stchat.eval.synthetic_bench", "write a small benchmark with exact ground truth "
                       "from the synthetic clips (offline demo)"),
}


def _score(args: argparse.Namespace) -> int:
    out = args.out or os.path.join(args.result_dir, "total_eval.json")
    out_abs = os.path.abspath(out)
    try:
        report = score_dir(
            args.result_dir,
            captions=None if args.no_captions else caption_score,
            skip=lambda p: os.path.abspath(p) == out_abs,
        )
    except RecursionError:  # absurdly nested JSON in a record
        raise StchatError("a result record is nested too deeply to score") from None
    for w in report.warnings:
        print(f"stchat: warning: {w}", file=sys.stderr)
    if not report.official:
        print(f"stchat: warning: no scorable result files under {args.result_dir}", file=sys.stderr)
    try:
        write_report(report, out, with_extra=not args.official_only)
    except OSError as exc:
        raise StchatError(f"cannot write {out}: {exc.strerror or exc}") from None
    # Print as the official script does: one block per result file.
    for name, values in report.official.items():
        print("-" * 100)
        print(f"task: {name}")
        for k, v in values.items():
            print(f"{k}: {json.dumps(v) if isinstance(v, dict) else v}")
    print(f"written: {out}")
    return 0


def register(subparsers: argparse._SubParsersAction, argv: Sequence[str] = ()) -> None:
    parser = subparsers.add_parser("eval", help="score and run benchmarks",
                                   description="Score, run, report and sweep benchmarks.")
    sub = parser.add_subparsers(dest="eval_command", required=True, metavar="EVAL_COMMAND")
    p = sub.add_parser(
        "score",
        help="score result files exactly like the official multi_task_eval.py",
        description="Score every result file below --result-dir (official layout and routing) and write "
        "total_eval.json with the official keys and values, plus a 'stchat_extra' section.",
    )
    p.add_argument("--result-dir", required=True, help="directory scanned recursively for *.json results")
    p.add_argument("--out", help="output JSON (default: <result-dir>/total_eval.json)")
    p.add_argument("--official-only", action="store_true", help="omit the stchat_extra section")
    p.add_argument("--no-captions", action="store_true", help="skip the Java caption metrics of ELC")
    p.set_defaults(handler=_score)
    # The other sub-commands live next to their code and add themselves to this parser.
    add_lazy_commands(sub, EVAL_COMMANDS, argv)
