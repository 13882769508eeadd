"""The ``stchat`` console script.

Each sub-command lives in its own module under ``stchat.commands`` and exposes
``register(subparsers)``; the module's handler returns an exit code. Only the module of the command
being run is imported (:func:`add_lazy_commands`). Every
``StchatError`` becomes one line on stderr and exit code 2 -- users never see a traceback
for bad input.
"""

from __future__ import annotations

import importlib
import os
import sys

from stchat.errors import StchatError

TYPE_CHECKING = False  # typing is not imported at run time: see stchat/__init__.py
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Mapping, Sequence

#: Command -> (module exposing ``register(subparsers)``, one-line help). Order is ``stchat --help``'s.
COMMANDS: dict[str, tuple[str, str]] = {
    "probe": ("stchat.commands.probe", "show a video's duration, frame rate, size, rotation and audio"),
    "render": ("stchat.commands.render", "draw a model answer on a video: clip, annotated video, timings"),
    "ground": ("stchat.commands.ground", "find when and where something happens in a video (or an image)"),
    "verify-golden": ("stchat.commands.verify_golden",
                      "check our model against goldens produced by the official code"),
    "inspect-model": ("stchat.commands.inspect_model",
                      "describe a checkpoint and estimate its GPU memory, without loading it"),
    "eval": ("stchat.commands.eval", "score and run benchmarks"),
    "train": ("stchat.commands.train", "fine-tune LLaVA-ST, merge adapters, prepare VidOR"),
    "app": ("stchat.commands.app", "start the web app"),
}


def chosen_command(argv: Sequence[str], names: Iterable[str]) -> str | None:
    """The sub-command named in ``argv`` (its first word that is one of ``names``), if any."""
    known = set(names)
    return next((a for a in argv if not a.startswith("-") and a in known), None)


def add_lazy_commands(
    sub: argparse._SubParsersAction, table: Mapping[str, tuple[str, str]], argv: Sequence[str]
) -> None:
    """Register the command ``argv`` names from its module; the others only as names with their help.

    Only the module of the command being run is imported (with everything it imports, at its top), so
    ``stchat probe`` never pays for torch, transformers or OpenCV, and ``stchat --help`` is instant.
    """
    chosen = chosen_command(argv, table)
    for name, (module, help_) in table.items():
        if name == chosen:
            register = importlib.import_module(module).register
            # A command with sub-commands of its own (eval) takes argv to import only the chosen one.
            # Counted from the code object, not inspect.signature: importing inspect costs `stchat probe`
            # about a sixth of its start-up.
            if register.__code__.co_argcount > 1:
                register(sub, argv)
            else:
                register(sub)
        else:
            sub.add_parser(name, help=help_)


def plain_args(argv: Sequence[str]) -> argparse.Namespace | None:
    """The arguments of a command line its command's module reads without argparse, else None.

    A command module may define ``parse_plain(args)``: it returns the namespace argparse would give for
    the usual, simple command line and None for anything else (help, abbreviations, mistakes), which then
    goes through argparse. ``stchat probe`` is run in shell loops over thousands of files; importing
    argparse and building the parser were ~13 ms of its ~60 ms (benchmarks/pipeline.py).
    """
    if not argv or argv[0] not in COMMANDS:
        return None
    parse_plain = getattr(importlib.import_module(COMMANDS[argv[0]][0]), "parse_plain", None)
    return None if parse_plain is None else parse_plain(argv[1:])


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    import argparse  # here, not at the top: see plain_args

    parser = argparse.ArgumentParser(
        prog="stchat", description="Find when and where something happens in a video."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_lazy_commands(sub, COMMANDS, argv)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C can land anywhere, including while the command modules import (torch, matplotlib: up to a
    # second): it must still end in one line, never a traceback.
    try:
        argv = sys.argv[1:] if argv is None else list(argv)
        args = plain_args(argv)
        if args is None:
            parser = build_parser(argv)
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
