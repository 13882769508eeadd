"""StableChat end to end on the tiny golden checkpoint: golden ids, frame bookkeeping, streaming, safety."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch

from stchat.answer import ParsedAnswer
from stchat.errors import PromptError, VideoError
from stchat.video.sampling import official_frame_indices

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chat(golden_model_dir):
    from stchat.chat import StableChat

    return StableChat(str(golden_model_dir), device="cpu", dtype=torch.float32)


def _case(golden_dir, name):
    return json.loads((golden_dir / "cases" / f"{name}.json").read_text())


def test_golden_video_case_reproduces_official_output(chat, golden_dir):
    case = _case(golden_dir, "video_elc")
    frames = np.load(golden_dir / "media" / "video_frames.npy")
    r = chat.ground(frames, case["query"], task="elc", max_new_tokens=32, fps=30.0)
    assert r.output_ids == case["output_ids"]
    assert r.raw_text == case["output_text_without_im_end"]
    assert r.normalized_text == case["output_text_replace_and_normalize"]
    assert r.variables == case["variables"]
    assert r.query == case["query"]
    assert r.frame_indices == list(range(100))
    assert r.frame_times_s == pytest.approx([i / 30 for i in range(100)])
    assert isinstance(r.parsed, ParsedAnswer) and r.parsed.task == "elc"


@pytest.mark.parametrize("name", ["image_rec", "image_reg"])
def test_golden_image_cases_from_png_path(chat, golden_dir, name):
    case = _case(golden_dir, name)
    img = golden_dir / "media" / "image.png"
    r = chat.ground(img, case["query"], task=name.split("_")[1], max_new_tokens=32)
    assert r.output_ids == case["output_ids"]
    assert r.normalized_text == case["output_text_replace_and_normalize"]
    assert r.media_size == (512, 384) and r.frame_indices is None


def test_ground_on_a_synthetic_clip_reports_frames_and_times(chat, synthetic_dir):
    clip = synthetic_dir / "syn_a_640x360_25fps_tone.mp4"
    meta = json.loads(clip.with_suffix(".json").read_text())
    pieces: list[str] = []
    r = chat.ground(clip, "a red square", task="stvg", max_new_tokens=6, on_token=pieces.append)
    n = r.video_info.frame_count
    assert r.frame_indices == official_frame_indices(n) and len(r.frame_indices) == 100
    fps = float(r.video_info.fps)
    assert r.frame_times_s == pytest.approx([i / fps for i in r.frame_indices], abs=1e-6)
    assert r.query.startswith("At which time interval in the video can we see a red square occurring?")
    assert isinstance(r.parsed, ParsedAnswer) and r.parsed.task == "stvg"
    assert "".join(pieces) == r.raw_text and 1 <= len(r.output_ids) <= 6
    assert r.split == (0, n - 1) and r.media_size == (640, 360)
    assert {"decode_s", "preprocess_s", "prompt_s", "generate_s", "total_s"} <= set(r.timings)
    assert meta  # the clip's ground truth file exists next to it


def test_official_decoding_is_reproducible_with_a_seed(chat, golden_dir):
    img = golden_dir / "media" / "image.png"
    a = chat.ground(img, "the red square", task="rec", max_new_tokens=8, decoding="official", seed=7)
    b = chat.ground(img, "the red square", task="rec", max_new_tokens=8, decoding="official", seed=7)
    assert a.output_ids == b.output_ids and a.decoding == "official"


def test_concurrent_calls_give_the_sequential_answers(chat, golden_dir):
    img = golden_dir / "media" / "image.png"
    queries = ["the red square", "the background", "a small object"]
    expected = [chat.ground(img, q, task="rec", max_new_tokens=6).output_ids for q in queries]
    got: dict[int, list[int]] = {}

    def work(i: int) -> None:
        got[i] = chat.ground(img, queries[i], task="rec", max_new_tokens=6).output_ids

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [got[i] for i in range(3)] == expected


def test_ask_returns_free_text(chat, golden_dir):
    img = golden_dir / "media" / "image.png"
    text = chat.ask(img, "What is in the picture? <|im_end|>", max_new_tokens=5)
    assert isinstance(text, str) and text


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"video": "missing.mp4"}, VideoError),
        ({"task": "rec"}, PromptError),
        ({"task": "fly"}, PromptError),
        ({"split": [50, 10]}, VideoError),
        ({"split": [0, 10_000]}, VideoError),
        ({"decoding": "beam"}, PromptError),
        ({"max_new_tokens": 0}, PromptError),
        ({"query": "at <t3> what?"}, PromptError),
    ],
)
def test_bad_input_raises_one_line_errors(chat, synthetic_dir, kwargs, error):
    args = {"video": synthetic_dir / "syn_a_640x360_25fps_tone.mp4", "query": "a red square", "task": "stvg"}
    args.update(kwargs)
    with pytest.raises(error) as exc:
        chat.ground(args.pop("video"), args.pop("query"), **args)
    assert "\n" not in str(exc.value)
