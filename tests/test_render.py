"""Annotators: exact outline geometry, the strip, timestamps; timing table export."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from stchat.answer import ParsedAnswer
from stchat.mapping import FrameMap, map_answer
from stchat.render import (
    RED,
    BoxAnnotator,
    LabelAnnotator,
    Renderer,
    TimelineAnnotator,
    draw_outline,
    format_timestamp,
    strip_height,
)
from stchat.timing import timing_rows, to_json, write_csv


def test_outline_is_exactly_on_the_box_edges():
    pic = np.zeros((100, 120, 3), np.uint8)
    draw_outline(pic, (10, 20, 50, 60), RED, 3)
    ys, xs = np.nonzero(pic[..., 0])
    assert (xs.min(), ys.min(), xs.max(), ys.max()) == (9, 19, 50, 60)  # edges 10 / 49, +-1
    assert pic[40, 30, 0] == 0  # hollow


def test_outline_clipped_at_borders():
    pic = np.zeros((50, 60, 3), np.uint8)
    draw_outline(pic, (0, 0, 60, 50), RED, 3)
    assert pic[0, 30, 0] == 255 and pic[49, 30, 0] == 255 and pic[25, 59, 0] == 255


def test_renderer_adds_strip_and_leaves_picture_alone_without_boxes():
    rgb = np.full((360, 640, 3), 128, np.uint8)
    r = Renderer(
        [BoxAnnotator({}), LabelAnnotator("a long query " * 20), TimelineAnnotator(10.0, (2.0, 7.0))]
    )
    out = r.render(rgb, 0, 3.0)
    assert out.shape == (360 + strip_height(360), 640, 3) and out.shape[0] % 2 == 0
    assert np.array_equal(out[:360], rgb)
    assert (out[360:] != out[360, 0]).any()  # something drawn in the strip


def _planes_of(frame_h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros((frame_h, w), np.uint8),
        np.zeros((frame_h // 2, w // 2), np.uint8),
        np.zeros((frame_h // 2, w // 2), np.uint8),
    )


def test_yuv_strip_converted_by_changed_columns_equals_a_whole_conversion():
    """The YUV path converts only the strip columns that changed since the last frame: same pixels."""
    import cv2

    w, h = 320, 180
    rng = np.random.default_rng(0)
    src = (
        rng.integers(0, 256, (h, w), np.uint8),
        rng.integers(0, 256, (h // 2, w // 2), np.uint8),
        rng.integers(0, 256, (h // 2, w // 2), np.uint8),
    )
    boxes = {i: (10.0 + i, 20.0, 80.0 + i, 90.0) for i in range(0, 40, 3)}
    annotators = [BoxAnnotator(boxes), LabelAnnotator("a red square"), TimelineAnnotator(4.0, (1.0, 3.0))]
    cached = Renderer(annotators)
    ch = cached.canvas_size(w, h)[1]
    changed_columns = []
    for i in range(40):  # the playhead and the time label move; the rest of the strip stays
        t = i * 0.1
        out = _planes_of(ch, w)
        cached.render_yuv(src, out, i, t)
        fresh = Renderer(list(cached.annotators))  # no cache: converts the whole strip
        ref = _planes_of(ch, w)
        fresh.render_yuv(src, ref, i, t)
        for a, b in zip(out, ref, strict=True):
            assert np.array_equal(a, b), i
        strip_rgb = np.empty((ch - h, w, 3), np.uint8)
        strip_rgb[:] = (24, 24, 24)
        i420 = cv2.cvtColor(strip_rgb, cv2.COLOR_RGB2YUV_I420)
        changed_columns.append(int((out[0][h:] != i420[: ch - h]).any(axis=0).sum()))
    assert min(changed_columns) > 0  # the strip is really drawn (not left at its background)


def test_timeline_marks_the_span_in_red():
    rgb = np.zeros((200, 400, 3), np.uint8)
    out = Renderer([TimelineAnnotator(10.0, (5.0, 10.0), show_time=False)]).render(rgb, 0, 0.0)
    strip = out[200:]
    red_cols = np.nonzero(((strip[..., 0] == 255) & (strip[..., 1] == 0)).any(axis=0))[0]
    assert red_cols.min() == pytest.approx(4 + 0.5 * (396 - 4), abs=2) and red_cols.max() >= 394


@pytest.mark.parametrize(
    ("s", "text"), [(0, "00:00:00.000"), (3.0006, "00:00:03.001"), (3725.25, "01:02:05.250")]
)
def test_format_timestamp(s, text):
    assert format_timestamp(s) == text


def test_timing_table_csv_and_json(tmp_path):
    fm = FrameMap.build(np.arange(250) / 25, 640, 360, 25.0)
    ans = ParsedAnswer(
        "stvg",
        "x",
        span=(20 / 99, 70 / 99),
        boxes={20 / 99: (0.1, 0.2, 0.3, 0.4), 70 / 99: (0.5, 0.5, 0.6, 0.6)},
    )
    m = map_answer(ans, fm)
    rows = timing_rows(m)
    write_csv(rows, tmp_path / "t.csv")
    got = list(csv.DictReader(open(tmp_path / "t.csv")))
    assert [r["kind"] for r in got] == ["segment", "keyframe", "keyframe"]
    assert got[0]["timestamp"] == format_timestamp(fm.frame(20 / 99) / 25)
    assert float(got[0]["duration_s"]) == pytest.approx(float(got[0]["end_s"]) - float(got[0]["time_s"]))
    assert (got[1]["x1"], got[1]["y1"], got[1]["x2"], got[1]["y2"]) == ("64", "72", "192", "144")
    j = to_json(rows, m)
    json.dumps(j)
    assert j["keyframes"][1]["box_norm"] == [0.5, 0.5, 0.6, 0.6] and j["start"] == got[0]["timestamp"]
