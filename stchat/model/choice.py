"""The one place that picks the model stchat runs when the user did not name one.

Order: ``--model`` (passed in as ``explicit``), else ``$STCHAT_MODEL``; else the released 7B
(``appletea2333/LLaVA-ST-Qwen2-7B``) when a CUDA GPU with enough memory is present; else the embedded
demo model shipped inside the package (``stchat/demo/model``), which needs no network and no GPU.
``demo`` names the embedded model explicitly (``--model demo``, ``STCHAT_MODEL=demo``).

``describe_model`` gives the one line the page and the CLI show, so users always know which model runs
and what it is for.
"""

from __future__ import annotations

import os
from pathlib import Path

RELEASED_MODEL_ID = "appletea2333/LLaVA-ST-Qwen2-7B"
MODEL_ENV = "STCHAT_MODEL"
DEMO_NAME = "demo"
# bf16 weights of the 7B are ~16 GB; a 100-frame prompt and generation need a few GB more.
MIN_GPU_BYTES = 20 * 1024**3
DEMO_DESCRIPTION = ("demo model: synthetic shapes only; for real videos use appletea2333/LLaVA-ST-Qwen2-7B "
                    "on a GPU")


def demo_model_dir() -> Path:
    """The embedded demo checkpoint (package data)."""
    return Path(__file__).resolve().parent.parent / "demo" / "model"


def gpu_fits_released_model() -> bool:
    """True when a CUDA device with at least ``MIN_GPU_BYTES`` of memory is visible."""
    try:
        import torch

        if not torch.cuda.is_available():
            return False
        return any(torch.cuda.get_device_properties(i).total_memory >= MIN_GPU_BYTES
                   for i in range(torch.cuda.device_count()))
    except Exception:  # a broken CUDA install must not stop the CPU path
        return False


def choose_model(explicit: str | os.PathLike[str] | None = None) -> str:
    """The model source to load: see the module doc for the order."""
    name = str(explicit) if explicit not in (None, "") else os.environ.get(MODEL_ENV, "")
    if name:
        return str(demo_model_dir()) if name == DEMO_NAME else name
    if gpu_fits_released_model():
        return RELEASED_MODEL_ID
    return str(demo_model_dir())


def is_demo_model(source: str | os.PathLike[str] | None) -> bool:
    if source is None:
        return False
    if str(source) == DEMO_NAME:
        return True
    try:
        return Path(source).resolve() == demo_model_dir()
    except OSError:
        return False


def describe_model(source: str | os.PathLike[str] | None) -> str:
    """One line saying which model runs and what it is for."""
    if is_demo_model(source):
        return DEMO_DESCRIPTION
    if str(source) == RELEASED_MODEL_ID:
        return f"released model {RELEASED_MODEL_ID}: real videos (needs a GPU with >= 20 GB)"
    return f"model: {source}"
