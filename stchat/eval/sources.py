"""Which annotation files a benchmark run reads, and where their results go.

Three ways to name a benchmark, all resolved to :class:`BenchEntry` objects:

* the official layout (docs/official_quirks.md#benchmark-layout, ``inference/config.yaml``): a
``data/benchmarks`` folder holding
  ``st-align/{stvg,svg,elc}.json``, ``charades/test.json`` and ``refcoco/<split>.json``, each with a
  ``sources`` media folder next to it, selected by the official ``--all_name`` values;
* one annotation file in an official format with its task and media root (a custom subset or a new split);
* a ``benchmark.json`` manifest, as written by ``stchat eval make-synthetic``.

Results always land in the official result layout (:func:`stchat.eval.results.result_path`). Because the
official scorer routes files by substrings of their path (reference Q24), :func:`check_routing` refuses a
name or ``sub_dir`` that would make the scorer read a file as the wrong task.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from stchat.errors import StchatError
from stchat.eval.results import BENCHMARKS
from stchat.eval.score import route
from stchat.tasks import benchmark_tasks, eval_family, find_task


class BenchmarkSourceError(StchatError):
    """A benchmark cannot be located: missing file or folder, unknown name, bad manifest."""


@dataclass(frozen=True)
class BenchEntry:
    """One benchmark file: what ``stchat eval run`` needs to run it and where its results go."""

    name: str  # result file stem; the official ``all_name`` for official benchmarks
    task: str  # result-path task level: "st-align" | "tvg" | "rec"
    dataset: str  # result-path dataset level: "vidstg" | "charades_sta" | "refcoco"
    task_kind: str  # stvg | svg | elc | tvg | rec (what the dataset reader and the scorer do)
    ann_path: str
    data_folder: str
    num_samples: int | None = None  # known for manifests; None = count when loaded


def kind_layout(task_kind: str) -> tuple[str, str]:
    """Result-path ``task``/``dataset`` levels of a task kind (the task table's eval route, which holds
    the official ``set_args.py`` values)."""
    spec = find_task(task_kind)
    if spec is None or spec.eval is None:
        raise BenchmarkSourceError(f"unknown task {task_kind!r}; choose from {', '.join(benchmark_tasks())}")
    return spec.eval.family, spec.eval.dataset

#: Official ``--all_name`` -> (annotation file, media folder), relative to ``data/benchmarks``
#: (``inference/config.yaml``; ``refcoco`` reads ``refcoco_val.json``, ``refcoco+`` ``refcoco+_val.json``).
OFFICIAL_FILES: dict[str, tuple[str, str]] = {
    "stvg": ("st-align/stvg.json", "st-align/sources"),
    "svg": ("st-align/svg.json", "st-align/sources"),
    "elc": ("st-align/elc.json", "st-align/sources"),
    "charades_sta": ("charades/test.json", "charades/sources"),
    "refcoco": ("refcoco/refcoco_val.json", "refcoco/sources"),
    "refcoco_testA": ("refcoco/refcoco_testA.json", "refcoco/sources"),
    "refcoco_testB": ("refcoco/refcoco_testB.json", "refcoco/sources"),
    "refcoco+": ("refcoco/refcoco+_val.json", "refcoco/sources"),
    "refcoco+_testA": ("refcoco/refcoco+_testA.json", "refcoco/sources"),
    "refcoco+_testB": ("refcoco/refcoco+_testB.json", "refcoco/sources"),
    "refcocog": ("refcoco/refcocog_val.json", "refcoco/sources"),
    "refcocog_test": ("refcoco/refcocog_test.json", "refcoco/sources"),
}
_TOP_FOLDERS = ("st-align", "charades", "refcoco")


def official_task_kind(name: str) -> str:
    """Task kind of an official ``all_name`` (the ST-Align task is the name itself)."""
    task, _ = BENCHMARKS[name]
    return name if task == "st-align" else task


def find_official_root(root: str | os.PathLike[str]) -> Path:
    """The ``data/benchmarks`` folder: ``root`` itself, or ``root/benchmarks``, or ``root/data/benchmarks``.

    Accepting the repository root or ``data`` as well saves users from guessing which level we mean.
    """
    base = Path(root)
    if not base.is_dir():
        raise BenchmarkSourceError(f"official benchmark folder not found: {base}")
    for cand in (base, base / "benchmarks", base / "data" / "benchmarks"):
        if any((cand / top).is_dir() for top in _TOP_FOLDERS):
            return cand
    raise BenchmarkSourceError(
        f"{base} has no st-align/, charades/ or refcoco/ folder (expected the official data/benchmarks)"
    )


def official_entries(root: str | os.PathLike[str], names: list[str] | None = None) -> list[BenchEntry]:
    """Entries for official ``all_name`` values under ``root`` (default: every one whose file exists)."""
    bench = find_official_root(root)
    if names:
        unknown = [n for n in names if n not in OFFICIAL_FILES]
        if unknown:
            raise BenchmarkSourceError(
                f"unknown benchmark name(s) {', '.join(unknown)}; official names: {', '.join(OFFICIAL_FILES)}"
            )
        selected = list(dict.fromkeys(names))  # de-duplicated, order kept
    else:
        selected = [n for n, (ann, _) in OFFICIAL_FILES.items() if (bench / ann).is_file()]
        if not selected:
            raise BenchmarkSourceError(f"no official annotation file found under {bench}")
    out = []
    for name in selected:
        ann, media = OFFICIAL_FILES[name]
        task, dataset = BENCHMARKS[name]
        out.append(_checked(BenchEntry(name, task, dataset, official_task_kind(name), str(bench / ann),
                                       str(bench / media))))
    return out


def file_entry(
    annotations: str | os.PathLike[str], task_kind: str, media_root: str | os.PathLike[str],
    name: str | None = None,
) -> BenchEntry:
    """Entry for one annotation file; ``name`` (the result file stem) defaults to the file's stem."""
    task, dataset = kind_layout(task_kind)
    stem = name if name is not None else Path(annotations).stem
    if not stem or "/" in stem or "\\" in stem or stem in (".", ".."):
        raise BenchmarkSourceError(f"result name {stem!r} must be a plain file name")
    return _checked(BenchEntry(stem, task, dataset, task_kind, str(annotations), str(media_root)))


def _checked(entry: BenchEntry) -> BenchEntry:
    if not Path(entry.ann_path).is_file():
        raise BenchmarkSourceError(f"annotation file not found for {entry.name}: {entry.ann_path}")
    if not Path(entry.data_folder).is_dir():
        raise BenchmarkSourceError(f"media folder not found for {entry.name}: {entry.data_folder}")
    return entry


def load_manifest(path: str | os.PathLike[str]) -> list[BenchEntry]:
    """Read a ``benchmark.json`` manifest (as written by ``stchat eval make-synthetic``)."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
        entries = [BenchEntry(**e) for e in raw]
    except FileNotFoundError:
        raise BenchmarkSourceError(f"benchmark manifest not found: {p}") from None
    except IsADirectoryError:
        raise BenchmarkSourceError(f"benchmark manifest is a folder, not a file: {p}") from None
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as exc:
        raise BenchmarkSourceError(f"not a benchmark manifest: {p} ({exc})") from None
    # Relative paths are relative to the manifest's folder (make-synthetic writes them so).
    entries = [BenchEntry(**{**e.__dict__, "ann_path": str(p.parent / e.ann_path),
                             "data_folder": str(p.parent / e.data_folder)}) for e in entries]
    for e in entries:
        if eval_family(e.task_kind) is None:
            raise BenchmarkSourceError(f"{p}: entry {e.name!r} has unknown task kind {e.task_kind!r}")
    return entries


def select(entries: list[BenchEntry], only: list[str] | None) -> list[BenchEntry]:
    """Keep the entries named in ``only`` (all when None); unknown names are an error."""
    if not only:
        return entries
    unknown = sorted(set(only) - {e.name for e in entries})
    if unknown:
        raise BenchmarkSourceError(
            f"not in the benchmark: {', '.join(unknown)} (it has: {', '.join(e.name for e in entries)})"
        )
    return [e for e in entries if e.name in only]


def check_routing(entry: BenchEntry, final: Path, save_dir: str | os.PathLike[str]) -> str | None:
    """Refuse a result path the official scorer would read as another task (Q24); warn on the prefix.

    The part below ``save_dir`` is ours (model, sub_dir, task, dataset, name) and must route right. The
    ``save_dir`` prefix is the user's: if it alone misroutes, scoring from ``save_dir`` would be wrong but
    scoring from ``<save_dir>/<model>`` is fine, so that is a warning (returned), not an error.
    """
    below = "/" + final.relative_to(save_dir).as_posix()
    got = route(below)
    if got != entry.task_kind:
        raise BenchmarkSourceError(
            f"results of {entry.name} ({entry.task_kind}) would be scored as {got or 'nothing'}: the "
            "official scorer routes by path substrings (/rec/, /tvg/, then stvg, svg, elc); "
            "rename --name/--sub-dir"
        )
    full = route(Path(save_dir).resolve().as_posix() + below)
    if full != entry.task_kind:
        return (f"{final}: scored from a folder above {save_dir} this file would be read as {full}; "
                f"score with --result-dir {save_dir} or below")
    return None
