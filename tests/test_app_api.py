"""The running app's API page lists exactly its public endpoints (issue #12): ``/ground`` and ``/visualise``.

The real app runs in a subprocess (tiny official-format model). Its API description is read the two ways
a client reads it -- Gradio's ``/gradio_api/info`` route (with and without undocumented endpoints) and
``gradio_client`` -- and the public ``/visualise`` endpoint is called through the client with the synthetic
clip's true answer, so the listed endpoint is the working one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app_process import free_port, stop_app, wait_http

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SYN_C = REPO / "tests" / "fixtures" / "synthetic" / "syn_c_640x360_30fps_noaudio_longgop.mp4"
PUBLIC = {"/ground", "/visualise"}
GROUND_PARAMS = ["video", "query", "mode", "task", "frange", "span", "decoding", "max_new_tokens", "full"]
VISUALISE_PARAMS = ["video", "answer", "answer_file", "task", "frange", "full"]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    work = tmp_path_factory.mktemp("app") / "work"
    env = dict(os.environ, STCHAT_MODEL=str(REPO / "tests" / "fixtures" / "golden" / "model"),
               GRADIO_ANALYTICS_ENABLED="False")
    env.pop("GRADIO_TEMP_DIR", None)
    log_path = work.parent / "app.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--work-dir", str(work)],
                                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, proc, timeout_s=300)  # a loaded 2-core machine can take minutes
        yield url
    finally:
        stop_app(proc, log_path, tail=3000)


def _info(url: str, query: str = "") -> dict:
    with urllib.request.urlopen(f"{url}gradio_api/info{query}", timeout=30) as r:
        return json.loads(r.read())


def _file_of(value: object) -> Path | None:
    """The downloaded file of a client output (a path, or a dict holding one: video, value or path)."""
    while isinstance(value, dict):
        value = value.get("video") or value.get("value") or value.get("path")
    return Path(value) if isinstance(value, str) else None


def test_api_info_lists_exactly_the_public_endpoints(app_url: str) -> None:
    for query in ("", "?all_endpoints=true"):  # undocumented endpoints included: still only the two
        info = _info(app_url, query)
        assert set(info["named_endpoints"]) == PUBLIC, (query, sorted(info["named_endpoints"]))
        assert not info.get("unnamed_endpoints"), query
    named = _info(app_url)["named_endpoints"]
    assert [p["parameter_name"] for p in named["/ground"]["parameters"]] == GROUND_PARAMS
    assert [p["parameter_name"] for p in named["/visualise"]["parameters"]] == VISUALISE_PARAMS


def test_gradio_client_sees_and_calls_only_the_public_endpoints(app_url: str, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file

    client = Client(app_url, verbose=False, download_files=str(tmp_path))
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == PUBLIC and not api["unnamed_endpoints"]
    with pytest.raises(ValueError):
        client.predict(api_name="/on_run")  # the page's own handlers are not reachable by name
    # the synthetic clip's target: visible frames -> token span and one keyframe box
    gt = json.loads(SYN_C.with_suffix(".json").read_text())
    target = next(o for o in gt["objects"] if o["role"] == "target")
    n = gt["n_frames"]
    first, last = target["visible_interval"]["first_frame"], target["visible_interval"]["last_frame"]
    s, e = round(first / (n - 1) * 99), round(last / (n - 1) * 99)
    frame = round(s / 99 * (n - 1))
    box = min(target["track"], key=lambda t: abs(t["frame"] - frame))["box_norm"]
    q = [round(v * 99) for v in box]
    answer = (f"{{<TEMP-{s:03d}><TEMP-{e:03d}>}} <TEMP-{s:03d}>: "
              f"[<WIDTH-{q[0]:03d}><HEIGHT-{q[1]:03d}><WIDTH-{q[2]:03d}><HEIGHT-{q[3]:03d}>]")
    status, clip, _annotated, table, _raw, _norm, files = client.predict(
        handle_file(str(SYN_C)), answer, None, "stvg", "", False, api_name="/visualise")
    assert "✔" in status, status
    clip_path = _file_of(clip)
    assert clip_path is not None and clip_path.name == "clip.mp4" and clip_path.stat().st_size > 0, clip
    assert table["data"][0][0] == "segment"
    assert {Path(f).name for f in files} >= {"clip.mp4", "segment.vtt", "boxes_mot.csv"}
