"""End-to-end: the real app in a subprocess, driven by a real headless Chromium through Playwright.

The app runs the tiny official-format model (``tests/fixtures/golden/model``); its answers are
random-weight gibberish, so the grounding run checks that *whatever* comes back is shown (a clip when
the answer has a moment, a friendly line otherwise), while the "Visualise an answer" run pastes the
synthetic clip's true answer and checks the clip really is the moment asked for.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SYN_A = REPO / "tests" / "fixtures" / "synthetic" / "syn_a_640x360_25fps_tone.mp4"
# Set STCHAT_SCREENSHOT_DIR to keep full-page screenshots of each run (docs/screenshot_app.png is one).
_SHOTS = os.environ.get("STCHAT_SCREENSHOT_DIR")
SCREENSHOT_DIR = Path(_SHOTS) if _SHOTS else None

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip("headless Chromium not found at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
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


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = _free_port()
    work = tmp_path_factory.mktemp("app") / "work"  # absent: the app creates it and must remove it
    env = dict(os.environ, STCHAT_MODEL=str(REPO / "tests" / "fixtures" / "golden" / "model"),
               GRADIO_ANALYTICS_ENABLED="False")
    env.pop("GRADIO_TEMP_DIR", None)
    log_path = work.parent / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--work-dir", str(work)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_http(url, proc, timeout_s=120)
        yield url, work
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        print(log_path.read_text(errors="replace")[-4000:])
    # Per-session outputs and Gradio's cache live under the work dir, and a clean stop deletes it.
    assert not work.exists(), f"the app left its work folder behind: {sorted(work.rglob('*'))[:5]}"


@pytest.fixture(scope="module")
def page(app_server: tuple[str, Path]) -> Iterator[Page]:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 1100})
        pg.set_default_timeout(60_000)
        pg.goto(app_server[0])
        yield pg
        browser.close()


def _shot(page: Page, name: str) -> None:
    if SCREENSHOT_DIR is not None:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / name), full_page=True)


def _wait_status(page: Page, selector: str, timeout_ms: int, previous: str = "") -> str:
    """Wait until the run's status line says done (✔) or failed (✖), and differs from ``previous``."""
    page.wait_for_function(
        "([sel, old]) => { const e = document.querySelector(sel);"
        " return e && /[✔✖]/.test(e.innerText) && e.innerText !== old; }",
        arg=[selector, previous], timeout=timeout_ms)
    return page.locator(selector).inner_text()


def _video_duration(page: Page, selector: str, expected: float, tol: float) -> float:
    """Wait until the browser has decoded the served video and its duration is ``expected`` ± ``tol``.

    Waiting on the value (not just on metadata) matters: after a second run the element briefly still
    holds the previous video.
    """
    js_duration = "sel => { const v = document.querySelector(sel + ' video'); return v ? v.duration : null; }"
    try:
        page.wait_for_function(
            "([sel, want, tol]) => { const v = document.querySelector(sel + ' video');"
            " return v && v.readyState >= 1 && Math.abs(v.duration - want) < tol; }",
            arg=[selector, expected, tol], timeout=30_000)
    except playwright_sync.TimeoutError:
        raise AssertionError(f"{selector}: duration {page.evaluate(js_duration, selector)} s, "
                             f"expected {expected} ± {tol} s") from None
    return float(page.evaluate(js_duration, selector))


def _timing_rows(page: Page, selector: str) -> list[str]:
    """Text of each body row of the timing table (Gradio's Dataframe is an ARIA grid; row 0 is the header)."""
    rows = page.evaluate(
        "sel => [...document.querySelectorAll(sel + ' [role=row]')]"
        ".map(r => r.innerText.replace(/\\s+/g, ' '))", selector)
    return [str(r) for r in rows[1:]]


def _true_answer_syn_a() -> tuple[str, float]:
    """The red square's real interval and boxes in the model's token syntax, and that interval in seconds."""
    gt = json.loads(SYN_A.with_suffix(".json").read_text())
    n = gt["n_frames"]
    track = {t["frame"]: t for t in gt["objects"][0]["track"]}
    first, last = gt["objects"][0]["visible_interval"]["first_frame"], gt["objects"][0]["visible_interval"][
        "last_frame"]
    s, e = round(first / (n - 1) * 99), round(last / (n - 1) * 99)
    pairs = []
    for k in range(s, e + 1, 10):
        frame = round(k / 99 * (n - 1))
        if frame in track:
            q = [round(v * 99) for v in track[frame]["box_norm"]]
            pairs.append(f"<TEMP-{k:03d}>: [<WIDTH-{q[0]:03d}><HEIGHT-{q[1]:03d}><WIDTH-{q[2]:03d}>"
                         f"<HEIGHT-{q[3]:03d}>]")
    span_s = (round(e / 99 * (n - 1)) - round(s / 99 * (n - 1)) + 1) / gt["fps_float"]
    return f"{{<TEMP-{s:03d}><TEMP-{e:03d}>}} " + ", ".join(pairs), span_s


def test_page_starts_and_reports_model_status(page: Page) -> None:
    page.wait_for_function(
        "() => { const e = document.querySelector('#model-status');"
        " return e && /ready|cannot be used/.test(e.innerText); }",
        timeout=120_000)
    status = page.locator("#model-status").inner_text()
    assert "ready" in status, f"the tiny model should load: {status}"
    placeholder = page.locator("#query textarea").get_attribute("placeholder")
    page.get_by_label("Describe").check()
    page.wait_for_function(
        "old => { const e = document.querySelector('#query textarea'); return e && e.placeholder !== old; }",
        arg=placeholder)
    page.get_by_label("Grounding + auto-clip").check()


def test_upload_run_model_and_get_clip(page: Page) -> None:
    """Upload syn_a, ask the model (task TR: describe 2–7 s), get a playable clip of that moment."""
    page.locator("#input-video input[type=file]").set_input_files(str(SYN_A))
    page.get_by_text("Advanced options").click()
    page.locator("#task input").click()
    page.get_by_role("option", name="tr", exact=True).click()
    page.locator("#time-span textarea").fill("2, 7")
    tokens = page.locator("#max-new-tokens input[type=number]")
    tokens.fill("32")
    tokens.press("Enter")
    page.locator("#run-btn").click()
    status = _wait_status(page, "#status", timeout_ms=300_000)
    _shot(page, "ground.png")
    assert "✔" in status, status
    assert page.locator("#raw-out textarea").input_value().strip(), "the model's answer is not shown"
    # Tokens quantise time to 1/99 of the 10 s video: the clip is 5 s give or take ~0.1 s.
    _video_duration(page, "#clip-out", 5.0, 0.2)
    _video_duration(page, "#annotated-out", 10.0, 0.2)
    rows = _timing_rows(page, "#timing-out")
    assert rows and rows[0].startswith("segment") and "00:00:02.000" in rows[0], rows


def test_visualise_pasted_answer(page: Page) -> None:
    answer, span_s = _true_answer_syn_a()
    page.get_by_role("tab", name="Visualise an answer").click()
    page.locator("#vis-video input[type=file]").set_input_files(str(SYN_A))
    page.locator("#vis-answer textarea").fill(answer)
    page.locator("#vis-btn").click()
    status = _wait_status(page, "#vis-status", timeout_ms=180_000)
    assert "✔" in status, status
    # The clip is the answered moment (about 5 s of a 10 s video), not the whole video.
    _video_duration(page, "#vis-clip-out", span_s, 0.2)
    _video_duration(page, "#vis-annotated-out", 10.0, 0.2)
    rows = _timing_rows(page, "#vis-timing-out")
    # One segment row (the red square shows from 2 s to 7 s) and one row per pasted box.
    assert len(rows) == 1 + answer.count("<TEMP-") - 2, rows
    assert rows[0].startswith("segment") and "00:00:02.000" in rows[0], rows[0]
    page.locator("#vis-clip-out").scroll_into_view_if_needed()
    _shot(page, "visualise.png")


def test_example_from_assets_fills_and_renders(page: Page) -> None:
    """Clicking a shipped example loads its video (served from assets/) and true answer; it renders."""
    example = json.loads((REPO / "assets" / "examples.json").read_text())["examples"][0]
    page.get_by_role("tab", name="Visualise an answer").click()
    previous = page.locator("#vis-status").inner_text()
    page.get_by_role("button", name=example["title"]).last.click()
    page.wait_for_function(
        "want => { const e = document.querySelector('#vis-answer textarea'); return e && e.value === want; }",
        arg=example["example_answer"])
    page.locator("#vis-btn").click()
    status = _wait_status(page, "#vis-status", timeout_ms=120_000, previous=previous)
    assert "✔" in status and "5 boxes" in status, status
    _video_duration(page, "#vis-annotated-out", 8.0, 0.2)  # the 8 s asset, not syn_a


def test_only_app_files_are_served(app_server: tuple[str, Path]) -> None:
    """Gradio's file route serves the shipped assets, and nothing else from the repo or the system."""
    url = app_server[0]

    def status(path: Path) -> int:
        try:
            with urllib.request.urlopen(f"{url}gradio_api/file={path}", timeout=10) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    assert status(REPO / "assets" / "green_flash.mp4") == 200
    for refused in (Path("/etc/passwd"), REPO / "pyproject.toml", REPO / "assets" / ".." / "pyproject.toml",
                    REPO / "tests" / "fixtures" / "golden" / "model" / "config.json"):
        assert status(refused) in (403, 404), refused
