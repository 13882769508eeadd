"""Locating benchmarks for ``stchat eval run`` (official layout, one file, manifest), subsets and seeds.

No model here: these tests stop before the model loads (errors are raised first, by design).
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from stchat.cli import main
from stchat.eval import distributed as D
from stchat.eval import sources
from stchat.eval.results import BENCHMARKS, result_path
from stchat.eval.samples import RunError, Subset, check_media, load_samples
from stchat.eval.synthetic_bench import make_synthetic_benchmark

CLIP = "syn_c_640x360_30fps_noaudio_longgop"


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("bench")
    make_synthetic_benchmark(root, synthetic_dir, tasks=("stvg", "svg", "tvg"), clips=(CLIP,))
    return root


def test_official_table_matches_official_config() -> None:
    # inference/config.yaml + set_args.py: every --all_name, its annotation file and media folder
    assert set(sources.OFFICIAL_FILES) == set(BENCHMARKS)
    assert sources.OFFICIAL_FILES["refcoco"] == ("refcoco/refcoco_val.json", "refcoco/sources")
    assert sources.OFFICIAL_FILES["refcoco+_testB"] == ("refcoco/refcoco+_testB.json", "refcoco/sources")
    assert sources.OFFICIAL_FILES["refcocog_test"] == ("refcoco/refcocog_test.json", "refcoco/sources")
    assert sources.OFFICIAL_FILES["charades_sta"] == ("charades/test.json", "charades/sources")
    assert {n: sources.official_task_kind(n) for n in ("stvg", "elc", "charades_sta", "refcocog")} == {
        "stvg": "stvg", "elc": "elc", "charades_sta": "tvg", "refcocog": "rec"}


def test_official_root_levels_and_defaults(bench: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    shutil.copytree(bench, repo / "data" / "benchmarks", symlinks=True)
    for root in (repo, repo / "data", repo / "data" / "benchmarks"):
        entries = sources.official_entries(root)
        # only the names whose annotation file exists, in the official table's order
        assert [e.name for e in entries] == ["stvg", "svg", "charades_sta"]
    e = sources.official_entries(repo, ["charades_sta", "stvg", "stvg"])
    assert [x.name for x in e] == ["charades_sta", "stvg"]
    assert (e[0].task, e[0].dataset, e[0].task_kind) == ("tvg", "charades_sta", "tvg")
    assert Path(e[0].ann_path) == repo / "data" / "benchmarks" / "charades" / "test.json"
    assert Path(e[1].data_folder) == repo / "data" / "benchmarks" / "st-align" / "sources"


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--official-root", "{b}", "--names", "stvg", "nope"], "unknown benchmark name(s) nope"),
        (["--official-root", "{b}/missing"], "official benchmark folder not found"),
        (["--official-root", "{b}/st-align"], "has no st-align/, charades/ or refcoco/"),
        (["--official-root", "{b}", "--names", "elc"], "annotation file not found for elc"),
        (["--annotations", "{b}/st-align/svg.json", "--task", "svg", "--media-root", "{b}/nowhere"],
         "media folder not found"),
        (["--annotations", "{b}/none.json", "--task", "tvg", "--media-root", "{b}"],
         "annotation file not found"),
        (["--annotations", "{b}/st-align/svg.json", "--task", "svg"], "needs --task and --media-root"),
        (["--annotations", "{b}/st-align/svg.json", "--task", "svg", "--media-root", "{b}",
          "--name", "a_stvg"],
         "would be scored as stvg"),
        (["--benchmark", "{b}/benchmark.json", "--names", "stvg"], "--names does not apply to --benchmark"),
        (["--benchmark", "{b}/benchmark.json", "--only", "elc"], "not in the benchmark: elc"),
        (["--benchmark", "{b}/nope.json"], "benchmark manifest not found"),
        (["--benchmark", "{b}/st-align/stvg.json"], "not a benchmark manifest"),
        (["--official-root", "{b}", "--first", "0"], "--first must be at least 1"),
        (["--official-root", "{b}", "--random", "-2"], "--random must be at least 1"),
    ],
)
def test_bad_input_is_one_clear_line(bench: Path, argv: list[str], needle: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = [a.replace("{b}", str(bench)) for a in argv]
    assert main(["eval", "run", *args, "--save-dir", str(bench / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("stchat: error: ") and needle in err[0], err


def test_missing_media_fails_before_the_model(tmp_path: Path, bench: Path) -> None:
    ann = json.loads((bench / "st-align" / "stvg.json").read_text())
    ann[1]["video_path"] = "gone.mp4"
    (tmp_path / "stvg.json").write_text(json.dumps(ann))
    entry = sources.file_entry(tmp_path / "stvg.json", "stvg", bench / "st-align" / "sources")
    samples = load_samples(entry)
    with pytest.raises(RunError, match=r"1 media file\(s\) not found, e.g. .*gone.mp4"):
        check_media(entry.name, samples)
    check_media(entry.name, samples[:1])  # the others are there


def test_routing_check_and_prefix_warning(bench: Path, tmp_path: Path) -> None:
    e = sources.file_entry(bench / "st-align" / "svg.json", "svg", bench / "st-align" / "sources")
    ok = tmp_path / "runs"
    assert sources.check_routing(e, result_path(ok, "m", "default", e.name, e.task, e.dataset), ok) is None
    # a save_dir whose own name says "stvg": fine below it, misrouted when scored from above
    odd = tmp_path / "stvg_runs"
    warn = sources.check_routing(e, result_path(odd, "m", "default", e.name, e.task, e.dataset), odd)
    assert warn is not None and "read as stvg" in warn
    with pytest.raises(sources.BenchmarkSourceError, match="would be scored as tvg"):
        sources.check_routing(e, result_path(ok, "m", "tvg", e.name, e.task, e.dataset), ok)


def test_manifest_paths_survive_a_move(bench: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(bench, moved, symlinks=True)
    entries = sources.load_manifest(moved / "benchmark.json")
    assert all(Path(e.ann_path).is_relative_to(moved) for e in entries)
    assert [len(load_samples(e)) for e in entries] == [e.num_samples for e in entries]


def test_subsets_keep_ids_and_prompts(bench: Path) -> None:
    (e,) = sources.official_entries(bench, ["svg"])
    full = load_samples(e, Subset(seed=3))
    firsts = load_samples(e, Subset(first=2, seed=3))
    rand = load_samples(e, Subset(random_n=2, subset_seed=1, seed=3))
    assert [s.sample_id for s in full] == ["0", "1", "2"] and [s.sample_id for s in firsts] == ["0", "1"]
    by_id = {s.sample_id: s.query for s in full}
    # a sample's id and prompt do not depend on which subset it came in
    assert all(by_id[s.sample_id] == s.query for s in [*firsts, *rand])
    assert rand == load_samples(e, Subset(random_n=2, subset_seed=1, seed=3))
    # SVG prompts draw a temporal phrase: some seed must give a different phrase for some sample
    assert any(load_samples(e, Subset(seed=k))[i].query != full[i].query for k in range(10) for i in range(3))


def test_official_unseeded_draws_from_module_random(bench: Path) -> None:
    (e,) = sources.official_entries(bench, ["svg"])
    random.seed(11)
    a = [s.query for s in load_samples(e, Subset(seed=None))]
    random.seed(11)
    b = [s.query for s in load_samples(e, Subset(seed=None))]
    assert a == b  # the official call pattern, replayable under random.seed like the official classes
    runs = set()
    for k in range(12):
        random.seed(k)
        runs.add(tuple(s.query for s in load_samples(e, Subset(seed=None))))
    assert len(runs) > 1  # and it really is the global RNG: different states, different prompts


def test_merge_keeps_records_of_other_subsets(tmp_path: Path) -> None:
    final = tmp_path / "stvg.json"
    final.write_bytes(b'{"id": "7", "x": 1}\n')
    part = D.part_path(final, 0, 2)
    part.write_bytes(b'{"id": "1", "x": 2}\n{"id": "0", "x": 3}\n')
    assert D.merge_parts(final, ["0", "1"]) == 3
    ids = [json.loads(x)["id"] for x in final.read_text().splitlines()]
    assert ids == ["0", "1", "7"]


def test_make_synthetic_cli(tmp_path: Path, synthetic_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b"
    assert main(["eval", "make-synthetic", "--out", str(out), "--synthetic-dir", str(synthetic_dir),
                 "--clips", CLIP, "--tasks", "elc", "--per-task", "2"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "benchmark.json")
    (e,) = sources.load_manifest(out / "benchmark.json")
    assert (e.name, e.task_kind, e.num_samples) == ("elc", "elc", 2)
    assert len(json.loads((out / "st-align" / "elc.json").read_text())) == 2
    assert main(["eval", "make-synthetic", "--out", str(out), "--synthetic-dir", str(tmp_path / "x")]) == 2
    assert "synthetic clip folder not found" in capsys.readouterr().err
