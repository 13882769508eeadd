"""The timing table of a rendered answer: the segment and every keyframe box, as CSV and JSON.

Times are seconds on the file clock (what a player shows) with millisecond precision, plus
``HH:MM:SS.mmm``; ``split_s`` is the official demo's time, ``(frame - split[0]) / fps``. The segment's end
is exclusive (when its last frame stops showing), so ``duration = end - start`` is the clip's length.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from stchat.mapping import MappedAnswer
from stchat.render import format_timestamp

CSV_COLUMNS = (
    "kind",
    "sample_index",
    "t_norm",
    "frame",
    "last_frame",
    "time_s",
    "timestamp",
    "end_s",
    "end_timestamp",
    "duration_s",
    "duration",
    "split_s",
    "x1",
    "y1",
    "x2",
    "y2",
    "x1_norm",
    "y1_norm",
    "x2_norm",
    "y2_norm",
)


@dataclass(frozen=True)
class TimingRow:
    """One row: ``kind`` is ``segment`` (first row) or ``keyframe``."""

    kind: str
    frame: int
    time_s: float
    timestamp: str
    split_s: float
    sample_index: int | None = None
    t_norm: float | None = None
    last_frame: int | None = None
    end_s: float | None = None
    end_timestamp: str | None = None
    duration_s: float | None = None
    duration: str | None = None
    box_px: tuple[int, int, int, int] | None = None
    box_norm: tuple[float, float, float, float] | None = None

    def flat(self) -> dict[str, object]:
        d: dict[str, object] = {k: v for k, v in asdict(self).items() if k not in ("box_px", "box_norm")}
        for name, value in zip(("x1", "y1", "x2", "y2"), self.box_px or (None,) * 4, strict=True):
            d[name] = value
        for name, value in zip(
            ("x1_norm", "y1_norm", "x2_norm", "y2_norm"), self.box_norm or (None,) * 4, strict=True
        ):
            d[name] = value
        return d


def timing_rows(mapped: MappedAnswer) -> list[TimingRow]:
    fm = mapped.frame_map
    rows = [
        TimingRow(
            kind="segment",
            frame=mapped.first_frame,
            time_s=mapped.start_s,
            timestamp=format_timestamp(mapped.start_s),
            split_s=fm.split_seconds(mapped.first_frame),
            last_frame=mapped.last_frame,
            end_s=mapped.end_s,
            end_timestamp=format_timestamp(mapped.end_s),
            duration_s=mapped.duration_s,
            duration=format_timestamp(mapped.duration_s),
        )
    ]
    for k in mapped.keyframes:
        rows.append(
            TimingRow(
                kind="keyframe",
                frame=k.frame,
                time_s=k.time_s,
                timestamp=format_timestamp(k.time_s),
                split_s=k.split_s,
                sample_index=k.sample_index,
                t_norm=k.t,
                box_px=k.box_px,
                box_norm=tuple(float(v) for v in k.box_norm),  # type: ignore[arg-type]
            )
        )
    return rows


def write_csv(rows: list[TimingRow], path: str | Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row.flat().items()})


def to_json(
    rows: list[TimingRow], mapped: MappedAnswer, warnings: list[str] | None = None
) -> dict[str, object]:
    seg = rows[0]
    fm = mapped.frame_map
    return {
        # e.g. a truncated video: the times below refer to the part that could be read
        "warnings": list(warnings or []),
        "task": mapped.task,
        "start_s": seg.time_s,
        "end_s": seg.end_s,
        "duration_s": seg.duration_s,
        "start": seg.timestamp,
        "end": seg.end_timestamp,
        "duration": seg.duration,
        "first_frame": seg.frame,
        "last_frame": seg.last_frame,
        "split": list(fm.split),
        "width": fm.width,
        "height": fm.height,
        "keyframes": [
            {
                "sample_index": r.sample_index,
                "t_norm": r.t_norm,
                "frame": r.frame,
                "time_s": r.time_s,
                "timestamp": r.timestamp,
                "split_s": r.split_s,
                "box_px": list(r.box_px) if r.box_px else None,
                "box_norm": list(r.box_norm) if r.box_norm else None,
            }
            for r in rows[1:]
        ],
    }


def write_json(
    rows: list[TimingRow], mapped: MappedAnswer, path: str | Path, warnings: list[str] | None = None
) -> None:
    Path(path).write_text(json.dumps(to_json(rows, mapped, warnings), indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- rows for a page's table

TABLE_COLUMNS = ("what", "start", "end", "duration", "first frame", "last frame", "box (x1, y1, x2, y2) px")
KIND_SEGMENT = "segment"
KIND_MODEL = "model box"
KIND_INTERPOLATED = "interpolated"


@dataclass(frozen=True)
class TableRow:
    """One row a page shows as is: the segment, a box the model gave, or an interpolated box.

    Times are seconds on the source clock; ``end_s`` is exclusive (when the last frame stops showing), so
    ``duration_s = end_s - start_s``; frames are inclusive source indices.
    """

    kind: str  # KIND_SEGMENT / KIND_MODEL / KIND_INTERPOLATED
    start_s: float
    end_s: float
    duration_s: float
    first_frame: int
    last_frame: int
    box_px: tuple[int, int, int, int] | None = None

    @property
    def interpolated(self) -> bool:
        return self.kind == KIND_INTERPOLATED

    def cells(self) -> list[object]:
        """Display values in :data:`TABLE_COLUMNS` order (times as ``HH:MM:SS.mmm``)."""
        box = "" if self.box_px is None else ", ".join(str(v) for v in self.box_px)
        return [
            self.kind, format_timestamp(self.start_s), format_timestamp(self.end_s),
            format_timestamp(self.duration_s), self.first_frame, self.last_frame, box,
        ]


def table_rows(mapped: MappedAnswer, interpolated_every: int = 0) -> list[TableRow]:
    """The segment row, then a row per box the model gave, in time order.

    ``interpolated_every=n`` adds the interpolated box of every n-th clip frame between them (marked
    ``interpolated``); 0 adds none (the per-frame boxes are in the exports).
    """
    fm = mapped.frame_map
    rows = [
        TableRow(KIND_SEGMENT, mapped.start_s, mapped.end_s, mapped.duration_s,
                 mapped.first_frame, mapped.last_frame)
    ]
    boxes: list[TableRow] = []
    for k in mapped.keyframes:
        end = fm.end_seconds(k.frame)
        dur = round(end - k.time_s, 3)
        boxes.append(TableRow(KIND_MODEL, k.time_s, end, dur, k.frame, k.frame, k.box_px))
    if interpolated_every > 0:
        keys = {k.frame for k in mapped.keyframes}
        track = mapped.box_track()
        for f in range(mapped.first_frame, mapped.last_frame + 1, interpolated_every):
            if f in keys or f not in track:
                continue
            t, end = fm.seconds(f), fm.end_seconds(f)
            px = tuple(round(v) for v in track[f])
            boxes.append(TableRow(KIND_INTERPOLATED, t, end, round(end - t, 3), f, f, px))  # type: ignore[arg-type]
    boxes.sort(key=lambda r: (r.first_frame, r.kind != KIND_MODEL))
    return rows + boxes
