"""What the page shows of a run: the timing table, the status line, and text safe to show to any visitor.

Kept apart from the handlers so that the table's shape (fixed, human column names) and the escaping
rules have one home, and the browser test and the unit tests read the same constants.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Fixed order, empty or filled: a user (and a screen reader) meets the same columns every time.
TABLE_COLUMNS = ("what", "start", "end", "duration", "frames", "box (px)")
# Shares of the width, so all six columns stay on screen at phone width (400 px).
COLUMN_WIDTHS = ["21%", "12%", "12%", "18%", "14%", "23%"]
OK = "✔"  # status marks: plain symbols (not colour emoji) so they render with any system font
FAIL = "✖"
WARN = "⚠"


@dataclass
class RunResult:
    """Everything the page shows after a run; ``None`` outputs clear the matching component."""

    status: str
    clip: Path | None = None
    annotated: Path | None = None
    table: list[Any] = field(default_factory=list)  # stchat.timing.TableRow, as the renderer made them
    raw_answer: str = ""
    normalised_answer: str = ""
    downloads: list[Path] = field(default_factory=list)
    subtitles: Path | None = None  # WebVTT of the found moment on the clip's clock, for the clip player

    @property
    def ok(self) -> bool:
        return not self.status.startswith(FAIL)


SEGMENT, MODEL_BOX, INTERPOLATED = "segment", "model box", "interpolated"  # as stchat.timing writes them
TABLE_NOTE = (
    "Times in seconds. “model box” rows are the boxes the model gave; “interpolated” rows show the box "
    "the clip draws between them; box (px) is x1, y1, x2, y2. The segment's end is when its last frame "
    "stops showing. Every frame's box is in boxes_mot.csv / boxes_coco.json under Downloads."
)


def cells(row: Any) -> list[str]:
    """A :class:`stchat.timing.TableRow` as the page's cells: seconds to the millisecond, compact frames."""
    segment = row.kind == SEGMENT
    first, last = row.first_frame, row.last_frame
    frames = str(first) if last == first else f"{first}–{last}"
    box = "" if row.box_px is None else ", ".join(str(int(v)) for v in row.box_px)
    end = f"{row.end_s:.3f}" if segment else ""
    duration = f"{row.duration_s:.3f}" if segment else ""
    return [row.kind, f"{row.start_s:.3f}", end, duration, frames, box]


def table_value(rows: Sequence[Any]) -> dict[str, Any]:
    return {"headers": list(TABLE_COLUMNS), "data": [cells(r) for r in rows]}


def empty_table() -> dict[str, Any]:
    return {"headers": list(TABLE_COLUMNS), "data": []}


# --------------------------------------------------------------------------- text safe to show

# Absolute POSIX / Windows paths; a visitor sees only the last part (a file name tells them which
# file, the folders above it tell them about our server).
_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\s\\/:'\"<>|,;()\[\]]+){2,}[\\/]?")


def hide_paths(text: str) -> str:
    """Replace absolute paths with their last component: no server folders in what the page shows."""

    def last(m: re.Match[str]) -> str:
        parts = [p for p in re.split(r"[\\/]", m.group(0)) if p]
        return parts[-1] if parts else ""

    return _PATH.sub(last, text)


def status_html(text: str) -> str:
    """A status line as escaped HTML: a file named like a link or ``**bold**`` stays plain text."""
    lines = hide_paths(text).strip().split("\n")
    return "<br>".join(html.escape(line) for line in lines if line.strip())


def with_notes(status: str, notes: list[str]) -> str:
    return status + "".join(f"\n{WARN} {n}" for n in dict.fromkeys(notes))


def shown(outputs: Any, notes: list[str], raw: str, normalised: str) -> RunResult:
    """What the page shows of a render: the renderer's typed rows and files, and one status line."""
    from stchat.tasks import get_task
    from stchat.timing import table_rows

    m = outputs.mapped
    moment = (f"{m.start_s:.3f} → {m.end_s:.3f} s ({m.duration_s:.3f} s), "
              f"frames {m.first_frame}–{m.last_frame}")
    n, spec = len(m.keyframes), get_task(m.task)
    if n == 0 and spec.needs_span and "boxes" in spec.draws:  # svg: the span was given; no box = nothing
        status = f"{FAIL} No boxes in the answer: the model did not locate anything in {moment}."
    else:
        status = f"{OK} Found {moment}" + (f", {n} model box{'es' if n != 1 else ''}." if n else ".")
    # Every few frames between the model's boxes, the interpolated box the clip draws (marked as such).
    step = max(1, (m.last_frame - m.first_frame + 1) // 30) if n else 0
    table = table_rows(m, interpolated_every=step) if n > 1 else outputs.table
    return RunResult(with_notes(status, [*notes, *outputs.warnings]), outputs.clip, outputs.annotated, table,
                     raw, normalised, list(outputs.files), outputs.exports.get("clip.vtt"))
