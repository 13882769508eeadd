"""Acceptance on the synthetic clips: the ground truth fed as an answer renders back exactly.

Measured in the output files: the drawn box (within 2 px of the true box on every frame of the segment),
the clip length (within one frame of the requested span), the clip's first frame (its barcode), and the
audio (the right tone, with a tone change landing within one frame of where it should).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_video_support import (
    barcode,
    clip_path,
    decode_audio,
    dominant_freq,
    gt_answer,
    outline_to_box,
    red_box,
    target,
    tone_power,
    truth,
)

from stchat.clip import cut_seconds
from stchat.exports import EXPORT_FILES
from stchat.pipeline import render_answer
from stchat.video.io import iter_frames, probe, read_frames

FAST = [
    "syn_c_640x360_30fps_noaudio_longgop",
    "syn_e_640x360_29.97fps_tone",
    "syn_f_360x640_30fps_portrait_tone",
]
SLOW = ["syn_a_640x360_25fps_tone", "syn_d_1280x720_25fps_edges_tone"]


def _check_render(name, tmp_path, write_annotated):
    meta = truth(name)
    out = render_answer(
        clip_path(name),
        gt_answer(meta),
        out_dir=tmp_path,
        query=meta["example_query"],
        write_annotated=write_annotated,
    )
    m = out.mapped
    W, H = meta["width"], meta["height"]
    info = probe(out.clip)
    n_req = m.last_frame - m.first_frame + 1
    fps = meta["fps_float"]
    # Duration within one frame of the requested span; exact frame count.
    assert info.frame_count == n_req
    assert abs(info.duration_s - (m.end_s - m.start_s)) <= 1 / fps + 1e-3
    first, last = read_frames(out.clip, [0, n_req - 1])
    assert barcode(first, meta["frame_barcode"]) == m.first_frame
    assert barcode(last, meta["frame_barcode"]) == m.last_frame
    truth_px = {e["frame"]: e["box_px"] for e in target(meta)["track"]}
    errors = []
    # Stream both videos frame by frame (a 720p segment held whole would take a gigabyte).
    clip_frames = iter_frames(out.clip, range(n_req), fast_rgb=True)
    src_frames = iter_frames(clip_path(name), range(m.first_frame, m.last_frame + 1), fast_rgb=True)
    for j, ((_, c), (_, s)) in enumerate(zip(clip_frames, src_frames, strict=True)):
        tb = truth_px[m.first_frame + j]
        # Search a window 24 px around the true box (speed); a box drawn elsewhere is not found -> fails.
        x0, y0 = max(0, tb[0] - 24), max(0, tb[1] - 24)
        x1, y1 = min(W, tb[2] + 24), min(H, tb[3] + 24)
        outer = red_box(c[y0:y1, x0:x1], s[y0:y1, x0:x1])
        assert outer is not None, f"no box drawn on frame {m.first_frame + j}"
        outer = (outer[0] + x0, outer[1] + y0, outer[2] + x0, outer[3] + y0)
        drawn = outline_to_box(outer, W, H)
        errors.append(max(abs(a - b) for a, b in zip(drawn, tb, strict=True)))
    assert max(errors) <= 2, (max(errors), int(np.argmax(errors)))
    if meta["audio"] is not None:
        samples, rate = decode_audio(out.clip)
        inside = [
            s["freq_hz"]
            for s in meta["audio"]["tone_schedule"]
            if s["start_s"] <= m.start_s + 0.05 and m.start_s + 0.05 < s["end_s"]
        ]
        head = samples[int(0.02 * rate) : int(0.3 * rate)]
        assert abs(dominant_freq(head, rate) - inside[0]) < 15
    timing = json.loads(out.timing_json.read_text())
    assert timing["first_frame"] == m.first_frame and len(timing["keyframes"]) == len(gt_answer(meta).boxes)
    if write_annotated:
        ainfo = probe(out.annotated)
        assert ainfo.frame_count == meta["n_frames"]
        assert abs(ainfo.duration_s - meta["duration_s"]) <= 1 / fps + 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["clip.mp4", "timing.csv", "timing.json", *EXPORT_FILES]
        + (["annotated.mp4"] if write_annotated else [])
    )


@pytest.mark.parametrize("name", FAST)
def test_gt_answer_renders_back_exactly(name, tmp_path):
    _check_render(name, tmp_path, write_annotated=name.startswith("syn_c"))


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW)
def test_gt_answer_renders_back_exactly_slow(name, tmp_path):
    _check_render(name, tmp_path, write_annotated=name.startswith("syn_a"))


@pytest.mark.parametrize("name", ["syn_a_640x360_25fps_tone", "syn_e_640x360_29.97fps_tone"])
def test_ready_made_cut_checks(name, tmp_path):
    meta = truth(name)
    for chk in meta["checks"]:
        res = cut_seconds(clip_path(name), tmp_path / "cut.mp4", chk["start_s"], chk["end_s"])
        info = probe(res.path)
        assert info.frame_count == chk["expected_frames"]
        first, last = read_frames(res.path, [0, info.frame_count - 1])
        assert barcode(first, meta["frame_barcode"]) == chk["expected_first_frame_barcode"]
        assert barcode(last, meta["frame_barcode"]) == chk["expected_last_frame_barcode"]
        samples, rate = decode_audio(res.path)
        assert abs(len(samples) / rate - chk["expected_audio_duration_s"]) < 0.03  # AAC pads the last frame
        assert (
            abs(
                dominant_freq(samples[: int(chk["expected_audio_duration_s"] * rate)], rate)
                - chk["expected_tones_hz"][0]
            )
            < 5
        )


@pytest.mark.parametrize(
    ("name", "start_s", "end_s"),
    [
        ("syn_a_640x360_25fps_tone", 1.2, 3.0),  # 440 -> 880 Hz at 2.0 s
        ("syn_e_640x360_29.97fps_tone", 5.0, 7.0),  # 880 -> 440 Hz at 6.006 s
    ],
)
def test_audio_stays_in_sync_across_a_tone_change(name, start_s, end_s, tmp_path):
    meta = truth(name)
    res = cut_seconds(clip_path(name), tmp_path / "cut.mp4", start_s, end_s)
    samples, rate = decode_audio(res.path)
    sched = meta["audio"]["tone_schedule"]
    change = next(s for s in sched if res.start_s < s["start_s"] < res.end_s)
    before = next(s for s in sched if s["end_s"] == change["start_s"])["freq_hz"]
    after = change["freq_hz"]
    win = int(0.01 * rate)
    hop = win // 4
    pos = []
    for i in range(0, len(samples) - win, hop):
        seg = samples[i : i + win]
        pos.append(tone_power(seg, rate, after) - tone_power(seg, rate, before))
    first_after = next(i for i, v in enumerate(pos) if v > 0) * hop + win / 2
    measured = first_after / rate  # seconds into the clip where the new tone dominates
    expected = change["start_s"] - res.start_s
    fps = meta["fps_float"]
    assert abs(measured - expected) <= 1 / fps, (measured, expected)


def test_ground_truth_overlay_is_green_where_the_truth_is(tmp_path):
    name = "syn_f_360x640_30fps_portrait_tone"
    meta = truth(name)
    gt = gt_answer(meta)
    # A prediction shifted right by 10 % of the width, so both outlines are visible.
    pred = type(gt)(
        "stvg",
        "shifted",
        span=gt.span,
        boxes={t: (b[0] + 0.1, b[1], b[2] + 0.1, b[3]) for t, b in gt.boxes.items()},
    )
    out = render_answer(clip_path(name), pred, out_dir=tmp_path, gt=gt, write_annotated=False)
    m = out.mapped
    j = (m.last_frame - m.first_frame) // 2
    frame = read_frames(out.clip, [j])[0][: meta["height"]].astype(int)
    truth_px = {e["frame"]: e["box_px"] for e in target(meta)["track"]}[m.first_frame + j]
    x1, y1, x2, y2 = truth_px
    left_edge = frame[y1 + 5 : y2 - 5, x1]
    greenish = (left_edge[:, 1] > 150) & (left_edge[:, 1] - left_edge[:, 0] > 80)
    assert greenish.mean() > 0.9
    shifted = frame[y1 + 5 : y2 - 5, x1 + 36]
    assert ((shifted[:, 0] > 200) & (shifted[:, 1] < 60)).mean() > 0.9
