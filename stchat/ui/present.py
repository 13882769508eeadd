"""What the page shows of a run: the timing table, the status line, and text safe to show to any visitor.

Kept apart from the handlers so that the table's shape (fixed, human column names) and the escaping
rules have one home, and the browser test and the unit tests read the same constants.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

# Fixed order, empty or filled: a user (and a screen reader) meets the same columns every time.
TABLE_COLUMNS = ("what", "start", "end", "duration", "frames", "box (px)")
# Shares of the width, so all six columns stay on screen at phone width (400 px).
COLUMN_WIDTHS = ["21%", "12%", "12%", "18%", "14%", "23%"]
SEGMENT = "segment"
MODEL_BOX = "model box"  # a box the model itself gave, at one of the 100 sampled frames
INTERPOLATED = "interpolated"  # a sampled frame inside the segment where the drawn box is interpolated
TABLE_NOTE = (
    "Times in seconds. “model box” rows are the boxes the model gave; “interpolated” rows are sampled "
    "frames where the drawn box is interpolated between them; box (px) is x1, y1, x2, y2. The segment's "
    "end is when its last frame stops showing."
)


@dataclass(frozen=True)
class TableRow:
    what: str
    start_s: float
    end_s: float | None
    first_frame: int
    last_frame: int | None = None
    box_px: tuple[int, int, int, int] | None = None

    def cells(self) -> list[str]:
        duration = "" if self.end_s is None else f"{self.end_s - self.start_s:.3f}"
        frames = str(self.first_frame) if self.last_frame is None else f"{self.first_frame}–{self.last_frame}"
        box = "" if self.box_px is None else ", ".join(str(int(v)) for v in self.box_px)
        end = "" if self.end_s is None else f"{self.end_s:.3f}"
        return [self.what, f"{self.start_s:.3f}", end, duration, frames, box]


def table_rows(mapped: Any) -> list[TableRow]:
    """The segment, then every sampled frame inside it: the model's boxes and the interpolated ones.

    ``mapped`` is a :class:`stchat.mapping.MappedAnswer`; sampled frames are the 100 the model saw, so
    an answer that skips some of them shows where the drawing fills in.
    """
    fm = mapped.frame_map
    rows = [TableRow(SEGMENT, mapped.start_s, mapped.end_s, mapped.first_frame, mapped.last_frame)]
    keyed = {k.frame: k for k in mapped.keyframes}
    if not keyed:
        return rows
    track = mapped.box_track()
    for frame in sorted(set(fm.indices) | set(keyed)):
        if frame in keyed:
            k = keyed[frame]
            rows.append(TableRow(MODEL_BOX, k.time_s, None, frame, None, tuple(k.box_px)))
        elif mapped.first_frame <= frame <= mapped.last_frame and frame in track:
            box = tuple(int(round(v)) for v in track[frame])
            rows.append(TableRow(INTERPOLATED, fm.seconds(frame), None, frame, None, box))  # type: ignore[arg-type]
    return rows


def table_value(rows: Sequence[TableRow]) -> dict[str, Any]:
    return {"headers": list(TABLE_COLUMNS), "data": [r.cells() for r in rows]}


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
