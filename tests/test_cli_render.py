"""``stchat probe`` and ``stchat render`` end to end, including bad input (exit 2, one line)."""

from __future__ import annotations

import json
import subprocess
import sys

from test_video_support import clip_path, truth

from stchat.cli import main

NAME = "syn_f_360x640_30fps_portrait_tone"


def test_probe_json(capsys):
    assert main(["probe", str(clip_path(NAME)), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    meta = truth(NAME)
    assert (facts["width"], facts["height"], facts["frame_count"]) == (meta["width"], meta["height"], 150)
    assert facts["has_audio"] is True and facts["rotation"] == 0 and facts["fps"] == "30/1"


def test_probe_text(capsys):
    assert main(["probe", str(clip_path(NAME))]) == 0
    assert "frame_count  150" in capsys.readouterr().out


def test_render_token_answer(tmp_path, capsys):
    # Raw model text: span samples 30..80, boxes at 30 and 80.
    answer = (
        "{<TEMP-030><TEMP-080>} <TEMP-030>: [<WIDTH-010><HEIGHT-010><WIDTH-050><HEIGHT-040>], "
        "<TEMP-080>: [<WIDTH-040><HEIGHT-050><WIDTH-090><HEIGHT-090>]"
    )
    rc = main(
        ["render", str(clip_path(NAME)), "--answer", answer, "--out", str(tmp_path), "--query", "orange?",
         "--full"]
    )
    assert rc == 0
    for f in ("clip.mp4", "annotated.mp4", "timing.csv", "timing.json", "segment.vtt", "boxes_mot.csv"):
        assert (tmp_path / f).stat().st_size > 0
    timing = json.loads((tmp_path / "timing.json").read_text())
    assert [k["sample_index"] for k in timing["keyframes"]] == [30, 80]
    assert "segment" in capsys.readouterr().out


def test_render_answer_file_and_split(tmp_path):
    f = tmp_path / "answer.txt"
    f.write_text("{0.0, 1.0}")
    rc = main(
        [
            "render",
            str(clip_path(NAME)),
            "--task",
            "tvg",
            "--answer-file",
            str(f),
            "--split",
            "30",
            "59",
            "--out",
            str(tmp_path / "o"),
            "--no-annotated",
        ]
    )
    assert rc == 0
    timing = json.loads((tmp_path / "o" / "timing.json").read_text())
    assert (timing["first_frame"], timing["last_frame"]) == (30, 59)
    assert not (tmp_path / "o" / "annotated.mp4").exists()


def _run(args):
    return subprocess.run(
        [sys.executable, "-m", "stchat.cli", *args], capture_output=True, text=True, timeout=120
    )


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    empty = tmp_path / "e.mp4"
    empty.write_bytes(b"")
    cases = [
        ["probe", str(empty)],
        ["probe", str(tmp_path / "missing.mp4")],
        [
            "render",
            str(clip_path(NAME)),
            "--answer",
            "{0.1, 0.2}",
            "--split",
            "10",
            "900",
            "--out",
            str(tmp_path / "y"),
        ],
        ["render", str(empty), "--answer", "{0.1, 0.2}", "--out", str(tmp_path / "z")],
    ]
    for args in cases:
        r = _run(args)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("stchat: error:"), r.stderr
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
    # An answer that parses but holds nothing to draw is not bad input: exit 1, one line saying so.
    out_x = str(tmp_path / "x")
    r = _run(["render", str(clip_path(NAME)), "--answer", "no coordinates here", "--out", out_x])
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and "nothing to draw" in lines[0], r.stderr
    assert not (tmp_path / "x").exists()
