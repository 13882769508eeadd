"""Benchmark result files in the official layout (docs/official_quirks.md#benchmark-layout).

``<save_dir>/<model>/<sub_dir>/<task>/<dataset>/<name>.json``, JSON lines, one record per sample: the
dataset item minus tensors, plus ``variables``, ``outputs`` (raw decoded text without ``<|im_end|>``) and
``converted_outputs`` (``replace_and_normalize(outputs)``). The official inference appends one line per
sample, so a run that is killed leaves a truncated last line; the official ``load_jsonl`` skips every line
that does not decode, and so do we (with a warning, so the user learns about it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stchat.errors import StchatError

#: Official ``--task`` / ``--dataset`` per ``--all_name`` (``inference/src/set_args.py``).
BENCHMARKS: dict[str, tuple[str, str]] = {
    "refcoco": ("rec", "refcoco"),
    "refcoco_testA": ("rec", "refcoco"),
    "refcoco_testB": ("rec", "refcoco"),
    "refcoco+": ("rec", "refcoco"),
    "refcoco+_testA": ("rec", "refcoco"),
    "refcoco+_testB": ("rec", "refcoco"),
    "refcocog": ("rec", "refcoco"),
    "refcocog_test": ("rec", "refcoco"),
    "charades_sta": ("tvg", "charades_sta"),
    "stvg": ("st-align", "vidstg"),
    "svg": ("st-align", "vidstg"),
    "elc": ("st-align", "vidstg"),
}


_DECODER = json.JSONDecoder()


class ResultFileError(StchatError):
    """A result file cannot be read or a record lacks what its task's scorer needs."""


@dataclass
class LoadedResults:
    path: Path
    records: list[dict[str, Any]]
    bad_lines: list[int] = field(default_factory=list)  # 1-based line numbers that did not decode
    truncated_tail: bool = False  # the last line did not decode (typical of a killed run)

    @property
    def warnings(self) -> list[str]:
        out = []
        if self.truncated_tail:
            out.append(f"{self.path}: last line is truncated (killed run?); ignored")
        middle = [n for n in self.bad_lines if not (self.truncated_tail and n == self.bad_lines[-1])]
        if middle:
            shown = ", ".join(map(str, middle[:5])) + (" ..." if len(middle) > 5 else "")
            out.append(f"{self.path}: {len(middle)} line(s) are not JSON and were ignored (line {shown})")
        return out


def result_path(
    save_dir: str | os.PathLike[str],
    model: str,
    sub_dir: str,
    name: str,
    task: str | None = None,
    dataset: str | None = None,
) -> Path:
    """Where results of benchmark ``name`` go: ``<save_dir>/<model>/<sub_dir>/<task>/<dataset>/<name>.json``.

    For an official ``--all_name`` the task and dataset levels come from the official table
    (:data:`BENCHMARKS`); any other name (a custom annotation file) must give both. One function serves
    the scorer's tests and ``stchat eval run``, so both agree on the layout by construction.
    """
    if task is None or dataset is None:
        if name not in BENCHMARKS:
            raise ResultFileError(
                f"unknown benchmark {name!r} (give its task and dataset); known: {', '.join(BENCHMARKS)}"
            )
        task, dataset = task or BENCHMARKS[name][0], dataset or BENCHMARKS[name][1]
    # The official code uses ``model_path.split("/")[-1]``, which gives an empty level for a path ending in
    # "/"; we strip the slash first so "ckpt/" and "ckpt" share one result folder.
    model_name = str(model).rstrip("/").split("/")[-1]
    return Path(save_dir) / model_name / sub_dir / task / dataset / f"{name}.json"


def _jsonable(value: Any) -> Any:
    """Drop what the official writer drops (tensors) and anything else JSON cannot hold."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items() if _is_serialisable(v)}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _is_serialisable(value: Any) -> bool:
    if isinstance(value, str | int | float | bool) or value is None:
        return True
    if isinstance(value, Mapping | list | tuple):
        return True
    return False  # tensors, arrays, PIL images: the official writer deletes tensors, the rest cannot be JSON


def append_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Append one record as one JSON line (the official writer opens, appends one line and closes)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_jsonable(record), ensure_ascii=True)
    with p.open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


def write_records(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> None:
    """Write (replace) a whole result file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(_jsonable(r), ensure_ascii=True) + "\n")


def read_records(path: str | os.PathLike[str]) -> LoadedResults:
    """Read a JSON-lines result file; lines that do not decode are skipped like official ``load_jsonl``."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ResultFileError(f"cannot read result file {p}: {exc.strerror or exc}") from None
    text = raw.decode("utf-8", errors="replace")
    records: list[dict[str, Any]] = []
    bad: list[int] = []
    # ``for line in fp`` in text mode splits on universal newlines and yields no empty line after a final
    # newline; a blank line in the middle fails ``json.loads`` there, so it is a skipped line here too.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    # ``raw_decode`` is ``json.loads`` minus its two whitespace scans; a line it does not take whole
    # (leading or trailing whitespace, trailing garbage, not JSON) goes through ``json.loads`` itself, so
    # the accepted lines and values are exactly ``json.loads``'s. This loop is most of the reading time.
    raw_decode = _DECODER.raw_decode
    for i, line in enumerate(lines):
        try:
            rec, end = raw_decode(line)
            if end != len(line):
                rec = json.loads(line)
        except ValueError:
            try:
                rec = json.loads(line)
            except ValueError:
                bad.append(i + 1)
                continue
        # The official loader would keep any JSON value; a non-object line would crash its scorer later.
        if not isinstance(rec, dict):
            bad.append(i + 1)
            continue
        records.append(rec)
    truncated = False
    if bad and not text.endswith("\n"):
        last_nonblank = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
        truncated = last_nonblank >= 0 and _undecodable(lines[last_nonblank])
    return LoadedResults(path=p, records=records, bad_lines=bad, truncated_tail=truncated)


def _undecodable(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return True
    return False


def iter_result_files(result_dir: str | os.PathLike[str]) -> Iterator[str]:
    """Every ``*.json`` below ``result_dir``, in ``os.walk`` order and joined as the official script does.

    The path strings keep the user's spelling of ``result_dir`` because task routing tests substrings of
    exactly these strings (reference Q24).
    """
    root_dir = os.fspath(result_dir)
    if not os.path.isdir(root_dir):
        raise ResultFileError(f"result directory not found: {root_dir}")
    for root, _, files in os.walk(root_dir):
        for name in files:
            if name.endswith(".json"):
                yield os.path.join(root, name)
