"""``stchat eval``: benchmark sub-commands (``score`` here; run, report, sweep, make-synthetic plug in)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from stchat.errors import StchatError

# Modules of ``stchat.eval`` exposing ``register(eval_subparsers)`` (run, report, sweep, make-synthetic),
# in help order.
PLUGIN_MODULES = ("runner", "report", "sweep", "synthetic_bench")


def _score(args: argparse.Namespace) -> int:
    from stchat.eval.captions import caption_score
    from stchat.eval.score import score_dir, write_report

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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("eval", help="score and run benchmarks", description=__doc__)
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
    for name in PLUGIN_MODULES:
        try:
            module = importlib.import_module(f"stchat.eval.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"stchat.eval.{name}":
                continue  # not built yet
            raise
        module.register(sub)
