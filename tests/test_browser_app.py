"""End-to-end: the real app in a subprocess, driven by a real headless Chromium through Playwright.

The app runs the tiny official-format model (``tests/fixtures/golden/model``); its answers are
random-weight gibberish, so model runs check what the page does around them (modes, panels, the asked
span cut exactly, Cancel), while the "Visualise an answer" run pastes the synthetic clip's true answer
and checks the clip really is the moment asked for. One app serves every test; a second browser
context checks that a closed session's files are gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Page

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SYN_A = REPO / "tests" / "fixtures" / "synthetic" / "syn_a_640x360_25fps_tone.mp4"
EXAMPLES = json.loads((REPO / "assets" / "examples.json").read_text())["examples"]
GROUNDING, DESCRIBE = "spatio-temporal grounding (auto-clip)", "plain description"
COLUMNS = ["what", "start", "end", "duration", "frames", "box (px)"]
# Set STCHAT_SCREENSHOT_DIR to keep full-page screenshots of each run (docs/screenshot_app.png is one).
_SHOTS = os.environ.get("STCHAT_SCREENSHOT_DIR")
SCREENSHOT_DIR = Path(_SHOTS) if _SHOTS else None

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip("headless Chromium not found at /usr/bin/chromium (apt-get install chromium)",
                allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")


from tests.app_process import free_port as _free_port  # noqa: E402
from tests.app_process import stop_app as _stop_app  # noqa: E402
from tests.app_process import wait_http as _wait_http  # noqa: E402


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
        _wait_http(url, proc, timeout_s=300)  # a loaded 2-core machine can take minutes
        yield url, work
    finally:
        _stop_app(proc, log_path)
    # Per-session outputs and Gradio's cache live under the work dir, and a clean stop deletes it.
    assert not work.exists(), f"the app left its work folder behind: {sorted(work.rglob('*'))[:5]}"


@pytest.fixture(scope="module")
def browser(app_server: tuple[str, Path]) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(app_server: tuple[str, Path], browser: Any) -> Iterator[Page]:
    pg = browser.new_page(viewport={"width": 1280, "height": 1100})
    pg.set_default_timeout(60_000)
    pg.goto(app_server[0])
    yield pg
    pg.close()


def _shot(page: Page, name: str) -> None:
    if SCREENSHOT_DIR is not None:
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT_DIR / name), full_page=True)


def _wait_status(page: Page, selector: str, timeout_ms: int, previous: str = "") -> str:
    """Wait until the run's status line says done (✔) or failed (✖), and differs from ``previous``.

    Reads the status text itself (the live region), not the progress overlay drawn over it.
    """
    text = ("sel => { const e = document.querySelector(sel + ' [role=status]')"
            " || document.querySelector(sel); return e ? e.innerText : ''; }")
    page.wait_for_function(
        f"([sel, old]) => {{ const t = ({text})(sel); return /[✔✖]/.test(t) && t !== old; }}",
        arg=[selector, previous], timeout=timeout_ms)
    return str(page.evaluate(text, selector))


def _status_text(page: Page, selector: str) -> str:
    return str(page.locator(f"{selector} [role=status]").inner_text())


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


def _visible(page: Page, selector: str) -> bool:
    return bool(page.locator(selector).first.is_visible())


def _example(title: str) -> dict:
    return next(e for e in EXAMPLES if e["title"] == title)


def _description(ex: dict) -> str:
    """What the example puts in the question box: its plain description, never the long template."""
    return str(ex.get("description") or ex["title"][0].lower() + ex["title"][1:])


def _headers(page: Page, selector: str) -> list[str]:
    return [str(h).strip() for h in page.evaluate(
        "sel => [...document.querySelectorAll(sel + ' thead th')].map(h => h.innerText)", selector)]


def _set_tokens(page: Page, n: int) -> None:
    if not page.locator("#max-new-tokens").is_visible():
        page.locator("#advanced .label-wrap").click()
    tokens = page.locator("#max-new-tokens input[type=number]")
    tokens.fill(str(n))
    tokens.press("Enter")


def _fetch_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_page_model_line_modes_and_accessibility(page: Page) -> None:
    page.wait_for_function(
        "() => { const e = document.querySelector('#model-status');"
        " return e && /ready|cannot be used/.test(e.innerText); }",
        timeout=120_000)
    status = page.locator("#model-status").inner_text()
    assert "ready" in status and "Model" in status, f"the tiny model should load: {status}"
    body = page.locator("body").inner_text()
    assert str(REPO) not in body and "/tmp" not in body, "server paths are shown to visitors"
    labels = page.locator("#mode label").all_inner_texts()
    assert [t.strip() for t in labels] == [GROUNDING, DESCRIBE]
    query = page.locator("#query textarea")
    assert query.input_value() == "" and "find" in (query.get_attribute("placeholder") or "")
    # Screen readers: status lines are live regions, answer boxes have names.
    live = page.locator("#model-status [role=status][aria-live=polite]")
    assert live.count() == 1 and "ready" in live.inner_text()
    assert page.locator("#status [role=status][aria-live=polite]").count() == 1
    assert page.get_by_role("textbox", name="Model answer", exact=True).count() >= 1
    assert page.get_by_role("textbox", name="Question").count() == 1
    assert _headers(page, "#timing-out") == COLUMNS  # the empty table has the filled table's columns


def test_modes_keep_their_own_text_and_panels(page: Page) -> None:
    query = page.locator("#query textarea")
    query.fill("a red square")
    grounding_only = ["#task", "#clip-out", "#timing-out", "#files-out", "#norm-out"]
    assert all(_visible(page, s) for s in grounding_only)
    page.get_by_label(DESCRIBE).check()
    page.wait_for_function("() => { const e = document.querySelector('#timing-out');"
                           " return !e || !e.checkVisibility(); }")
    # The grounding text must not be carried into description mode.
    page.wait_for_function("() => document.querySelector('#query textarea').value === ''")
    assert "empty" in (query.get_attribute("placeholder") or "").lower()
    assert not any(_visible(page, s) for s in grounding_only)
    query.fill("what colour is it?")
    page.get_by_label(GROUNDING).check()
    page.wait_for_function("() => { const e = document.querySelector('#timing-out');"
                           " return e && e.checkVisibility(); }")
    page.wait_for_function("() => document.querySelector('#query textarea').value === 'a red square'")
    page.get_by_label(DESCRIBE).check()
    page.wait_for_function("() => document.querySelector('#query textarea').value === 'what colour is it?'")
    page.get_by_label(GROUNDING).check()


def test_example_shows_a_description_and_sets_the_visible_task(page: Page) -> None:
    ex = _example("A green square appears in the middle")
    page.get_by_role("button", name=ex["title"]).first.click()
    page.wait_for_function("want => document.querySelector('#query textarea').value === want",
                           arg=_description(ex))
    assert _visible(page, "#task") and "(tvg)" in page.locator("#task input").input_value()
    assert page.locator("#mode input:checked").get_attribute("value") == GROUNDING
    page.wait_for_selector("#input-video video")


def test_describe_with_an_empty_question_runs_on_enter(page: Page) -> None:
    """The example's video is loaded; description mode, nothing typed, Enter: a description comes back."""
    page.get_by_label(DESCRIBE).check()
    # Description mode gives back its own earlier text (from the test above); the user clears it.
    page.wait_for_function("() => document.querySelector('#query textarea').value === 'what colour is it?'")
    page.locator("#query textarea").fill("")
    _set_tokens(page, 16)
    previous = _status_text(page, "#status")
    page.locator("#query textarea").press("Enter")
    status = _wait_status(page, "#status", timeout_ms=180_000, previous=previous)
    assert "✔" in status and "Described" in status, status
    assert page.locator("#raw-out textarea").input_value().strip()
    assert not _visible(page, "#clip-out")
    page.get_by_label(GROUNDING).check()


def test_cancel_stops_generation_and_frees_the_model(page: Page) -> None:
    page.locator("#query textarea").fill("a green square")
    _set_tokens(page, 2048)
    page.locator("#run-btn").click()
    page.wait_for_function("() => /Generating the answer/.test(document.body.innerText)", timeout=120_000)
    t0 = time.monotonic()
    page.locator("#cancel-btn").click()
    page.wait_for_function("() => /Cancelled/.test("
                           "document.querySelector('#status [role=status]').innerText)", timeout=30_000)
    # The model is free again: a short run right after finishes (it would queue behind 2048 tokens).
    _set_tokens(page, 16)
    page.locator("#run-btn").click()
    status = _wait_status(page, "#status", timeout_ms=120_000, previous="✖ Cancelled.")
    assert "Cancelled" not in status, status
    assert time.monotonic() - t0 < 90


def test_seconds_span_is_cut_exactly(page: Page) -> None:
    """TR on the 15 fps example, "1, 3" s: the clip is 1.000 → 3.000 s (frames 15–44), 2 s long."""
    ex = _example("A blue ball rolling to the right")
    assert ex["fps"] == 15
    page.get_by_role("button", name=ex["title"]).first.click()
    page.wait_for_function("want => document.querySelector('#query textarea').value === want",
                           arg=_description(ex))
    assert not _visible(page, "#time-span")
    page.locator("#task input").click()
    page.get_by_role("option", name="describe a time span you give (tr)").click()
    page.wait_for_selector("#time-span textarea")
    page.locator("#time-span textarea").fill("1, 3")
    _set_tokens(page, 16)
    previous = _status_text(page, "#status")
    page.locator("#run-btn").click()
    status = _wait_status(page, "#status", timeout_ms=180_000, previous=previous)
    _shot(page, "ground.png")
    assert "✔" in status and "1.000 → 3.000" in status, status
    rows = _timing_rows(page, "#timing-out")
    assert rows[0].split()[:5] == ["segment", "1.000", "3.000", "2.000", "15–44"], rows[0]
    assert _headers(page, "#timing-out") == COLUMNS
    _video_duration(page, "#clip-out", 2.0, 0.1)
    assert not _visible(page, "#annotated-out"), "the full video is an option, off by default"


def test_status_text_is_escaped(page: Page, tmp_path: Path) -> None:
    bad = tmp_path / "**bold** [link](evil.example).mp4"
    bad.write_bytes(b"not a video" * 100)
    clear = page.locator("#input-video").get_by_label("Clear")
    if clear.count():  # an example's video is loaded: remove it to get the upload box back
        clear.first.click()
    page.locator("#input-video input[type=file]").set_input_files(str(bad))
    page.locator("#query textarea").fill("anything")
    previous = _status_text(page, "#status")
    page.locator("#run-btn").click()
    status = _wait_status(page, "#status", timeout_ms=60_000, previous=previous)
    assert "✖" in status and "[link](evil.example)" in status, status
    assert page.locator("#status a, #status strong, #status b").count() == 0


def test_visualise_pasted_answer(page: Page) -> None:
    answer, span_s = _true_answer_syn_a()
    page.get_by_role("tab", name="Visualise an answer").click()
    page.locator("#vis-video input[type=file]").set_input_files(str(SYN_A))
    page.locator("#vis-answer textarea").fill(answer)
    page.locator("#vis-btn").click()
    status = _wait_status(page, "#vis-status", timeout_ms=180_000)
    assert "✔" in status, status
    _video_duration(page, "#vis-clip-out", span_s, 0.2)
    # The clip's player carries the found moment as a WebVTT track (clip.vtt, on the clip's clock).
    track = page.locator("#vis-clip-out video track")
    assert track.count() == 1 and ".vtt" in str(track.get_attribute("src")), track.count()
    rows = _timing_rows(page, "#vis-timing-out")
    kinds = [r.split()[0] + (" box" if r.startswith("model") else "") for r in rows]
    # (The grid is virtual: only the rows on screen are in the page, so no row count here.)
    assert kinds[:2] == ["segment", "model box"], rows
    assert "interpolated" in kinds, "sampled frames between the model's boxes are marked"
    seg = rows[0].split()
    assert seg[1] == "2.000" and "–" in seg[4], rows[0]  # first and last frame in the segment row
    # An svg answer with a span and no boxes found nothing: it must not say "Found".
    page.locator("#vis-answer textarea").fill("{<TEMP-010><TEMP-020>}")
    page.locator("#vis-task input").click()
    page.get_by_role("option", name="where, in a time span you give (svg)").click()
    page.locator("#vis-btn").click()
    status = _wait_status(page, "#vis-status", timeout_ms=120_000, previous=status)
    assert "Found" not in status and "No boxes" in status, status
    page.get_by_role("tab", name="Ask the model").click()


def test_phone_width_stacks_and_shows_every_column(app_server: tuple[str, Path], browser: Any) -> None:
    pg = browser.new_page(viewport={"width": 400, "height": 900})
    pg.set_default_timeout(60_000)
    pg.goto(app_server[0])
    pg.get_by_role("tab", name="Visualise an answer").click()
    ex = EXAMPLES[0]
    pg.get_by_role("button", name=ex["title"]).last.click()
    pg.wait_for_selector("#vis-video video")
    pg.locator("#vis-btn").click()
    status = _wait_status(pg, "#vis-status", timeout_ms=120_000)
    assert "✔" in status, status
    video, answer = pg.locator("#vis-video").bounding_box(), pg.locator("#vis-answer").bounding_box()
    assert video and answer and answer["y"] >= video["y"] + video["height"] - 1, "inputs do not stack"
    right = pg.evaluate("() => Math.max(...[...document.querySelectorAll('#vis-timing-out th')]"
                        ".map(h => h.getBoundingClientRect().right))")
    assert right <= 400, f"table columns run off a 400 px screen (right edge {right:.0f} px)"
    pg.locator("#vis-clip-out").scroll_into_view_if_needed()
    _shot(pg, "phone.png")
    pg.close()


def test_closed_session_leaves_nothing_servable(app_server: tuple[str, Path], browser: Any) -> None:
    """Upload, render, close the tab: the upload and the outputs are gone from disk and from HTTP."""
    url, work = app_server
    # A file no other (still open) session uploaded: a shared upload rightly outlives one session.
    video = REPO / "tests" / "fixtures" / "synthetic" / "syn_c_640x360_30fps_noaudio_longgop.mp4"
    answer = "{<TEMP-010><TEMP-050>} <TEMP-010>: [<WIDTH-010><HEIGHT-010><WIDTH-020><HEIGHT-020>]"
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(url)
    pg.get_by_role("tab", name="Visualise an answer").click()
    pg.locator("#vis-video input[type=file]").set_input_files(str(video))
    pg.locator("#vis-answer textarea").fill(answer)
    pg.locator("#vis-btn").click()
    assert "✔" in _wait_status(pg, "#vis-status", timeout_ms=180_000)
    srcs = [pg.locator(f"{sel} video").get_attribute("src") for sel in ("#vis-video", "#vis-clip-out")]
    links = [str(s) if str(s).startswith("http") else url.rstrip("/") + str(s) for s in srcs if s]
    assert len(links) == 2 and all(_fetch_status(u) == 200 for u in links), links
    files = [Path(u.split("file=", 1)[1]) for u in links]
    assert all(f.is_relative_to(work) for f in files), files
    context.close()  # the tab closes: Gradio's unload event ends the session
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and any(f.exists() for f in files):
        time.sleep(0.5)
    assert not any(f.exists() for f in files), [f for f in files if f.exists()]
    codes = [_fetch_status(u) for u in links]
    assert all(c in (403, 404) for c in codes), f"a closed session's files are still served: {codes}"


def test_queue_request_without_session_id_is_refused_cleanly(app_server: tuple[str, Path]) -> None:
    req = urllib.request.Request(f"{app_server[0]}gradio_api/queue/join", method="POST",
                                 data=json.dumps({"data": [], "fn_index": 0, "session_hash": ""}).encode(),
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400 and b"session_hash" in err.value.read()


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
