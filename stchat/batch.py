"""Batch grounding: ``stchat ground`` over a folder of videos or a CSV / JSONL manifest.

A manifest row is ``video, query[, task]`` (CSV with a header naming those columns, or JSON lines with
those keys); a relative video path is relative to the manifest's folder. A folder gives every video in
it (sorted by name) with the command line's query and task. Each item gets a stable id (its position and
file stem, e.g. ``0003_kitchen``) and its own result folder ``OUT/<id>/`` (answer.json, clip.mp4,
timing.csv ...), exactly what a single ``stchat ground`` writes.

Progress is the benchmark runner's machinery (:mod:`stchat.eval.writer`): one JSON line per finished
item in ``OUT/results.jsonl``, written crash-safe, so a killed run re-started with the same command
skips what is done; under ``torchrun`` / ``accelerate launch`` every process takes a deterministic shard
and rank 0 merges. ``OUT/summary.csv`` is the table of all items (rewritten at the end of every run).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stchat.answer import GroundingResult
from stchat.errors import StchatError
from stchat.eval import distributed as dist_mod
from stchat.eval.writer import RunStats, run_distributed
from stchat.pipeline import write_text_atomic

MANIFEST_SUFFIXES = (".csv", ".jsonl")
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".npy"})
RESULTS = "results.jsonl"
SUMMARY = "summary.csv"
SUMMARY_COLUMNS = ("id", "video", "task", "query", "status", "start_s", "end_s", "boxes", "answer",
                   "folder", "error")


class BatchError(StchatError):
    """A batch source (folder or manifest) cannot be read."""


@dataclass(frozen=True)
class BatchItem:
    """One video and its question; ``sample_id`` names its result folder and its line in results.jsonl."""

    sample_id: str
    video: str
    query: str
    task: str


def is_batch_source(path: Path) -> bool:
    return path.is_dir() or path.suffix.lower() in MANIFEST_SUFFIXES


def read_items(source: Path, query: str | None, task: str) -> list[BatchItem]:
    """The items of a folder or manifest; ``query``/``task`` fill what a row does not say."""
    if source.is_dir():
        videos = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
        if not videos:
            raise BatchError(f"no videos in {source}")
        if not query:
            raise BatchError("a folder of videos needs the QUERY to ask about each of them")
        rows = [{"video": str(v), "query": query, "task": task} for v in videos]
    elif source.is_file():
        rows = _manifest_rows(source, query, task)
    else:
        raise BatchError(f"batch source not found: {source}")
    return [BatchItem(_item_id(i, row["video"]), row["video"], row["query"], row["task"])
            for i, row in enumerate(rows)]


def _manifest_rows(path: Path, query: str | None, task: str) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BatchError(f"cannot read manifest {path.name}: {exc}") from None
    if path.suffix.lower() == ".csv":
        raw: list[Any] = list(csv.DictReader(io.StringIO(text)))
    else:
        raw = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    raw.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise BatchError(f"{path.name}: line {n} is not JSON ({exc.msg})") from None
    rows = []
    for n, row in enumerate(raw, 1):
        if not isinstance(row, dict) or not str(row.get("video") or "").strip():
            raise BatchError(f"{path.name}: row {n} has no 'video'")
        video = Path(str(row["video"]).strip())
        rows.append({"video": str(video if video.is_absolute() else path.parent / video),
                     "query": str(row.get("query") or query or ""),
                     "task": str(row.get("task") or task).strip().lower()})
    if not rows:
        raise BatchError(f"{path.name}: the manifest lists no videos")
    return rows


def _item_id(index: int, video: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(video).stem)[:60] or "item"
    return f"{index:04d}_{stem}"


# Runs one item into its folder: (status, result or None, render outputs or None).
GroundFn = Callable[[BatchItem, Path], tuple[str, GroundingResult | None, Any]]


def run_batch(items: Sequence[BatchItem], ground: GroundFn, out: Path, progress: bool = True) -> RunStats:
    """Ground every item of this process's shard (resuming), then write the summary on rank 0."""
    out.mkdir(parents=True, exist_ok=True)

    def infer(item: BatchItem) -> dict[str, Any]:
        folder = out / item.sample_id
        try:
            status, result, outs = ground(item, folder)
        except StchatError as exc:  # one bad item (missing file, bad query) must not stop the batch
            return _record(item, "error", None, None, str(exc))
        return _record(item, status, result, outs, "")

    stats = run_distributed(items, infer, out / RESULTS, progress=progress, desc="ground")
    if dist_mod.dist_info().is_main:
        write_summary(out, items)
    return stats


def _record(item: BatchItem, status: str, result: GroundingResult | None, outs: Any, error: str) -> dict:
    mapped = getattr(outs, "mapped", None)
    return {
        "id": item.sample_id, "video": item.video, "task": item.task, "query": item.query, "status": status,
        "start_s": getattr(mapped, "start_s", None), "end_s": getattr(mapped, "end_s", None),
        "boxes": len(result.answer.boxes) if result is not None else None,
        "answer": result.normalized_text if result is not None else "", "folder": item.sample_id,
        "error": " ".join(error.split()),
    }


def write_summary(out: Path, items: Sequence[BatchItem]) -> Path:
    """``summary.csv``: one row per item in item order (from results.jsonl; not yet run: status pending)."""
    done: dict[str, dict] = {}
    results = out / RESULTS
    if results.is_file():
        for line in results.read_text(encoding="utf-8").splitlines():
            if line.strip():
                rec = json.loads(line)
                done[str(rec.get("id"))] = rec
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for item in items:
        row = done.get(item.sample_id) or {"id": item.sample_id, "video": item.video, "task": item.task,
                                           "query": item.query, "status": "pending"}
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in SUMMARY_COLUMNS})
    path = out / SUMMARY
    write_text_atomic(path, buf.getvalue())
    return path
