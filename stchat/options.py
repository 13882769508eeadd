"""Command-line flags generated from config dataclasses: each option is declared once, on its field.

A field made with :func:`option` carries its help text (and, where needed, choices, extra flag spellings
or a different flag name); :func:`add_options` turns every field of a dataclass into a flag
(``learning_rate`` -> ``--learning-rate``, with the type, choices and default taken from the field) and
:func:`given_options` reads back only the flags the user actually typed, so a config file's values
stand unless a flag overrides them. The same idea as litgpt's CLI, without a new dependency.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

_NO_DEFAULT: Any = dataclasses.MISSING


def option(
    default: Any = _NO_DEFAULT,
    help: str = "",
    *,
    default_factory: Any = _NO_DEFAULT,
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None,
    flag: str | None = None,
    aliases: Sequence[str] = (),
    metavar: str | None = None,
    cli: bool = True,
) -> Any:
    """A dataclass field with its command-line description (``cli=False``: not a flag)."""
    # ``choices`` may be a function: read when the parser is built (e.g. the task table's current names).
    meta = {"help": help, "choices": choices, "flag": flag,
            "aliases": tuple(aliases), "metavar": metavar, "cli": cli}
    if default_factory is not _NO_DEFAULT:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (tp, False)."""
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    with_defaults: bool = False,
) -> None:
    """Add a flag for every CLI field of dataclass ``cls`` (or those in ``only``), in field order.

    Flags default to "not given" (absent from the namespace): :func:`given_options` then tells a typed
    value from the field's default, which is shown in the help. ``with_defaults`` puts the field defaults
    in the namespace instead (for commands without a config file). A bool that defaults to False is a
    plain switch (``--flag``); any other bool gets ``--flag/--no-flag``.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or f.name in exclude or (only is not None and f.name not in only):
            continue
        base, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        kwargs: dict[str, Any] = {"dest": f.name, "default": default if with_defaults else argparse.SUPPRESS}
        text = f.metadata.get("help", "")
        kwargs["help"] = f"{text} (default: {default})" if default not in (None, "", False) else text
        if base is bool:
            kwargs["action"] = "store_true" if default is False else argparse.BooleanOptionalAction
        elif typing.get_origin(base) in (list, tuple):
            kwargs["nargs"] = "+"
            kwargs["type"] = typing.get_args(base)[0]
        elif base in (int, float, str):
            kwargs["type"] = base
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no command-line form for type {base!r}")
        choices = f.metadata.get("choices")
        if choices:
            kwargs["choices"] = tuple(choices() if callable(choices) else choices)
        if f.metadata.get("metavar"):
            kwargs["metavar"] = f.metadata["metavar"]
        parser.add_argument(flag_of(f), *f.metadata.get("aliases", ()), **kwargs)


def given_options(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` the user gave on the command line, as ``{field name: value}``."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
