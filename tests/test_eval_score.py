"""Result-file I/O, official routing and the ``stchat eval score`` command."""

from __future__ import annotations

import json

import pytest

from stchat.cli import main
from stchat.eval import captions
from stchat.eval.results import ResultFileError, append_record, read_records, result_path, write_records
from stchat.eval.score import EXTRA_KEY, route, score_dir

REC = [
    {"gt_bbox": [0, 0, 0.5, 0.5], "outputs": "x", "converted_outputs": "[0,0,0.5,0.5]"},
    {"gt_bbox": [0, 0, 1, 1], "outputs": "x", "converted_outputs": "[0,0,0.5,1]"},
    {"gt_bbox": [0, 0, 1, 1], "outputs": "x", "converted_outputs": "none"},
]
TVG = [
    {"gt": [0.0, 0.5], "outputs": "x", "converted_outputs": "{0.0,0.5}"},
    {"gt": [0.2, 0.4], "outputs": "x", "converted_outputs": "no"},
]
SVG = [
    {
        "split": [0, 99],
        "width": 99,
        "height": 99,
        "gt": {"svg": {"10": [0, 0, 50, 50]}},
        "outputs": "<TEMP-010>: [<WIDTH-000><HEIGHT-000><WIDTH-050><HEIGHT-050>]",
        "converted_outputs": "0.10101,: [0.00000,0.00000,0.50505,0.50505]",
    }
]


def test_route_by_path_substrings():
    assert route("r/m/s/rec/refcoco/refcoco.json") == "rec"
    assert route("r/m/s/tvg/charades_sta/charades_sta.json") == "tvg"
    assert route("r/m/s/st-align/vidstg/svg.json") == "svg"
    assert route("r/m/s/st-align/vidstg/elc.json") == "elc"
    # Q24: a directory name containing "stvg" mislabels an SVG file, as in the official script
    assert route("r/stvg_run/s/st-align/vidstg/svg.json") == "stvg"
    assert route("r/m/s/st-align/vidstg/other.json") == "st-align?"
    assert route("rec/refcoco/x.json") is None  # needs the leading slash
    assert route("r/total_eval.json") is None


def test_result_path_layout(tmp_path):
    p = result_path(tmp_path, "appletea2333/LLaVA-ST-Qwen2-7B", "run1", "elc")
    assert p == tmp_path / "LLaVA-ST-Qwen2-7B" / "run1" / "st-align" / "vidstg" / "elc.json"
    with pytest.raises(ResultFileError):
        result_path(tmp_path, "m", "s", "nope")


def test_truncated_tail_and_bad_lines(tmp_path):
    p = tmp_path / "r.json"
    write_records(p, REC)
    append_record(p, {"gt_bbox": [0, 0, 1, 1], "tensor": object(), "converted_outputs": "[0,0,1,1]"})
    good = p.read_text()
    assert "tensor" not in good.splitlines()[-1]  # non-JSON values dropped like the official tensors
    p.write_text("not json\n" + good + '{"gt_bbox": [0, 0, 1')  # killed mid-write
    loaded = read_records(p)
    assert len(loaded.records) == 4
    assert loaded.truncated_tail and loaded.bad_lines == [1, 6]
    assert any("truncated" in w for w in loaded.warnings) and any("line 1" in w for w in loaded.warnings)
    with pytest.raises(ResultFileError, match="cannot read"):
        read_records(tmp_path / "missing.json")


def test_read_records_accepts_exactly_what_json_loads_accepts(tmp_path):
    # the fast decoder falls back to json.loads for every line it does not take whole
    lines = ['{"a": 1}', ' {"a": 2}', '{"a": 3}\t', '{"a": 4}x', '{"a": 5}{"b": 6}', "[7]", "", '{"n": NaN}',
             "\ufeff{}", "{\"a\""]  # fmt: skip
    p = tmp_path / "r.json"
    p.write_text("\r\n".join(lines), encoding="utf-8", newline="")
    loaded = read_records(p)
    expected = []
    for line in lines:
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            expected.append(value)
    assert json.dumps(loaded.records) == json.dumps(expected)  # NaN != NaN: compare the text
    assert loaded.bad_lines == [4, 5, 6, 7, 9, 10] and loaded.truncated_tail


def _tree(root):
    write_records(root / "m" / "s" / "rec" / "refcoco" / "refcoco.json", REC)
    write_records(root / "m" / "s" / "tvg" / "charades_sta" / "charades_sta.json", TVG)
    write_records(root / "m" / "s" / "st-align" / "vidstg" / "svg.json", SVG)
    write_records(root / "m" / "s" / "st-align" / "vidstg" / "empty.json", [])
    (root / "notes.json").write_text("{}")


def test_score_dir_official_keys(tmp_path):
    _tree(tmp_path)
    report = score_dir(tmp_path, captions=None)
    assert set(report.official) == {"refcoco", "charades_sta", "svg"}
    assert report.official["refcoco"] == {"miou": 0.75, "R1@(0.5)": 100.0}
    assert list(report.official["charades_sta"]) == ["miou", "R1@(0.3)", "R1@(0.5)", "R1@(0.7)"]
    assert report.official["charades_sta"]["miou"] == 0.5
    assert list(report.official["svg"]) == [
        "mtiou", "tiou@0.3", "tiou@0.5", "tiou@0.7", "msiou", "siou@0.3", "siou@0.5", "siou@0.7",
        "mstiou", "viou@0.3", "viou@0.5", "viou@0.7", "caption_score",
    ]  # fmt: skip
    assert report.official["svg"]["msiou"] == 1.0 and report.official["svg"]["caption_score"] == {}
    assert any("empty.json" in w and "none of" in w for w in report.warnings)


def test_cli_score_writes_total_eval(tmp_path, capsys):
    _tree(tmp_path)
    assert main(["eval", "score", "--result-dir", str(tmp_path), "--no-captions"]) == 0
    out = json.loads((tmp_path / "total_eval.json").read_text())
    assert out["refcoco"] == {"miou": 0.75, "R1@(0.5)": 100.0}
    assert out[EXTRA_KEY]["per_file"]["refcoco"]["degenerate"] == {"unparsable_box": 1}
    assert "task: refcoco" in capsys.readouterr().out
    # rerun: our own output is not scored; official-only output has no extra section
    off = tmp_path / "official.json"
    assert main(["eval", "score", "--result-dir", str(tmp_path), "--official-only", "--out", str(off)]) == 0
    assert set(json.loads(off.read_text())) == {"refcoco", "charades_sta", "svg"}


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["eval", "score", "--result-dir", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stchat: error: result directory not found") and err.count("\n") == 1
    write_records(tmp_path / "m" / "s" / "rec" / "d" / "bad.json", [{"converted_outputs": "[0,0,1,1]"}])
    assert main(["eval", "score", "--result-dir", str(tmp_path)]) == 2
    assert "gt_bbox" in capsys.readouterr().err


def test_captions_unavailable_without_java(monkeypatch):
    monkeypatch.setenv("PATH", "")
    assert set(captions.caption_score(["a"], ["a"])) == {captions.UNAVAILABLE_KEY}


def test_pred_caption_official_rule():
    assert captions.pred_caption("Ends in <TEMP-050>, a man runs. <TEMP-010>: [..]") == " a man runs"
    assert captions.pred_caption("no comma and no period") == "no comma and no period"


@pytest.mark.slow
@pytest.mark.skipif(not captions.java_available(), reason="needs a Java runtime")
def test_caption_score_with_java():
    # one call (the Java tools take ~20 s to start): two perfect captions and one wrong one
    gts = ["a man opens the door", "the dog runs", "a red car parks"]
    s = captions.caption_score(gts, ["A man opens the door.", "the dog runs", "cats sleep"])
    assert list(s) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
    assert [len(s[f"Bleu_{n}"]) for n in range(1, 5)] == [1, 2, 3, 4]
    # ROUGE-L is the mean of per-caption F-scores: 1, 1, 0 (PTB tokenisation drops case and the period)
    assert s["ROUGE_L"] == round(2 / 3, 3)
    assert 0 < s["Bleu_1"][0] < 1 and 0 < s["METEOR"] < 1
