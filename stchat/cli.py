"""The ``stchat`` console script.

Each sub-command lives in its own module under ``stchat.commands`` and exposes
``register(subparsers)``; the module's handler returns an exit code. Every
``StchatError`` becomes one line on stderr and exit code 2 -- users never see a traceback
for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stchat.errors import StchatError

# Order is the order in ``stchat --help``.
COMMAND_MODULES = (
    "probe",
    "render",
    "ground",
    "verify_golden",
    "eval",
    "train",
    "app",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stchat", description="Find when and where something happens in a video."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"stchat.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"stchat.commands.{name}":
                continue  # command not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C can land anywhere, including while the command modules import (torch, matplotlib: up to a
    # second): it must still end in one line, never a traceback.
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:
            if not getattr(args, "passthrough", False):
                parser.error(f"unrecognized arguments: {' '.join(extra)}")
            args.passthrough_args = extra + list(getattr(args, "passthrough_args", []))
        return int(args.handler(args) or 0)
    except StchatError as exc:
        print(f"stchat: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stchat: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # ``stchat probe x | head``: the reader left. Point stdout at devnull so the interpreter's final
        # flush does not raise again while exiting.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _one_line(text: str) -> str:
    """Messages may quote user input (a query, a path) holding newlines: keep the promised single line."""
    return " ".join(text.split()) or "unknown error"


if __name__ == "__main__":
    sys.exit(main())
