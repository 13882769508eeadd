"""Crash-safe result I/O of the runner: torn-tail repair, resume bookkeeping, sharding and merging."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stchat.eval import distributed as D
from stchat.eval.results import ResultFileError, result_path
from stchat.eval.writer import ResultWriter, done_ids, repair_tail


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_result_path_is_official_layout(tmp_path: Path) -> None:
    p = result_path(tmp_path, "appletea2333/LLaVA-ST-Qwen2-7B/", "debug", "stvg")
    assert p == tmp_path / "LLaVA-ST-Qwen2-7B" / "debug" / "st-align" / "vidstg" / "stvg.json"
    # a custom name gives its own task and dataset levels; an unknown name without them is refused
    p = result_path(tmp_path, "m", "s", "my_rec", task="rec", dataset="refcoco")
    assert p == tmp_path / "m" / "s" / "rec" / "refcoco" / "my_rec.json"
    with pytest.raises(ResultFileError):
        result_path(tmp_path, "m", "s", "my_rec")


def test_repair_tail_cuts_torn_line_only(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    good = b'{"id": "0", "x": 1}\n{"id": "1", "x": 2}\n'
    p.write_bytes(good + b'{"id": "2", "x"')
    assert repair_tail(p) == len(b'{"id": "2", "x"')
    assert p.read_bytes() == good
    assert repair_tail(p) == 0  # idempotent on a clean file
    assert p.read_bytes() == good


def test_repair_tail_cuts_garbled_complete_line(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_bytes(b'{"id": "0"}\n{"id": \n')
    repair_tail(p)
    assert p.read_bytes() == b'{"id": "0"}\n'


def test_repair_tail_single_torn_line_and_empty(tmp_path: Path) -> None:
    p = tmp_path / "r.json"
    p.write_bytes(b'{"id": "0", "outp')
    repair_tail(p)
    assert p.read_bytes() == b""
    assert repair_tail(p) == 0
    assert repair_tail(tmp_path / "missing.json") == 0


def test_repair_tail_long_last_line(tmp_path: Path) -> None:
    # the backwards scan must grow its window past a line longer than its first block (1 MiB)
    p = tmp_path / "r.json"
    first = json.dumps({"id": "0", "outputs": "a" * (3 << 20)}).encode() + b"\n"
    p.write_bytes(first + b'{"id": "1", "outputs": "' + b"b" * (2 << 20))
    repair_tail(p)
    assert p.read_bytes() == first


def test_writer_appends_after_repair_and_resume_ids(tmp_path: Path) -> None:
    p = tmp_path / "a" / "b.json"
    with ResultWriter(p) as w:
        w.append({"id": "0", "outputs": "x"})
        w.append({"id": "1", "outputs": "ü"})
    with open(p, "ab") as f:
        f.write(b'{"id": "2", "outpu')  # a kill mid-write
    assert done_ids(p) == {"0", "1"}
    with ResultWriter(p) as w:
        assert w.repaired > 0
        w.append({"id": "2", "outputs": "z"})
    assert [r["id"] for r in _lines(p)] == ["0", "1", "2"]
    assert _lines(p)[1]["outputs"] == "ü"


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 200), world=st.integers(1, 9))
def test_shards_are_a_partition(n: int, world: int) -> None:
    seen: list[int] = []
    for r in range(world):
        seen += D.shard_positions(n, r, world)
    assert sorted(seen) == list(range(n))  # every sample exactly once, for any world size (unlike Q19)


def test_merge_orders_dedups_and_removes_parts(tmp_path: Path) -> None:
    final = tmp_path / "stvg.json"
    order = [str(i) for i in range(7)]
    parts = {r: D.part_path(final, r, 3) for r in range(3)}
    for r, p in parts.items():
        with ResultWriter(p) as w:
            for i in D.shard_positions(7, r, 3):
                w.append({"id": str(i), "rank": r})
    # a part of an earlier 2-process attempt that overlaps, and a torn tail
    old = D.part_path(final, 1, 2)
    old.write_bytes(b'{"id": "1", "rank": 9}\n{"id": "3", "ra')
    final.write_bytes(b'{"id": "5", "rank": 7}\n')
    n = D.merge_parts(final, order)
    assert n == 7
    recs = _lines(final)
    assert [r["id"] for r in recs] == order
    assert recs[5]["rank"] == 7  # the final file's record wins over a part's duplicate
    assert not D.existing_parts(final)
    assert not final.with_name(final.name + ".merge-tmp").exists()


def test_part_files_are_not_json_files(tmp_path: Path) -> None:
    # the official scorer scores every *.json under a result dir (Q24): parts must never match
    assert not D.part_path(tmp_path / "stvg.json", 0, 2).name.endswith(".json")


def test_dist_info_reads_launcher_env(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    info = D.dist_info()
    assert (info.rank, info.world, info.local_rank, info.is_main) == (3, 4, 3, False)
