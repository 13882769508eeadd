"""Crash-safe, resumable, sharded JSON-lines output: what ``stchat eval run`` and batch ``stchat ground``
write with.

* every record is one ``write`` of a complete line followed by ``flush`` + ``fsync``;
* on start the file's torn tail (a line without its newline, left by a kill mid-write) is truncated
  away and every id already present is skipped, so a killed and restarted run never duplicates or drops
  an item;
* under ``torchrun`` / ``accelerate launch`` each rank takes a deterministic shard
  (:mod:`stchat.eval.distributed`), appends to its part file, and rank 0 merges the parts in item order.

Items are anything with a ``sample_id`` (a string unique in the run); ``infer(item)`` returns the record.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from stchat.eval import distributed as dist_mod


class Item(Protocol):
    sample_id: str


def repair_tail(path: Path) -> int:
    """Cut a torn last line (no trailing newline, or not valid JSON) off ``path``; returns bytes removed."""
    if not path.is_file():
        return 0
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        # Find the start of the last line without reading the whole file.
        block = min(size, 1 << 20)
        while True:
            f.seek(size - block)
            chunk = f.read(block)
            body = chunk[:-1] if chunk.endswith(b"\n") else chunk
            nl = body.rfind(b"\n")
            if nl >= 0 or block == size:
                break
            block = min(size, block * 4)
        start = size - block + nl + 1 if nl >= 0 else 0
        f.seek(start)
        last = f.read()
        keep = size
        if not last.endswith(b"\n"):
            keep = start
        else:
            try:
                json.loads(last)
            except (json.JSONDecodeError, UnicodeDecodeError):
                keep = start  # a complete-looking but garbled line is also a torn write
        if keep != size:
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return size - keep


class ResultWriter:
    """Append-only JSON-lines writer that survives SIGKILL at any point (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.repaired = repair_tail(path)
        self._f = open(path, "ab")

    def append(self, record: dict) -> None:
        self._f.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> ResultWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def done_ids(final: Path) -> set[str]:
    """Ids already written to the final file or to any part file (from any world size)."""
    ids: set[str] = set()
    for p in [final, *dist_mod.existing_parts(final)]:
        ids.update(str(r.get("id")) for r in dist_mod.read_jsonl(p))
    return ids


@dataclass
class RunStats:
    total: int = 0
    skipped: int = 0
    written: int = 0
    seconds: float = 0.0
    path: Path | None = None
    repaired_bytes: int = 0
    errors: list[str] = field(default_factory=list)


def run_samples(
    samples: Sequence[Item],
    infer: Callable[[Any], dict],
    final: Path,
    *,
    rank: int = 0,
    world: int = 1,
    progress: bool = True,
    desc: str = "eval",
) -> RunStats:
    """Evaluate this rank's shard of ``samples`` with ``infer`` and append the records.

    One process (``world == 1``) appends straight to ``final``; with more, each rank appends to its part
    file and the caller merges (:func:`stchat.eval.distributed.merge_parts`).
    """
    positions = dist_mod.shard_positions(len(samples), rank, world)
    out = final if world == 1 else dist_mod.part_path(final, rank, world)
    done = done_ids(final)
    todo = [samples[i] for i in positions if samples[i].sample_id not in done]
    stats = RunStats(total=len(positions), skipped=len(positions) - len(todo), path=out)
    t0 = time.perf_counter()
    with ResultWriter(out) as writer:
        stats.repaired_bytes = writer.repaired
        bar = tqdm(
            total=len(positions),
            initial=stats.skipped,
            desc=desc if world == 1 else f"{desc} [rank {rank}/{world}]",
            position=rank,
            disable=not progress,
            unit="sample",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        with bar:
            for sample in todo:
                writer.append(infer(sample))
                stats.written += 1
                bar.update(1)
    stats.seconds = time.perf_counter() - t0
    return stats


def run_distributed(
    samples: Sequence[Item],
    infer: Callable[[Any], dict],
    final: Path,
    *,
    progress: bool = True,
    desc: str = "eval",
) -> RunStats:
    """This process's shard (launcher env), then -- with several ranks -- barrier and merge on rank 0."""
    info = dist_mod.dist_info()
    stats = run_samples(samples, infer, final, rank=info.rank, world=info.world, progress=progress, desc=desc)
    if info.world > 1:
        dist_mod.barrier()
        if info.is_main:
            dist_mod.merge_parts(final, [s.sample_id for s in samples])
        dist_mod.barrier()
    return stats
