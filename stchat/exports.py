"""The found moment in other tools' formats: subtitle tracks, per-frame tracks, COCO-video JSON.

* ``segment.vtt`` / ``segment.srt``: one cue over the found segment on the *source* clock (a player
  showing the original or the full annotated video); ``clip.vtt``: the same cue on the clip's clock
  (0 to its length), for a player showing the clip.
* ``boxes_mot.csv``: MOTChallenge tracker-output rows ``frame,id,x,y,w,h,conf,-1,-1,-1`` with 1-based
  *clip* frame numbers, one row per clip frame that has a box (so a clip whose every frame is boxed has
  exactly one row per frame). ``conf`` marks the source: 1 = a box the model gave (a keyframe),
  0.5 = interpolated between the model's boxes (or held before the first / after the last).
* ``boxes_coco.json``: COCO-video (TAO / YouTube-VIS style) ``videos`` / ``images`` / ``annotations`` /
  ``tracks``; each annotation carries ``keyframe`` (bool) and ``source`` ("model" / "interpolated"),
  and each image its source frame index and time.

Boxes are the ones drawn: pixels of the displayed frame, rounded as the renderer rounds them, with
exclusive right/bottom edges (``w = x2 - x1``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from stchat.mapping import MappedAnswer

EXPORT_FILES = ("segment.vtt", "segment.srt", "clip.vtt", "boxes_mot.csv", "boxes_coco.json")
MOT_CONF_MODEL = 1.0
MOT_CONF_INTERPOLATED = 0.5


@dataclass(frozen=True)
class FrameBox:
    """The box on one frame of the clip, and whether the model gave it or it was interpolated."""

    clip_frame: int  # 0-based within the clip
    frame: int  # source frame index
    time_s: float  # source clock
    box_px: tuple[int, int, int, int]  # x1, y1, x2, y2 (exclusive right/bottom)
    keyframe: bool  # True: the model's own box; False: interpolated / held

    @property
    def source(self) -> str:
        return "model" if self.keyframe else "interpolated"


def frame_boxes(mapped: MappedAnswer) -> list[FrameBox]:
    """Every clip frame's box, as drawn (empty when the answer has no boxes)."""
    track = mapped.box_track()
    keys = {k.frame for k in mapped.keyframes}
    times = mapped.frame_map.times
    out = []
    for f in range(mapped.first_frame, mapped.last_frame + 1):
        box = track.get(f)
        if box is None:
            continue
        px = tuple(round(v) for v in box)
        out.append(FrameBox(f - mapped.first_frame, f, round(float(times[f]), 3), px, f in keys))  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------- subtitles

def _ts(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _cue_text(label: str | None, mapped: MappedAnswer) -> str:
    text = " ".join((label or "").split()) or f"found ({mapped.task})"
    # A blank line or "-->" would end or corrupt the cue; neither can occur after the join/replace.
    return text.replace("-->", "->")


def webvtt(mapped: MappedAnswer, label: str | None = None, offset_s: float = 0.0) -> str:
    """A WebVTT track with one cue over the segment; ``offset_s`` is subtracted (the clip's clock)."""
    start, end = mapped.start_s - offset_s, mapped.end_s - offset_s
    return (
        "WEBVTT\n\n"
        f"segment\n{_ts(start, '.')} --> {_ts(end, '.')}\n{_cue_text(label, mapped)}\n"
    )


def srt(mapped: MappedAnswer, label: str | None = None, offset_s: float = 0.0) -> str:
    start, end = mapped.start_s - offset_s, mapped.end_s - offset_s
    return f"1\n{_ts(start, ',')} --> {_ts(end, ',')}\n{_cue_text(label, mapped)}\n"


# --------------------------------------------------------------------------- tracks

def mot_csv(boxes: Sequence[FrameBox]) -> str:
    lines = []
    for b in boxes:
        x1, y1, x2, y2 = b.box_px
        conf = MOT_CONF_MODEL if b.keyframe else MOT_CONF_INTERPOLATED
        lines.append(f"{b.clip_frame + 1},1,{x1},{y1},{x2 - x1},{y2 - y1},{conf:g},-1,-1,-1")
    return "".join(line + "\n" for line in lines)


def coco_video(
    mapped: MappedAnswer, boxes: Sequence[FrameBox], label: str | None, video_name: str, fps: float
) -> dict[str, object]:
    fm = mapped.frame_map
    n = mapped.last_frame - mapped.first_frame + 1
    images = [
        {
            "id": k + 1, "video_id": 1, "frame_id": k, "file_name": f"{video_name}#{k}",
            "width": fm.width, "height": fm.height, "source_frame": mapped.first_frame + k,
            "time_s": round(float(fm.times[mapped.first_frame + k]), 3),
        }
        for k in range(n)
    ]
    annotations = []
    for j, b in enumerate(boxes):
        x1, y1, x2, y2 = b.box_px
        annotations.append({
            "id": j + 1, "image_id": b.clip_frame + 1, "video_id": 1, "track_id": 1, "category_id": 1,
            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            "keyframe": b.keyframe, "source": b.source,
        })
    return {
        "info": {"description": "stchat grounding result", "task": mapped.task},
        "videos": [{
            "id": 1, "name": video_name, "width": fm.width, "height": fm.height, "length": n,
            "fps": fps, "start_s": mapped.start_s, "end_s": mapped.end_s,
            "first_frame": mapped.first_frame, "last_frame": mapped.last_frame,
        }],
        "categories": [{"id": 1, "name": " ".join((label or "target").split())}],
        "tracks": [{"id": 1, "category_id": 1, "video_id": 1}] if boxes else [],
        "images": images,
        "annotations": annotations,
    }


def write_exports(
    mapped: MappedAnswer, out_dir: Path, label: str | None, video_name: str, fps: float,
    *, coco_name: str = "boxes_coco.json",
) -> dict[str, Path]:
    """Write every export into ``out_dir`` (the caller publishes them atomically); returns name -> path.

    ``coco_name`` ending in ``.gz`` writes the COCO JSON gzip-compressed (``stchat eval run``: the
    official scorer reads every ``*.json`` below a result folder, and per-frame ``images`` add up).
    """
    boxes = frame_boxes(mapped)
    texts = {
        "segment.vtt": webvtt(mapped, label),
        "segment.srt": srt(mapped, label),
        "clip.vtt": webvtt(mapped, label, offset_s=mapped.start_s),
        "boxes_mot.csv": mot_csv(boxes),
        coco_name: json.dumps(coco_video(mapped, boxes, label, video_name, fps), indent=1) + "\n",
    }
    paths = {}
    for name, text in texts.items():
        path = out_dir / name
        if name.endswith(".gz"):
            # mtime=0: the same export gives the same bytes (a resumed run rewrites identical files)
            path.write_bytes(gzip.compress(text.encode("utf-8"), mtime=0))
        else:
            path.write_text(text, encoding="utf-8")
        paths[name] = path
    return paths
