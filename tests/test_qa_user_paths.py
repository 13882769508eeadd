"""Adversarial QA of the user-facing paths (issue #2 item 5, issue #3): every bad input ends in exact
output or one clear ``StchatError`` line (exit 2 from the CLI), and nothing is lost or half-written.

Each test here is a regression test for a failure found by attacking ``stchat probe|render|ground``, the
``StableChat`` API and the app handlers with odd media, odd arguments and odd output folders.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from test_video_support import clip_path

from stchat.chat import _decoding_kwargs
from stchat.errors import AnswerError, PromptError, StchatError, VideoError
from stchat.exports import EXPORT_FILES
from stchat.media import load_sampled as load_media
from stchat.pipeline import OutputError, prepare_out_dir, render_answer
from stchat.processing.image import preprocess, to_rgb
from stchat.render import LabelAnnotator, Renderer, strip_height
from stchat.ui import handlers
from stchat.ui.model_holder import ModelHolder
from stchat.video.io import VideoLimits, probe, read_frames
from stchat.video.sampling import official_frame_indices

REPO = Path(__file__).resolve().parents[1]
ANSWER = "{0.1,0.8} 0.1,: [0.1,0.1,0.5,0.5], 0.8,: [0.3,0.3,0.9,0.9]"


def _run(args: list[str], env: dict[str, str] | None = None, timeout: float = 120
         ) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "stchat.cli", *args], capture_output=True, text=True, cwd=REPO,
        env={**os.environ, **(env or {})}, timeout=timeout,
    )


def _one_error_line(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("stchat: error:"), r.stderr
    assert needle in lines[0], lines[0]


def _small_video(path: Path, n: int = 12, size: tuple[int, int] = (64, 48)) -> Path:
    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        # yuv420p needs even sizes; odd ones (a phone's 321x241 crop) come as yuv444p.
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p" if w % 2 == h % 2 == 0 else "yuv444p"
        vs.codec_context.options = {"preset": "ultrafast"}
        for i in range(n):
            img = np.full((h, w, 3), 10 + 15 * i, dtype=np.uint8)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode(None))
    return path


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _small_video(tmp_path_factory.mktemp("qa") / "small clip é.mp4")


# --------------------------------------------------------------------------- --out folders


def test_out_that_is_a_file_is_one_error_line(small: Path, tmp_path: Path) -> None:
    target = tmp_path / "taken.txt"
    target.write_text("mine")
    r = _run(["render", str(small), "--answer", ANSWER, "--out", str(target)])
    _one_error_line(r, "is an existing file")
    assert target.read_text() == "mine"
    r = _run(["render", str(small), "--answer", ANSWER, "--out", str(target / "sub")])
    _one_error_line(r, "cannot create output folder")


def test_out_with_a_folder_in_the_way_keeps_everything(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    (out / "clip.mp4").write_text("an earlier clip")
    (out / "timing.json").mkdir()
    r = _run(["render", str(small), "--answer", ANSWER, "--out", str(out)])
    _one_error_line(r, "timing.json")
    # Nothing replaced, nothing deleted, no temporary folder left behind.
    assert sorted(p.name for p in out.iterdir()) == ["clip.mp4", "mine.txt", "timing.json"]
    assert (out / "clip.mp4").read_text() == "an earlier clip" and (out / "mine.txt").read_text() == "keep"


def test_existing_non_empty_out_keeps_unrelated_files(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "notes.md").write_text("keep")
    res = render_answer(small, ANSWER, out_dir=out, write_annotated=False)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(["clip.mp4", "notes.md", "timing.csv", "timing.json", *EXPORT_FILES])
    assert probe(res.clip).frame_count == res.rows[0].last_frame - res.rows[0].frame + 1


def test_unwritable_out_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot create"):
        prepare_out_dir("/proc/stchat-cannot-exist/out")
    assert issubclass(OutputError, StchatError)


def test_ground_checks_out_and_query_before_loading_the_model(small: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"STCHAT_MODEL": str(tmp_path / "no-such-model")}  # a load would fail with another message
    _one_error_line(_run(["ground", str(small), "a dog", "--out", str(blocker)], env), "existing file")
    r = _run(["ground", str(small), "a" * 5000, "--out", str(tmp_path / "g")], env)
    _one_error_line(r, "too long")


# --------------------------------------------------------------------------- answers


def test_render_reports_repairs_after_success(small: Path, tmp_path: Path) -> None:
    answer = "{-0.5, 99999999999999999999} 0.5: [-1, 0, 1000000000000000000000, 1], -3: [0.5,0.5,0.2,0.2]"
    r = _run(["render", str(small), "--answer", answer, "--no-annotated", "--out", str(tmp_path / "o")])
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("stchat: warning:")]
    assert any("clamped" in w for w in warnings) and len(warnings) <= 6


def test_render_answer_file_that_is_a_folder_or_binary(small: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "o")
    _one_error_line(_run(["render", str(small), "--answer-file", str(tmp_path), "--out", out]), "not a file")
    binary = tmp_path / "a.txt"
    binary.write_bytes(bytes(range(256)))
    _one_error_line(_run(["render", str(small), "--answer-file", str(binary), "--out", out]), "not UTF-8")


# --------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
def test_ctrl_c_leaves_no_half_written_outputs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    proc = subprocess.Popen(
        [sys.executable, "-m", "stchat.cli", "render", str(clip_path("syn_b_1280x720_30fps_tone_distractor")),
         "--answer", ANSWER, "--out", str(out)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Interrupt once the render is under way (its temporary folder exists), not during start-up.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if any(p.name.startswith(".stchat-render-") for p in out.iterdir()):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    names = sorted(p.name for p in out.iterdir())
    if proc.returncode == 0:  # finished before the signal landed: then the whole set is there
        assert names == sorted(["clip.mp4", "mine.txt", "timing.csv", "timing.json", *EXPORT_FILES])
    else:
        assert proc.returncode == 130 and err.strip() == "stchat: interrupted", err
        assert names == ["mine.txt"]


# --------------------------------------------------------------------------- media


def _mkv_claiming(path: Path, claimed_ms: float) -> Path:
    """A 1 s Matroska clip whose header Duration field claims ``claimed_ms``."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        for i in range(25):
            img = np.full((48, 64, 3), i * 8, np.uint8)
            out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(vs.encode(None))
    data = bytearray(path.read_bytes())
    at = data.find(b"\x44\x89")  # EBML id of Segment/Info/Duration
    assert at > 0 and data[at + 2] == 0x88  # an 8-byte float follows
    struct.pack_into(">d", data, at + 3, claimed_ms)
    path.write_bytes(bytes(data))
    return path


def test_a_header_claiming_hours_does_not_fool_probe(tmp_path: Path) -> None:
    path = _mkv_claiming(tmp_path / "claims_5h.mkv", 5 * 3600 * 1000.0)
    info = probe(path, VideoLimits(max_duration_s=3600))  # would be refused if the claim were believed
    assert info.frame_count == 25
    assert info.duration_s == pytest.approx(1.0, abs=0.05)


def test_streamed_preprocessing_equals_the_stacked_one(tmp_path: Path) -> None:
    # Three frames: 100 samples repeat them, each is decoded and preprocessed once.
    for path in (_small_video(tmp_path / "three.mp4", n=3, size=(321, 241)),
                 clip_path("syn_c_640x360_30fps_noaudio_longgop")):
        info = probe(path)
        idx = official_frame_indices(info.frame_count)
        media = load_media(path)
        expected = preprocess(read_frames(path, idx))
        assert torch_equal(media.pixel_values, expected)
        assert media.size == (info.width, info.height) and media.frame_indices == idx


def torch_equal(a, b) -> bool:  # noqa: ANN001 - tensors
    return a.shape == b.shape and bool((a == b).all())


@pytest.mark.parametrize(
    "media",
    [None, 5, b"clip.mp4", [np.zeros((4, 4, 3), np.uint8)], "", np.zeros((0, 8, 8, 3), np.uint8),
     np.zeros((4, 8, 8, 3), np.float32), np.zeros((4, 8, 8, 4), np.uint8), np.zeros((8, 8), np.uint8)],
)
def test_bad_media_objects_are_video_errors(media: object) -> None:
    with pytest.raises(VideoError):
        load_media(media)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("split", "fps", "needle"),
    [((None, 3), None, "whole numbers"), ((1.5, 3), None, "whole numbers"), ("0,3", None, "whole numbers"),
     ((True, 3), None, "whole numbers"), ((0, 3), 0, "fps"), ((0, 3), float("nan"), "fps"),
     ((0, 3), -1, "fps"), ((3, 1), None, "invalid frame range"), ((0, 99), None, "past the last")],
)
def test_bad_split_and_fps_for_frame_arrays(split: object, fps: object, needle: str) -> None:
    with pytest.raises(VideoError, match=needle):
        load_media(np.zeros((8, 8, 8, 3), np.uint8), split=split, fps=fps)  # type: ignore[arg-type]


def test_integral_float_split_is_accepted() -> None:
    m = load_media(np.zeros((8, 8, 8, 3), np.uint8), split=(np.int64(2), 5.0), fps=25)
    assert m.split == (2, 5) and set(m.frame_indices or []) == {2, 3, 4, 5}


@pytest.mark.parametrize("seed", ["abc", 2**70, 1.5, True])
def test_bad_seeds_are_prompt_errors(seed: object) -> None:
    with pytest.raises(PromptError, match="seed"):
        _decoding_kwargs("official", seed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mode", ["L", "P", "RGBA", "CMYK", "I;16", "I", "F", "1", "LA", "La", "RGBa", "YCbCr"]
)
def test_every_pil_mode_becomes_an_rgb_frame(mode: str) -> None:
    im = Image.new(mode, (20, 10))
    rgb = to_rgb(im)
    assert rgb.mode == "RGB" and rgb.size == (20, 10)
    assert tuple(preprocess(im).shape) == (1, 3, 384, 384)


# --------------------------------------------------------------------------- labels


def _label_strip(text: str, width: int = 320, height: int = 180) -> np.ndarray:
    canvas = Renderer([LabelAnnotator(text)]).render(np.zeros((height, width, 3), np.uint8), 0, 0.0)
    return canvas[height:]


def test_non_ascii_labels_are_drawn_not_question_marks() -> None:
    accented = _label_strip("élan à côté")
    assert accented.any()
    assert not np.array_equal(accented, _label_strip("?lan ? c?t?"))
    assert not np.array_equal(_label_strip("Ωμέγα"), _label_strip("?????"))
    # Too long: shortened to fit, never drawn past the picture's width.
    long = _label_strip("ü" * 500 + "\n\t")
    assert long.shape == (strip_height(180), 320, 3) and long[:, -3:].max() == 24  # strip colour only


# --------------------------------------------------------------------------- app handlers


def test_handlers_turn_odd_values_into_status_lines(small: Path, tmp_path: Path) -> None:
    holder = ModelHolder("unused")  # every case fails its checks before the model is asked for
    for value in ("abc", None, float("nan"), 2.5, 0, 10**9):
        r = handlers.run_model(holder, str(small), "a dog", handlers.GROUNDING, "stvg", "", "greedy", value,
                               tmp_path / "r")
        assert r.status.startswith(handlers.FAIL + " max new tokens"), r.status
    assert holder.status().state == "idle"
    r = handlers.visualise_answer(5, ANSWER, None, "stvg", "", tmp_path / "r")  # type: ignore[arg-type]
    assert r.status.startswith(handlers.FAIL + " no usable video"), r.status
    nested = tmp_path / "nested.json"
    nested.write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(AnswerError, match="nested too deeply"):
        handlers.read_answer_file(nested)
    blocker = tmp_path / "run_dir"
    blocker.write_text("x")
    r = handlers.visualise_answer(str(small), ANSWER, None, "stvg", "", blocker)
    assert r.status.startswith(handlers.FAIL + " output folder") and "internal error" not in r.status
    r = handlers.run_model(holder, str(small), "a" * 2500, handlers.GROUNDING, "stvg", "", "greedy", 8,
                           tmp_path / "r")
    assert "the limit is 2000" in r.status  # one message for the app, the CLI and the API
