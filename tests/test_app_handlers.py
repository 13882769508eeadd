"""The web app's logic without a browser: input checks, model status, sessions, answer files.

Handlers are called exactly as the page calls them; what the user would see is the ``status`` line,
so the tests assert on it (friendly one-liner, never a traceback).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from stchat.errors import ModelLoadError, StchatError
from stchat.ui import handlers, present
from stchat.ui.config import DEFAULT_HOST, DEFAULT_PORT, parse_config
from stchat.ui.model_holder import ModelHolder, ModelUnavailableError, explain_load_failure
from stchat.ui.sessions import SessionStore

SYN_A = "syn_a_640x360_25fps_tone.mp4"
ASSETS = Path(__file__).resolve().parents[1] / "assets"


def _assert_friendly(status: str) -> None:
    assert status.startswith(handlers.FAIL + " ")
    assert "Traceback" not in status and "\n  File " not in status
    assert len(status.splitlines()[0]) < 400


# --------------------------------------------------------------------------- bad input → status line


def test_no_video_is_a_friendly_message(tmp_path: Path) -> None:
    holder = ModelHolder("unused", loader=lambda: pytest.fail("the model must not load for bad input"))
    r = handlers.run_model(holder, None, "find it", handlers.GROUNDING, "stvg", "", "greedy", 64, tmp_path)
    _assert_friendly(r.status)
    assert "no video" in r.status
    assert holder.status().state == "idle"


def test_not_a_video_is_a_friendly_message(tmp_path: Path) -> None:
    fake = tmp_path / "holiday.mp4"
    fake.write_bytes(b"this is not a video at all" * 100)
    holder = ModelHolder("unused", loader=lambda: pytest.fail("the model must not load for bad input"))
    r = handlers.run_model(holder, str(fake), "find it", handlers.GROUNDING, "stvg", "", "greedy", 64,
                           tmp_path)
    _assert_friendly(r.status)
    assert r.clip is None and r.annotated is None and not r.table
    v = handlers.visualise_answer(str(fake), "{<TEMP-010><TEMP-020>}", None, "tvg", "", tmp_path)
    _assert_friendly(v.status)


def test_frame_range_past_the_end(synthetic_dir: Path, tmp_path: Path) -> None:
    r = handlers.visualise_answer(str(synthetic_dir / SYN_A), "{<TEMP-010><TEMP-020>}", None, "tvg",
                                  "0, 250", tmp_path)  # the clip has frames 0..249
    _assert_friendly(r.status)
    assert "249" in r.status


@pytest.mark.parametrize(
    ("query", "mode", "task", "decoding", "tokens", "needle"),
    [("", handlers.GROUNDING, "stvg", "greedy", 64, "description of what to find"),
     ("x" * 5000, handlers.GROUNDING, "stvg", "greedy", 64, "characters"),
     ("find", "Telepathy", "stvg", "greedy", 64, "mode"),
     ("find", handlers.GROUNDING, "rec", "greedy", 64, "task"),
     ("find", handlers.GROUNDING, "stvg", "beam", 64, "decoding"),
     ("find", handlers.GROUNDING, "stvg", "greedy", 0, "max new tokens")],
)
def test_bad_options_are_friendly(synthetic_dir: Path, tmp_path: Path, query: str, mode: str, task: str,
                                  decoding: str, tokens: int, needle: str) -> None:
    holder = ModelHolder("unused", loader=lambda: pytest.fail("the model must not load for bad input"))
    video = str(synthetic_dir / SYN_A)
    r = handlers.run_model(holder, video, query, mode, task, "", decoding, tokens, tmp_path)
    _assert_friendly(r.status)
    assert needle in r.status


def test_visualise_without_answer_or_with_garbage(synthetic_dir: Path, tmp_path: Path) -> None:
    video = str(synthetic_dir / SYN_A)
    empty = handlers.visualise_answer(video, "  ", None, "stvg", "", tmp_path)
    _assert_friendly(empty.status)
    assert "no answer" in empty.status
    garbage = handlers.visualise_answer(video, "I think it is over there", None, "stvg", "", tmp_path)
    _assert_friendly(garbage.status)
    assert "nothing to draw" in garbage.status


def test_unexpected_exception_becomes_status_line(tmp_path: Path) -> None:
    @handlers.guarded
    def broken() -> handlers.RunResult:
        raise ZeroDivisionError("division by zero\nsecond line")

    r = broken()
    _assert_friendly(r.status)
    assert "ZeroDivisionError" in r.status and "second line" not in r.status


# --------------------------------------------------------------------------- model status


def test_missing_weights_give_a_failed_status_and_the_run_says_why(synthetic_dir: Path,
                                                                   tmp_path: Path) -> None:
    holder = ModelHolder(str(tmp_path / "no-such-model"))  # the real loader, pointed at nothing
    holder.start()
    st = holder.wait(timeout=120)
    assert st.state == "failed" and st.settled
    assert "Visualise an answer" in st.text()
    assert "Traceback" not in st.message
    r = handlers.run_model(holder, str(synthetic_dir / SYN_A), "find the red square", handlers.GROUNDING,
                           "stvg", "", "greedy", 32, tmp_path)
    _assert_friendly(r.status)
    assert "not available" in r.status


def test_get_starts_a_lazy_load_and_reports_loading() -> None:
    release = []

    def slow_loader() -> str:
        deadline = time.monotonic() + 10
        while not release and time.monotonic() < deadline:
            time.sleep(0.01)
        return "the model"

    holder = ModelHolder("slow", loader=slow_loader)
    assert holder.status().state == "idle"
    with pytest.raises(ModelUnavailableError, match="loading"):
        holder.get()
    assert holder.status().state == "loading"
    release.append(True)
    assert holder.wait(timeout=10).state == "ready"
    assert holder.get() == "the model"
    assert "ready" in holder.status().text()


@pytest.mark.parametrize(
    ("exc", "needle"),
    [(ModelLoadError("config.json missing in /m"), "config.json missing"),
     (OSError("We couldn't connect to 'https://huggingface.co'"), "offline"),
     (RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "GPU memory"),
     (ValueError("bad\nmore"), "ValueError: bad")],
)
def test_explain_load_failure(exc: BaseException, needle: str) -> None:
    text = explain_load_failure(exc)
    assert needle in text and "\n" not in text


# --------------------------------------------------------------------------- sessions and settings


def test_run_dirs_are_random_and_sessions_separate(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "sessions", max_age_s=60)
    sid = "session-id-of-alice"  # long enough that random folder names cannot contain it by chance
    a1, a2 = store.new_run_dir(sid), store.new_run_dir(sid)
    b = store.new_run_dir("../../etc/passwd")
    assert a1 != a2 and a1.parent == a2.parent and b.parent != a1.parent
    assert b.resolve().is_relative_to((tmp_path / "sessions").resolve())
    # Neither the session id nor a counter appears in the path: a result URL tells nothing about others.
    for d in (a1, a2, b):
        rel = d.relative_to(tmp_path / "sessions").parts
        text = "/".join(rel)
        assert sid not in text and "passwd" not in text and not any(p.startswith("run-") for p in rel)
        assert all(len(part) >= 16 for part in rel)
    empty = store.new_run_dir("")  # no session id (bare API call): its own folder, no error
    assert empty.is_dir() and empty.parent not in (a1.parent, b.parent)


def test_session_end_deletes_runs_and_its_uploads_only(tmp_path: Path) -> None:
    uploads = tmp_path / "gradio"
    shared, mine = uploads / "h1" / "shared.mp4", uploads / "h2" / "mine.mp4"
    outside = tmp_path / "assets" / "example.mp4"
    for f in (shared, mine, outside):
        f.parent.mkdir(parents=True)
        f.write_bytes(b"v")
    store = SessionStore(uploads / "sessions", max_age_s=60, upload_root=uploads)
    run = store.new_run_dir("a")
    (run / "clip.mp4").write_bytes(b"x")
    for f in (shared, mine, outside):
        store.track_upload("a", f)
    store.track_upload("b", shared)
    store.end_session("a")
    assert not run.exists() and not mine.exists() and not mine.parent.exists()
    assert shared.exists(), "an upload another live session uses must stay"
    assert outside.exists(), "only files under the upload folder are ever deleted"
    store.end_session("b")
    assert not shared.exists()


def test_quota_drops_old_runs_then_refuses(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s", max_age_s=60, quota_bytes=1000)
    first = store.new_run_dir("a")
    (first / "clip.mp4").write_bytes(b"x" * 1500)
    second = store.new_run_dir("a")  # over quota: the older run goes
    assert not first.exists() and second.is_dir()
    upload_root = tmp_path / "up"
    big = upload_root / "h" / "big.mp4"
    big.parent.mkdir(parents=True)
    big.write_bytes(b"x" * 2000)
    store.upload_root = upload_root
    store.track_upload("a", big)
    with pytest.raises(StchatError, match="quota"):
        store.new_run_dir("a")


def test_idle_and_api_sessions_expire(tmp_path: Path) -> None:
    store = SessionStore(tmp_path / "s", max_age_s=3600, api_ttl_s=60)
    store.open_page("page")
    page_run, api_run = store.new_run_dir("page"), store.new_run_dir("api-client")
    (tmp_path / "s" / "left-by-an-earlier-process").mkdir()
    now = time.time()
    assert store.sweep(now + 120) == ["api-client"]  # no page to close: gone after api_ttl_s
    assert page_run.is_dir() and not api_run.exists()
    assert not (tmp_path / "s" / "left-by-an-earlier-process").exists()
    assert store.sweep(now + 7200) == ["page"] and not page_run.exists()


def test_work_dir_is_claimed_emptied_or_refused(tmp_path: Path) -> None:
    from stchat.ui.launch import MARKER, claim_work_dir, empty_work_dir

    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(SystemExit, match="other files"):
        claim_work_dir(foreign)
    assert (foreign / "thesis.tex").exists()
    work = tmp_path / "work"
    assert claim_work_dir(work) is True
    (work / "gradio" / "old").mkdir(parents=True)
    assert claim_work_dir(work) is False and sorted(p.name for p in work.iterdir()) == [MARKER]
    empty_work_dir(work)
    assert list(work.iterdir()) == []


def test_status_text_is_escaped_and_hides_server_paths() -> None:
    line = "✖ video [click](http://evil.example) **x** <b>y</b> not found in /tmp/stchat-app-1/gr/ab/v.mp4"
    shown = present.status_html(line)
    assert "<b>" not in shown and "&lt;b&gt;" in shown and "[click](http://evil.example)" in shown
    assert "/tmp" not in shown and "v.mp4" in shown
    assert present.hide_paths("cannot read /opt/models/st/config.json: x") == "cannot read config.json: x"
    status = ModelHolder("/srv/models/secret-dir/demo").status().text()
    assert "/srv" not in status and "demo" in status


def test_config_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STCHAT_MODEL", raising=False)
    from stchat.model.choice import choose_model

    c = parse_config([])
    assert (c.model, c.host, c.port) == (choose_model(None), DEFAULT_HOST, DEFAULT_PORT)
    monkeypatch.setenv("STCHAT_MODEL", "/models/tiny")
    assert parse_config([]).model == "/models/tiny"
    assert parse_config(["--model", "x", "--host", "0.0.0.0", "--port", "9000"]).port == 9000


def test_placeholder_differs_per_mode() -> None:
    assert set(handlers.PLACEHOLDERS) == set(handlers.MODES)
    assert len(set(handlers.PLACEHOLDERS.values())) == len(handlers.MODES)


# --------------------------------------------------------------------------- answer visualisation


@pytest.mark.slow
def test_visualise_uploaded_answer_file_renders_the_moment(synthetic_dir: Path, tmp_path: Path) -> None:
    """A JSON answer file for syn_a's red square gives a clip of that moment and one table row per box."""
    from stchat.video.io import probe

    gt = json.loads((synthetic_dir / SYN_A).with_suffix(".json").read_text())
    n, fps = gt["n_frames"], gt["fps_float"]
    vis = gt["objects"][0]["visible_interval"]
    s, e = round(vis["first_frame"] / (n - 1) * 99), round(vis["last_frame"] / (n - 1) * 99)
    box = gt["objects"][0]["track"][0]["box_norm"]
    q = [round(v * 99) for v in box]
    answer = (f"{{<TEMP-{s:03d}><TEMP-{e:03d}>}} <TEMP-{s:03d}>: "
              f"[<WIDTH-{q[0]:03d}><HEIGHT-{q[1]:03d}><WIDTH-{q[2]:03d}><HEIGHT-{q[3]:03d}>]")
    answer_file = tmp_path / "answer.json"
    answer_file.write_text(json.dumps({"raw_text": answer}))
    seen: list[float] = []
    r = handlers.visualise_answer(str(synthetic_dir / SYN_A), "", str(answer_file), "stvg", "",
                                  tmp_path / "run", lambda f, d: seen.append(f), full=True)
    assert r.ok, r.status
    assert r.raw_answer == answer and r.normalised_answer.startswith("{0.")
    assert r.clip is not None and r.annotated is not None
    expected_s = (round(e / 99 * (n - 1)) - round(s / 99 * (n - 1)) + 1) / fps
    assert abs(probe(r.clip).duration_s - expected_s) < 2 / fps
    assert abs(probe(r.annotated).duration_s - gt["duration_s"]) < 2 / fps
    kinds = [row.kind for row in r.table]
    assert kinds == [present.SEGMENT, present.MODEL_BOX]  # one box given: the model's, nothing between
    seg = r.table[0]
    assert seg.last_frame > seg.first_frame and abs(seg.duration_s - expected_s) < 1e-3
    assert present.cells(seg)[4] == f"{seg.first_frame}–{seg.last_frame}"
    names = {p.name for p in r.downloads}
    assert {"clip.mp4", "annotated.mp4", "timing.csv", "timing.json", "clip.vtt"} <= names
    assert r.subtitles is not None and r.subtitles.read_text().startswith("WEBVTT")
    assert seen == sorted(seen) and seen[-1] == 1.0  # the progress bar only moves forward, and finishes


def test_svg_answer_without_boxes_does_not_say_found(synthetic_dir: Path, tmp_path: Path) -> None:
    r = handlers.visualise_answer(str(synthetic_dir / SYN_A), "{<TEMP-010><TEMP-020>}", None, "svg", "",
                                  tmp_path)
    assert not r.ok and "Found" not in r.status and "No boxes" in r.status, r.status
    tvg = handlers.visualise_answer(str(synthetic_dir / SYN_A), "{<TEMP-010><TEMP-020>}", None, "tvg", "",
                                    tmp_path / "tvg")
    assert tvg.ok and "Found" in tvg.status


def test_seconds_span_maps_to_exact_frames() -> None:
    """"1, 3" s at 15 fps is frames 15–44: shown 1.000 → 3.000 s, not one frame early."""
    from stchat.request import TimeSpan, media_context

    ctx = media_context(str(ASSETS / "ball_left_to_right.mp4"), None)
    assert ctx.timeline is not None
    assert handlers.span_frames(ctx.timeline, TimeSpan(1.0, 3.0, "s")) == (15, 44)
    assert handlers.span_frames(ctx.timeline, TimeSpan(0.0, 8.0, "s")) == (0, 119)


def test_interpolated_boxes_are_marked(synthetic_dir: Path, tmp_path: Path) -> None:
    """Two boxes far apart: both are the model's; the boxes drawn between them are marked interpolated."""
    answer = ("{<TEMP-020><TEMP-070>} <TEMP-020>: [<WIDTH-010><HEIGHT-010><WIDTH-020><HEIGHT-020>], "
              "<TEMP-070>: [<WIDTH-060><HEIGHT-010><WIDTH-070><HEIGHT-020>]")
    r = handlers.visualise_answer(str(synthetic_dir / SYN_A), answer, None, "stvg", "", tmp_path)
    assert r.ok, r.status
    kinds = [row.kind for row in r.table]
    assert kinds.count(present.MODEL_BOX) == 2 and kinds.count(present.INTERPOLATED) >= 10
    xs = [row.box_px[0] for row in r.table[1:]]
    assert xs == sorted(xs), "interpolated boxes lie between the model's, in time order"


def test_truncated_video_is_reported_on_the_page(synthetic_dir: Path, tmp_path: Path) -> None:
    """A download cut off at 45 % (the header still says 10 s): the status says what was readable, once."""
    data = (synthetic_dir / SYN_A).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * 0.45)])
    r = handlers.visualise_answer(str(cut), "{<TEMP-020><TEMP-090>}", None, "tvg", "", tmp_path / "run")
    assert r.ok, r.status
    warnings = [line for line in r.status.splitlines() if "truncated" in line]
    assert len(warnings) == 1 and warnings[0].startswith("⚠") and "can be read" in warnings[0], r.status
    assert "/" not in present.status_html(r.status).split("cut.mp4")[0][-30:]  # the name, no folders
