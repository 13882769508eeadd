"""The app on a fresh machine: no STCHAT_MODEL, no GPU -> the embedded demo model, grounding in Chromium.

The page must say that the demo model runs and what it is for; an example clip grounded in STVG mode must
give a clip whose first/last frames are within two sampling quanta of the truth, and boxes (timing table)
that overlap the target's pixels in the clip file the page serves (IoU >= 0.5 on average).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from stchat.model.choice import demo_model_dir

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXAMPLES = json.loads((REPO / "assets" / "examples.json").read_text())["examples"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.is_file():
    pytest.skip("headless Chromium not found at /usr/bin/chromium", allow_module_level=True)
if not (demo_model_dir() / "model.safetensors").is_file():
    pytest.skip("the demo model is not built (bash scripts/train_demo.sh)", allow_module_level=True)
playwright_sync = pytest.importorskip("playwright.sync_api")

from tests.test_browser_app import (  # noqa: E402
    _free_port,
    _stop_app,
    _timing_rows,
    _wait_http,
    _wait_status,
)


@pytest.fixture(scope="module")
def url(tmp_path_factory) -> Iterator[str]:
    port = _free_port()
    work = tmp_path_factory.mktemp("demoapp") / "work"
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", CUDA_VISIBLE_DEVICES="")
    env.pop("STCHAT_MODEL", None)
    env.pop("GRADIO_TEMP_DIR", None)
    log_path = work.parent / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--work-dir", str(work)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc, timeout_s=120)
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop_app(proc, log_path, tail=3000)


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / union if union > 0 else 0.0


def test_page_says_the_demo_model_runs(url: str) -> None:
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.wait_for_function("() => /ready|cannot be used/.test("
                               "(document.querySelector('#model-status') || {}).innerText || '')",
                               timeout=120_000)
        status = page.locator("#model-status").inner_text()
        browser.close()
    assert "ready" in status and "synthetic shapes only" in status and "LLaVA-ST-Qwen2-7B" in status, status


@pytest.mark.xfail(
    # Strict: once the model meets the floors this fails, so the marker must go. Only an assertion counts
    # as the expected failure; a crash still fails the test.
    strict=True, raises=AssertionError, reason="demo model under-trained: issue #9 floors not met yet",
)
def test_demo_model_grounds_an_example_in_the_browser(url: str, tmp_path: Path) -> None:
    from stchat.demo.world import COLOURS
    from stchat.video.io import read_frames

    ex = next(e for e in EXAMPLES if e["task"] == "stvg")
    gt = ex["ground_truth"]
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.wait_for_function("() => /ready|cannot be used/.test("
                               "(document.querySelector('#model-status') || {}).innerText || '')",
                               timeout=120_000)
        status = page.locator("#model-status").inner_text()
        assert "ready" in status and "synthetic shapes only" in status, status
        page.get_by_role("button", name=ex["title"]).first.click()
        page.wait_for_selector("#input-video video")
        page.locator("#query textarea").fill(ex["description"])
        previous = page.locator("#status").inner_text()
        page.locator("#run-btn").click()
        done = _wait_status(page, "#status", timeout_ms=240_000, previous=previous)
        assert "✔" in done, done
        rows = _timing_rows(page, "#timing-out")
        src = page.evaluate("() => document.querySelector('#clip-out video').src")
        browser.close()
    seg = rows[0].split()
    first, last = (int(v) for v in re.split("[–-]", seg[4]))
    quantum = (ex["n_frames"] - 1) / 99
    assert abs(first - gt["first_frame"]) <= 2 * quantum + 1, (first, gt)
    assert abs(last - gt["last_frame"]) <= 2 * quantum + 1, (last, gt)
    clip = tmp_path / "clip.mp4"
    with urllib.request.urlopen(src, timeout=30) as r:
        clip.write_bytes(r.read())
    boxes = []  # (frame, [x1, y1, x2, y2] px) from the table's keyframe rows
    for row in rows[1:]:
        if not row.strip().startswith("model"):
            continue  # interpolated rows are the page's drawing, not the model's answer
        nums = re.findall(r"-?\d+(?:\.\d+)?", row)
        m = re.search(r"(\d+)\s*[,;]\s*(\d+)\s*[,;]\s*(\d+)\s*[,;]\s*(\d+)", row)
        if m and nums:
            frame = next((int(n) for n in nums if n.isdigit() and first <= int(n) <= last), None)
            if frame is not None:
                boxes.append((frame, [float(v) for v in m.groups()]))
    assert boxes, rows
    colour = np.array(COLOURS[ex["description"].split()[1]])
    picks = boxes[:: max(1, len(boxes) // 6)]
    frames = read_frames(clip, [f - first for f, _ in picks])
    ious = []
    for (_, box), rgb in zip(picks, frames, strict=True):
        ys, xs = np.nonzero((np.abs(rgb.astype(int) - colour) <= 45).all(-1))
        if len(xs) >= 20:
            ious.append(_iou(box, [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]))
    assert ious and float(np.mean(ious)) >= 0.5, (ious, rows[:4])
