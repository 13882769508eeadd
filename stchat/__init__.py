"""stchat: find when and where something happens in a video with LLaVA-ST.

The package reads like the pipeline:
video -> processing (prompt, pixels) -> model -> parse -> render -> clip -> ui,
with eval/ and train/ beside it.

``from stchat import StableChat, render_answer`` works; the heavy modules (torch, transformers,
PyAV) are imported only when one of them is first used.
"""

from __future__ import annotations

# Not ``from typing import TYPE_CHECKING``: typing (with contextlib, warnings) costs ~10 ms of a fresh
# process, a sixth of ``stchat probe``; type checkers read a module-level TYPE_CHECKING = False as typing's.
TYPE_CHECKING = False

__version__ = "0.1.0"
__all__ = ["StableChat", "render_answer", "parse_answer", "__version__"]

_LAZY = {
    "StableChat": "stchat.chat",
    "render_answer": "stchat.pipeline",
    "parse_answer": "stchat.parse",
}

if TYPE_CHECKING:
    from typing import Any

    from stchat.chat import StableChat
    from stchat.parse import parse_answer
    from stchat.pipeline import render_answer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'stchat' has no attribute {name!r}")
