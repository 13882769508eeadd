"""One result object into the renderer; exports read back; a truncated video is reported.

``render_answer(result, out)`` takes the GroundingResult (clip only by default), returns typed rows, and
writes WebVTT/SRT, MOTChallenge CSV and COCO-video JSON that are parsed back here: the VTT cue is the
segment, the MOT file has one row per clip frame, the COCO JSON is consistent. ``stchat render
--answer-json`` reproduces a render from the answer.json record.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

import pytest
from test_video_support import clip_path, gt_answer, truth

from stchat.answer import GroundingResult
from stchat.cli import main
from stchat.exports import EXPORT_FILES, MOT_CONF_INTERPOLATED, MOT_CONF_MODEL
from stchat.parse import result_from_text
from stchat.pipeline import render_answer
from stchat.timing import KIND_MODEL, KIND_SEGMENT, TABLE_COLUMNS
from stchat.video.io import probe

NAME = "syn_c_640x360_30fps_noaudio_longgop"


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """A small WebVTT reader: (start_s, end_s, text) per cue; rejects a file without the header."""
    lines = text.replace("\r\n", "\n").split("\n")
    assert lines[0].startswith("WEBVTT")
    cues = []
    ts = r"(\d\d):(\d\d):(\d\d)\.(\d\d\d)"
    for i, line in enumerate(lines):
        m = re.fullmatch(rf"{ts} --> {ts}", line.strip())
        if m:
            g = [int(x) for x in m.groups()]
            start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
            end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
            body = []
            for nxt in lines[i + 1 :]:
                if not nxt.strip():
                    break
                body.append(nxt)
            cues.append((start, end, "\n".join(body)))
    return cues


def _result(parsed, query: str) -> GroundingResult:
    """A result carrying the ground truth as its parsed answer (the exact boxes of the synthetic clip)."""
    base = result_from_text("", "stvg", media=str(clip_path(NAME)), query=query)
    return dataclasses.replace(base, parsed=parsed)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory):
    meta = truth(NAME)
    parsed = gt_answer(meta)
    result = _result(parsed, meta["example_query"])
    out = tmp_path_factory.mktemp("exports")
    return render_answer(result, out), result, out


def test_result_renders_clip_only_with_typed_rows(rendered) -> None:
    outs, result, out = rendered
    assert outs.annotated is None and not (out / "annotated.mp4").exists()
    assert outs.result is result and outs.warnings == []
    seg = outs.table[0]
    m = outs.mapped
    assert (seg.kind, seg.first_frame, seg.last_frame) == (KIND_SEGMENT, m.first_frame, m.last_frame)
    assert len(seg.cells()) == len(TABLE_COLUMNS)
    model_rows = [r for r in outs.table if r.kind == KIND_MODEL]
    assert [r.first_frame for r in model_rows] == [k.frame for k in m.keyframes]
    assert sorted(p.name for p in out.iterdir()) == sorted(["clip.mp4", "timing.csv", "timing.json",
                                                            *EXPORT_FILES])


def test_vtt_and_srt_hold_the_segment(rendered) -> None:
    outs, _, out = rendered
    m = outs.mapped
    (cue,) = parse_vtt((out / "segment.vtt").read_text())
    assert abs(cue[0] - m.start_s) < 1e-3 and abs(cue[1] - m.end_s) < 1e-3
    assert cue[2] == " ".join(truth(NAME)["example_query"].split())
    (clip_cue,) = parse_vtt((out / "clip.vtt").read_text())
    assert clip_cue[0] == 0.0 and abs(clip_cue[1] - (m.end_s - m.start_s)) < 2e-3
    srt = (out / "segment.srt").read_text().splitlines()
    assert srt[0] == "1" and srt[1].replace(",", ".") == (out / "segment.vtt").read_text().splitlines()[3]


def test_mot_rows_equal_clip_frames_and_mark_keyframes(rendered) -> None:
    outs, _, out = rendered
    rows = list(csv.reader((out / "boxes_mot.csv").open()))
    n_clip = probe(outs.clip).frame_count
    assert len(rows) == n_clip == outs.mapped.last_frame - outs.mapped.first_frame + 1
    assert [int(r[0]) for r in rows] == list(range(1, n_clip + 1))
    assert all(len(r) == 10 and r[1] == "1" for r in rows)
    keys = {k.frame - outs.mapped.first_frame + 1 for k in outs.mapped.keyframes}
    conf = {int(r[0]): float(r[6]) for r in rows}
    assert {f for f, c in conf.items() if c == MOT_CONF_MODEL} == keys
    assert all(c == MOT_CONF_INTERPOLATED for f, c in conf.items() if f not in keys)
    # The boxes are the drawn ones: x, y, w, h of the typed per-frame boxes.
    for r, b in zip(rows, outs.frame_boxes, strict=True):
        x1, y1, x2, y2 = b.box_px
        assert [int(v) for v in r[2:6]] == [x1, y1, x2 - x1, y2 - y1]


def test_coco_video_json_is_consistent(rendered) -> None:
    outs, _, out = rendered
    coco = json.loads((out / "boxes_coco.json").read_text())
    assert set(coco) >= {"videos", "images", "annotations", "categories", "tracks"}
    (video,) = coco["videos"]
    n = outs.mapped.last_frame - outs.mapped.first_frame + 1
    assert video["length"] == len(coco["images"]) == n
    image_ids = {im["id"] for im in coco["images"]}
    assert all(a["image_id"] in image_ids and a["video_id"] == video["id"] for a in coco["annotations"])
    assert all(len(a["bbox"]) == 4 and a["area"] == a["bbox"][2] * a["bbox"][3] for a in coco["annotations"])
    n_model = sum(a["keyframe"] for a in coco["annotations"])
    assert n_model == len(outs.mapped.keyframes)
    assert {a["source"] for a in coco["annotations"]} == {"model", "interpolated"}


def test_render_answer_json_reproduces_the_render(rendered, tmp_path: Path) -> None:
    outs, result, _ = rendered
    record = tmp_path / "answer.json"
    record.write_text(result.to_json())
    assert main(["render", "--answer-json", str(record), "--out", str(tmp_path / "again")]) == 0
    again = json.loads((tmp_path / "again" / "timing.json").read_text())
    first = json.loads(outs.timing_json.read_text())
    assert again == first
    mot = (outs.timing_json.parent / "boxes_mot.csv").read_text()
    assert (tmp_path / "again" / "boxes_mot.csv").read_text() == mot


def test_nothing_to_draw_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["render", str(clip_path(NAME)), "--answer", "no idea", "--task", "tvg", "--out", str(tmp_path)]
    rc = main(args)
    assert rc == 1 and "nothing to draw" in capsys.readouterr().err


@pytest.fixture()
def truncated(tmp_path: Path) -> Path:
    """A download cut off at 45 % of its bytes (the header still says 10 s)."""
    data = clip_path("syn_a_640x360_25fps_tone").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.45)])
    return path


def test_truncated_file_is_reported_by_probe_and_render(truncated: Path, tmp_path: Path, capsys) -> None:
    info = probe(truncated)
    assert info.truncated and info.declared_duration_s == 10.0 and info.declared_frame_count == 250
    assert info.frame_count < 250 and info.duration_s < 5.0
    assert main(["probe", str(truncated)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0] and f"{info.frame_count} frames" in err[0]
    # The render reads what is there; the warning travels in the outputs and timing.json.
    answer = "{<TEMP-020><TEMP-090>}"
    result = result_from_text(answer, "tvg", media=str(truncated))
    outs = render_answer(result, tmp_path / "o")
    assert outs.mapped.last_frame < info.frame_count and outs.warnings == [info.warning()]
    assert json.loads(outs.timing_json.read_text())["warnings"] == [info.warning()]
    assert probe(outs.clip).frame_count == outs.mapped.last_frame - outs.mapped.first_frame + 1
    assert not probe(clip_path("syn_a_640x360_25fps_tone")).truncated
