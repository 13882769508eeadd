"""Loads the model once, in a background thread, and says in words how that is going.

The app must start (and the "Visualise an answer" path must work) even when the model cannot load:
no GPU memory, no network for a hub id, missing weights. So loading never raises into the UI; it
ends in ``ready`` or ``failed`` with a one-line reason the page shows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stchat.errors import ModelLoadError, StchatError

log = logging.getLogger(__name__)

Loader = Callable[[], Any]


class ModelUnavailableError(ModelLoadError):
    """The model is still loading or failed to load; the message says which and why."""


@dataclass(frozen=True)
class ModelStatus:
    state: str  # "idle" | "loading" | "ready" | "failed"
    model: str
    message: str

    @property
    def settled(self) -> bool:
        return self.state in ("ready", "failed")

    def text(self) -> str:
        """``✔ Model demo: ready (…). <what it is for>`` — plain text; the page escapes it and hides paths."""
        icon = {"idle": "○", "loading": "…", "ready": "✔", "failed": "⚠"}[self.state]
        line = f"{icon} Model {display_name(self.model)}: {self.message}"
        purpose = model_purpose(self.model)
        return f"{line}\n{purpose}" if purpose else line


def display_name(model: str) -> str:
    """``demo``, a hub id as is, or a local folder by its own name only (visitors need not see server
    paths)."""
    try:
        from stchat.model.choice import is_demo_model
    except ImportError:  # older checkouts
        return Path(model).name
    if is_demo_model(model):
        return "demo"
    p = Path(model)
    return p.name if (p.is_absolute() or model.startswith(".")) else model


def model_purpose(model: str) -> str:
    """What the running model is for, from the one place that chooses models; no server paths."""
    from stchat.ui.present import hide_paths

    try:
        from stchat.model.choice import describe_model
    except ImportError:  # older checkouts: no description to show
        return ""
    return hide_paths(describe_model(model))


def default_loader(model: str, **load_kwargs: Any) -> Loader:
    """Loads ``StableChat(model, **load_kwargs)`` (adapter, load_in_8bit, ...) when called."""

    def load() -> Any:
        from stchat.chat import StableChat  # heavy import (torch, transformers): only when loading

        return StableChat(model=model, **load_kwargs)

    return load


def explain_load_failure(exc: BaseException) -> str:
    """One line a user can act on, whatever the loader raised."""
    if isinstance(exc, StchatError):
        return str(exc)
    text = (str(exc).strip().splitlines() or [""])[0][:300]
    name = type(exc).__name__
    if "OutOfMemory" in name or "out of memory" in text.lower():
        return f"not enough GPU memory to load the model ({text})"
    if isinstance(exc, ModuleNotFoundError):
        return f"a required module is missing: {exc.name}"
    if isinstance(exc, OSError):
        return f"cannot read the weights (offline, or the path/hub id is wrong): {text}"
    return f"{name}: {text}" if text else name


class ModelHolder:
    """One model per app; ``get()`` hands it out once loaded, otherwise raises ``ModelUnavailableError``."""

    def __init__(self, model: str, loader: Loader | None = None, **load_kwargs: Any) -> None:
        self.model = model
        self._loader = loader or default_loader(model, **load_kwargs)
        self._lock = threading.Lock()
        self._state = "idle"
        self._message = "not loaded yet"
        self._value: Any = None
        self._started_at = 0.0
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Begin loading in the background (idempotent)."""
        with self._lock:
            if self._state != "idle":
                return
            self._state, self._message = "loading", "loading…"
            self._started_at = time.monotonic()
            self._thread = threading.Thread(target=self._load, name="stchat-model-loader", daemon=True)
            self._thread.start()

    def _load(self) -> None:
        try:
            value = self._loader()
        except Exception as exc:  # any failure becomes a status line, never a crash
            log.exception("model %s failed to load", self.model)
            with self._lock:
                self._state, self._message = "failed", (
                    f"cannot be used: {explain_load_failure(exc)}. "
                    "You can still use “Visualise an answer” with a pasted model answer."
                )
            return
        with self._lock:
            self._value = value
            self._state = "ready"
            self._message = f"ready (loaded in {time.monotonic() - self._started_at:.1f} s)"

    def wait(self, timeout: float | None = None) -> ModelStatus:
        t = self._thread
        if t is not None:
            t.join(timeout)
        return self.status()

    def status(self) -> ModelStatus:
        with self._lock:
            message = self._message
            if self._state == "loading":
                message = f"loading… ({time.monotonic() - self._started_at:.0f} s so far)"
            return ModelStatus(self._state, self.model, message)

    def get(self) -> Any:
        with self._lock:
            if self._state == "ready":
                return self._value
        if self.status().state == "idle":
            self.start()  # lazy path: first use triggers the load
        st = self.status()
        raise ModelUnavailableError(f"the model is not available: {st.message}")
