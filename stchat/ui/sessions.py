"""Per-session files: one folder of runs per browser session, plus the uploads it made; nothing outlives it.

A session ends when its tab closes (Gradio's unload event), when it has been idle for ``max_age_s``, or
when the app stops. Runs made through the raw HTTP API have no tab to close: their session expires
``api_ttl_s`` after its last run, long enough to download the result. Ending a session deletes its run
folders and the uploads it used (unless another live session uses the same upload: Gradio names
uploads by content hash, so two users of one file share it). Deleted files are no longer servable.

Folder names are random (``secrets.token_urlsafe``), never the session id or a counter, so a result URL
cannot be guessed from another one.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from stchat.errors import StchatError

log = logging.getLogger(__name__)


class QuotaError(StchatError):
    """A session's uploads and outputs exceed its disk quota."""


@dataclass
class _Session:
    folder: Path
    last_seen: float
    page: bool = False  # a browser page (ends on unload) rather than a raw API client
    uploads: set[Path] = field(default_factory=set)


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


class SessionStore:
    def __init__(self, root: Path, max_age_s: float, quota_bytes: int = 2_000_000_000,
                 api_ttl_s: float = 900.0, upload_root: Path | None = None) -> None:
        self.root = root
        self.max_age_s = max_age_s
        self.quota_bytes = quota_bytes
        self.api_ttl_s = api_ttl_s
        self.upload_root = upload_root  # only files under it are deleted as uploads
        self._lock = threading.RLock()
        self._sessions: dict[str, _Session] = {}
        root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ sessions
    def _session(self, session_id: str | None, page: bool = False) -> _Session:
        # No id (a bare API call): a one-off session of its own, expiring like any API session.
        key = session_id or f"anonymous-{secrets.token_hex(8)}"
        with self._lock:
            s = self._sessions.get(key)
            if s is None:
                s = self._sessions[key] = _Session(self.root / secrets.token_urlsafe(16), time.time())
            s.last_seen = time.time()
            s.page = s.page or page
            return s

    def open_page(self, session_id: str | None) -> None:
        """A browser page loaded: its files live until unload (or ``max_age_s`` idle)."""
        if session_id:
            self._session(session_id, page=True)

    def session_dir(self, session_id: str | None) -> Path:
        return self._session(session_id).folder

    def track_upload(self, session_id: str | None, path: str | Path | None) -> None:
        """Note that this session uses an uploaded file, so the file goes when the session does."""
        if path is None or not session_id:
            return
        p = Path(path).resolve()
        if self.upload_root is None or not p.is_relative_to(self.upload_root.resolve()) or not p.is_file():
            return
        self._session(session_id).uploads.add(p)

    def usage(self, session_id: str | None) -> int:
        s = self._session(session_id)
        return _size(s.folder) + sum(_size(p) for p in s.uploads)

    def new_run_dir(self, session_id: str | None) -> Path:
        """A fresh, unguessable run folder; older runs of the session go first if over the quota."""
        s = self._session(session_id)
        with self._lock:
            runs = sorted((d for d in s.folder.glob("*") if d.is_dir()), key=lambda d: d.stat().st_mtime)
            used = self.usage(session_id)
            while runs and used >= self.quota_bytes:  # the page shows one run per tab: old ones can go
                old = runs.pop(0)
                used -= _size(old)
                shutil.rmtree(old, ignore_errors=True)
            if used >= self.quota_bytes:
                raise QuotaError(
                    f"this session's files take {used / 1e6:.0f} MB, over its "
                    f"{self.quota_bytes / 1e6:.0f} MB quota: reload the page to start a fresh session"
                )
            run = s.folder / secrets.token_urlsafe(12)
            run.mkdir(parents=True)
            return run

    def end_session(self, session_id: str | None) -> None:
        """Delete the session's runs and the uploads no other live session uses."""
        if not session_id:
            return
        with self._lock:
            s = self._sessions.pop(session_id, None)
            if s is None:
                return
            shared = set().union(*(o.uploads for o in self._sessions.values())) if self._sessions else set()
        shutil.rmtree(s.folder, ignore_errors=True)
        for p in s.uploads - shared:
            p.unlink(missing_ok=True)
            try:
                p.parent.rmdir()  # Gradio's per-upload hash folder, when now empty
            except OSError:
                pass

    # ------------------------------------------------------------------ expiry
    def sweep(self, now: float | None = None) -> list[str]:
        """End sessions idle past their lifetime and delete folders no session owns; returns ended ids."""
        now = time.time() if now is None else now
        with self._lock:
            expired = [k for k, s in self._sessions.items()
                       if now - s.last_seen > (self.max_age_s if s.page else self.api_ttl_s)]
        for key in expired:
            self.end_session(key)
        with self._lock:  # under the lock: a session created meanwhile keeps its new folder
            owned = {s.folder for s in self._sessions.values()}
            for d in self.root.iterdir() if self.root.is_dir() else []:
                if d not in owned and d.is_dir():  # left by an earlier process or an ended session
                    shutil.rmtree(d, ignore_errors=True)
        return expired

    def start_sweeper(self, every_s: float = 60.0) -> threading.Thread:
        def loop() -> None:
            while True:
                time.sleep(every_s)
                try:
                    self.sweep()
                except OSError:
                    log.exception("session sweep failed")

        t = threading.Thread(target=loop, name="stchat-session-sweeper", daemon=True)
        t.start()
        return t

    def remove_all(self) -> None:
        with self._lock:
            keys = list(self._sessions)
        for key in keys:
            self.end_session(key)
        shutil.rmtree(self.root, ignore_errors=True)
