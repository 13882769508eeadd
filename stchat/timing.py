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


def to_json(rows: list[TimingRow], mapped: MappedAnswer) -> dict[str, object]:
    seg = rows[0]
    fm = mapped.frame_map
    return {
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


def write_json(rows: list[TimingRow], mapped: MappedAnswer, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_json(rows, mapped), indent=2) + "\n", encoding="utf-8")
