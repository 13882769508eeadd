"""The ``stchat`` console script.

Each sub-command lives in its own module under ``stchat.commands`` and exposes
``register(subparsers)``; the module's handler returns an exit code. Only the module of the command
being run is imported (:func:`add_lazy_commands`). Every
``StchatError`` becomes one line on stderr and exit code 2 -- users never see a traceback
for bad input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence

from stchat.errors import StchatError

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


def _terminal_columns() -> int:
    """``shutil.get_terminal_size().columns``, without importing shutil (see :class:`Parser`)."""
    try:
        columns = int(os.environ.get("COLUMNS", 0))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class HelpFormatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        # argparse's own default: the terminal's width less 2
        super().__init__(prog, indent_increment, max_help_position, width or _terminal_columns() - 2)


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose help formatter is sized without ``shutil``.

    argparse builds a formatter at every ``add_argument`` (to check the metavar), and its default sizes
    itself with ``shutil.get_terminal_size``: importing shutil (with bz2 and lzma) was 5 ms, 7 % of
    ``stchat probe``. Sub-command parsers are of this class too (``add_subparsers`` uses the parent's).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    parser = Parser(
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
