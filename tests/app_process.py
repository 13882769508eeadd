"""Run the real app (``app.py``) in a subprocess for tests: a free port, wait until it answers, a clean stop.

Shared by the browser tests and the API-page test; no browser needed here, so importing it never skips.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the app exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"the app did not answer on {url} within {timeout_s:.0f} s")


def stop_app(proc: subprocess.Popen[bytes], log_path: Path, tail: int = 4000) -> None:
    """SIGTERM (the app's clean stop), kill after 20 s, then show the log's tail for a failing test."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    print(log_path.read_text(errors="replace")[-tail:])
