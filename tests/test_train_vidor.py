"""VidOR -> STVG samples: relation queries, single-target selection, malformed records skipped."""

from __future__ import annotations

import json

from stchat.commands.train import register  # noqa: F401  (the command module imports cleanly)
from stchat.train.data import load_records
from stchat.train.vidor import prepare_vidor


def _traj(n, boxes):
    frames = [[] for _ in range(n)]
    for tid, (first, last, box) in boxes.items():
        for f in range(first, last + 1):
            x1, y1, x2, y2 = box
            frames[f].append({"tid": tid, "bbox": {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": y2}})
    return frames


def _write_sample(d):
    n = 200
    good = {"video_id": "v1", "video_path": "v1.mp4", "frame_count": n, "fps": 30, "width": 640,
            "height": 480,
            "subject/objects": [{"tid": 0, "category": "adult"}, {"tid": 1, "category": "adult"},
                                {"tid": 2, "category": "dog"}, {"tid": 3, "category": "adult"}],
            # tid 0 big and always visible; tid 1 small with missing frames (120-199 absent)
            "trajectories": _traj(n, {0: (0, 199, (10, 10, 330, 410)), 1: (40, 119, (400, 300, 440, 340)),
                                      2: (0, 199, (300, 200, 400, 300)), 3: (150, 199, (0, 0, 64, 48))}),
            "relation_instances": [
                {"subject_tid": 0, "object_tid": 2, "predicate": "watch", "begin_fid": 20, "end_fid": 160},
                {"subject_tid": 1, "object_tid": 2, "predicate": "watch", "begin_fid": 50, "end_fid": 180},
                {"subject_tid": 3, "object_tid": 2, "predicate": "lean_on", "begin_fid": 150,
                 "end_fid": 200}]}
    broken = {"video_id": "v2", "frame_count": 10, "width": 640, "height": 480,
              "subject/objects": [{"tid": 0, "category": "cat"}], "trajectories": [[] for _ in range(10)],
              "relation_instances": [{"subject_tid": 0, "object_tid": 9, "predicate": "chase",
                                      "begin_fid": 0, "end_fid": 5}]}
    (d / "v1.json").write_text(json.dumps(good))
    (d / "v2.json").write_text(json.dumps(broken))
    (d / "v3.json").write_text("{truncated")


def test_prepare_vidor_heuristic(tmp_path):
    ann = tmp_path / "ann"
    ann.mkdir()
    _write_sample(ann)
    report = prepare_vidor(ann, tmp_path / "out.json", scorer="heuristic")
    assert report["files"] == 3 and report["samples"] == 2 and report["skipped"] == 2
    reasons = " ".join(s["reason"] for s in report["skipped_details"])
    assert "unknown tid 9" in reasons and "JSONDecodeError" in reasons
    samples = json.loads((tmp_path / "out.json").read_text())
    watch = next(s for s in samples if "watch" in s["meta"]["query"])
    sel = watch["meta"]["target_selection"]
    assert sel["candidates"] == [0, 1] and sel["scorer"] == "heuristic"
    assert sel["chosen_tid"] == 0 and sel["scores"][0] > sel["scores"][1] > 0
    lean = next(s for s in samples if "lean on" in s["meta"]["query"])
    assert lean["meta"]["target_selection"]["scorer"] == "unique"
    # The samples are valid stchat-format training data: placeholders + variables line up.
    (tmp_path / "v1.mp4").write_bytes(b"")
    recs = load_records(tmp_path / "out.json", tmp_path)
    r = next(r for r in recs if r.id.startswith("v1-0"))
    gpt = r.conversations[1]["value"]
    assert gpt.count("<TEMP-OUTPUT>") == len(r.variables["temporal_output_locations"]) == 5
    assert gpt.count("<WIDTH-OUTPUT>") == len(r.variables["spatial_width_output_locations"]) == 6
    span = r.variables["temporal_output_locations"][:2]
    assert abs(span[0] - 10 / 99) < 0.011 and abs(span[1] - 79 / 99) < 0.011  # frames 20..159 of 200
    assert abs(r.variables["spatial_width_output_locations"][0] - 10 / 640) < 1e-4
