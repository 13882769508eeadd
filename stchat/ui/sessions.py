"""Per-session output folders: one folder per browser session, removed on tab close, age or exit.

Every run writes under ``<root>/<session>/run-<n>/`` so two users never see each other's files and a
cleanup never has to guess what belongs to whom.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9_-]")


class SessionStore:
    def __init__(self, root: Path, max_age_s: float) -> None:
        self.root = root
        self.max_age_s = max_age_s
        self._lock = threading.Lock()
        self._counter = 0
        root.mkdir(parents=True, exist_ok=True)

    def session_dir(self, session_id: str | None) -> Path:
        # Session ids come from the browser: keep only safe characters so no id can escape the root.
        name = _SAFE.sub("", session_id or "") or "anonymous"
        return self.root / name[:64]

    def new_run_dir(self, session_id: str | None) -> Path:
        with self._lock:
            self._counter += 1
            n = self._counter
        run = self.session_dir(session_id) / f"run-{n:04d}"
        run.mkdir(parents=True, exist_ok=True)
        return run

    def remove_session(self, session_id: str | None) -> None:
        shutil.rmtree(self.session_dir(session_id), ignore_errors=True)

    def sweep(self, now: float | None = None) -> list[Path]:
        """Delete session folders not touched for ``max_age_s``; returns what was deleted."""
        now = time.time() if now is None else now
        removed = []
        if not self.root.is_dir():
            return removed
        for d in self.root.iterdir():
            if not d.is_dir():
                continue
            newest = max((p.stat().st_mtime for p in d.rglob("*")), default=d.stat().st_mtime)
            if now - max(newest, d.stat().st_mtime) > self.max_age_s:
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d)
        return removed

    def start_sweeper(self, every_s: float = 600.0) -> threading.Thread:
        def loop() -> None:
            while True:
                time.sleep(every_s)
                self.sweep()

        t = threading.Thread(target=loop, name="stchat-session-sweeper", daemon=True)
        t.start()
        return t

    def remove_all(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
