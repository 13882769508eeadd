"""Case gallery of a report: the N best and N worst samples, rendered with the app's renderer.

Each case is drawn by ``stchat.pipeline.render_answer`` (prediction red, ground truth green, both spans on
the timeline) into its own folder (short annotated clip + timing table), and one still frame from the
middle of the predicted segment is saved as ``still.png`` so the report can show it inline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from stchat.answer import ParsedAnswer
from stchat.errors import StchatError
from stchat.eval.breakdown import SampleScore, query_text
from stchat.pipeline import render_answer
from stchat.tasks import eval_family
from stchat.video.io import probe, read_frames


@dataclass
class GalleryCase:
    kind: str  # "best" | "worst"
    rank: int
    sample: SampleScore
    folder: Path
    still: Path | None
    files: list[Path]
    error: str | None = None


def pick_cases(samples: Sequence[SampleScore], n: int) -> list[tuple[str, int, SampleScore]]:
    """N best and N worst by :attr:`SampleScore.quality` (ties: file order); a sample is listed once."""
    if n <= 0 or not samples:
        return []
    order = sorted(samples, key=lambda s: (-s.quality, s.index))
    best = order[:n]
    chosen = {id(s) for s in best}
    worst = [s for s in reversed(order) if id(s) not in chosen][:n]
    return [("best", i + 1, s) for i, s in enumerate(best)] + [
        ("worst", i + 1, s) for i, s in enumerate(worst)
    ]


def gt_answer(record: dict, task: str) -> ParsedAnswer | None:
    """The record's ground truth as a :class:`ParsedAnswer` in normalised units (for the GT overlay)."""
    gt = record.get("gt")
    if eval_family(task) == "st-align" and isinstance(gt, dict) and record.get("split"):
        first, last = (float(x) for x in record["split"][:2])
        span = last - first
        w, h = float(record.get("width") or 1), float(record.get("height") or 1)
        if span <= 0:
            return None
        ans = ParsedAnswer(task=task, text="")
        if gt.get("tvg"):
            s, e = gt["tvg"][:2]
            ans.span = ((float(s) - first) / span, (float(e) - first) / span)
        for frame, b in (gt.get("svg") or {}).items():
            ans.boxes[(float(frame) - first) / span] = (b[0] / w, b[1] / h, b[2] / w, b[3] / h)
        if ans.span is None and ans.boxes:
            ans.span = (min(ans.boxes), max(ans.boxes))
        return ans
    if task == "tvg" and isinstance(gt, (list, tuple)) and len(gt) == 2:
        return ParsedAnswer(task=task, text="", span=(float(gt[0]), float(gt[1])))
    if task == "rec" and record.get("gt_bbox"):
        return ParsedAnswer(task=task, text="", box=tuple(record["gt_bbox"][:4]))
    return None


def _still(clip: Path, out: Path) -> Path | None:
    """Middle frame of a rendered clip as PNG (None when the clip cannot be read)."""
    try:
        info = probe(clip)
        frame = read_frames(clip, [max(0, info.frame_count // 2)])[0]
    except (StchatError, OSError, IndexError):
        return None
    Image.fromarray(frame).save(out)
    return out


def render_gallery(samples: Sequence[SampleScore], out_dir: Path, n: int = 3) -> list[GalleryCase]:
    """Render the best/worst cases into ``out_dir/<kind>_<rank>_<id>/`` (a failing case keeps its error)."""
    cases: list[GalleryCase] = []
    for kind, rank, s in pick_cases(samples, n):
        folder = out_dir / f"{kind}_{rank:02d}_{_safe(s.sample_id)}"
        folder.mkdir(parents=True, exist_ok=True)
        rec = s.record
        media = rec.get("video_path") or rec.get("image_path")
        case = GalleryCase(kind, rank, s, folder, None, [])
        try:
            if not media:
                raise StchatError("the record names no video or image")
            out = render_answer(
                media,
                rec.get("outputs") or "",
                task=s.task,
                split=rec.get("split"),
                out_dir=folder,
                query=query_text(rec),
                gt=gt_answer(rec, s.task),
                write_annotated=False,  # the gallery shows short clips; the full video is not needed
            )
            case.files = sorted(p for p in folder.rglob("*") if p.is_file())
            clip = _first_video(out, folder)
            if clip is not None:
                case.still = _still(clip, folder / "still.png")
        except StchatError as exc:  # a broken sample must not sink the whole report
            case.error = str(exc)
        cases.append(case)
    return cases


def _first_video(out: object, folder: Path) -> Path | None:
    for attr in ("clip", "clip_path", "annotated", "annotated_path"):
        p = getattr(out, attr, None)
        if p is not None and Path(p).is_file():
            return Path(p)
    vids = sorted(folder.glob("*.mp4"))
    return vids[0] if vids else None


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(text))[:40]
