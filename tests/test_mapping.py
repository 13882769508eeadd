"""Model coordinates -> frames, seconds, pixels; keyframe interpolation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_video_support import clip_path, gt_answer, target, truth

from stchat.answer import ParsedAnswer
from stchat.errors import AnswerError
from stchat.mapping import FrameMap, map_answer
from stchat.video.io import frame_times, probe


def _fm(n=250, fps=25.0, w=640, h=360, split=None):
    return FrameMap.build(np.arange(n) / fps, w, h, fps, split)


def test_time_to_frame_uses_official_indices_and_half_even_round():
    fm = _fm(830, split=(0, 829))
    assert fm.indices[:6] == (0, 8, 17, 25, 33, 42)
    assert fm.sample_index(0.5) == 50  # 49.5 -> 50 (half to even)
    assert fm.sample_index(1 / 198) == 0  # 0.5 -> 0
    assert fm.frame(1.0) == 829 and fm.frame(-0.2) == 0 and fm.frame(7) == 829


def test_split_is_honoured():
    fm = _fm(1300, split=(901, 1221))
    assert fm.frame(0.0) == 901 and fm.frame(1.0) == 1221 and fm.frame(3 / 99) == 911
    assert fm.split_seconds(926) == 1.0


def test_bad_split_is_an_answer_error():
    with pytest.raises(AnswerError):
        _fm(100, split=(50, 200))


def test_boxes_to_pixels_round_and_clip():
    fm = _fm(w=640, h=362)
    assert fm.box_px((0.1, 0.2, 0.5, 0.9)) == (64, 72, 320, 326)
    assert fm.box_px((-0.1, 0.5, 1.2, 0.4)) == (0, 145, 640, 181)  # clipped, y swapped


def test_portrait_uses_width_for_x():
    fm = _fm(w=360, h=640)
    assert fm.box_px((0.5, 0.5, 1.0, 1.0)) == (180, 320, 360, 640)


def test_official_examples_resolve_like_examples_json(official_dir):
    data = json.loads((official_dir / "examples.json").read_text())
    checked = 0
    for ex in data["examples"]:
        d = ex.get("derived") or {}
        if not ex["present"] or "effective_split" not in d:
            continue
        path = official_dir / ex["file"]
        info = probe(path)
        fm = FrameMap.build(frame_times(path), info.width, info.height, float(info.fps), ex["split"])
        assert [fm.indices[0], fm.indices[-1]] == d["sampled_frame_ids_first_last"]
        assert list(fm.split) == d["effective_split"]
        for r in d.get("time_tokens_resolved", []):
            f = fm.frame(r["t"])
            assert (fm.sample_index(r["t"]), f) == (r["sample_index"], r["frame"])
            assert fm.seconds(f) == pytest.approx(r["pts_seconds"], abs=1e-3)
            assert fm.split_seconds(f) == pytest.approx(r["seconds_from_split_start"], abs=1e-3)
        for norm, px in zip(d.get("box_tokens_norm_xyxy", []), d.get("box_tokens_px_xyxy", []), strict=True):
            assert max(abs(a - b) for a, b in zip(fm.box_px(tuple(norm)), px, strict=True)) <= 1
        checked += 1
    assert checked >= 5


def test_map_answer_segment_and_keyframes():
    fm = _fm()
    ans = ParsedAnswer(
        "stvg", "x", span=(0.2, 0.7), boxes={0.2: (0.1, 0.1, 0.2, 0.2), 0.7: (0.5, 0.5, 0.6, 0.6)}
    )
    m = map_answer(ans, fm)
    assert (m.first_frame, m.last_frame) == (fm.frame(0.2), fm.frame(0.7))
    assert m.start_s == pytest.approx(m.first_frame / 25) and m.end_s == pytest.approx(
        (m.last_frame + 1) / 25
    )
    track = m.box_track()
    assert set(track) == set(range(m.first_frame, m.last_frame + 1))
    mid = (m.first_frame + m.last_frame) // 2
    frac = (mid - m.first_frame) / (m.last_frame - m.first_frame)
    assert track[mid][0] == pytest.approx(64 + frac * (320 - 64), abs=1e-6)


def test_svg_without_span_uses_keyframe_range_and_holds():
    fm = _fm()
    m = map_answer(ParsedAnswer("svg", "x", boxes={0.3: (0.1, 0.1, 0.2, 0.2), 0.4: (0.1, 0.1, 0.2, 0.2)}), fm)
    assert (m.first_frame, m.last_frame) == (fm.frame(0.3), fm.frame(0.4))


def test_nothing_to_render_and_image_tasks_are_errors():
    with pytest.raises(AnswerError):
        map_answer(ParsedAnswer("stvg", "nothing"), _fm())
    with pytest.raises(AnswerError):
        map_answer(ParsedAnswer("rec", "x", box=(0, 0, 1, 1)), _fm())


@pytest.mark.parametrize(
    "name",
    [
        "syn_b_1280x720_30fps_tone_distractor",
        "syn_d_1280x720_25fps_edges_tone",
        "syn_e_640x360_29.97fps_tone",
    ],
)
def test_interpolated_track_follows_truth_within_a_pixel(name):
    meta = truth(name)
    path = clip_path(name)
    fm = FrameMap.build(frame_times(path), meta["width"], meta["height"], meta["fps_float"])
    m = map_answer(gt_answer(meta), fm)
    track = m.box_track()
    truth_px = {e["frame"]: e["box_px"] for e in target(meta)["track"]}
    worst = max(max(abs(a - b) for a, b in zip(track[f], truth_px[f], strict=True)) for f in track)
    assert worst <= 1.5
