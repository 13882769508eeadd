"""Per-sample scores and the breakdown tables of ``stchat eval report``.

A breakdown groups the samples of one task by a property of the *ground truth or query* (never of the
prediction, so bins do not depend on the model) and reports, per bin: sample count, mean tIoU, mean sIoU
and the joint success rate (tIoU >= thr and sIoU >= thr). The properties:

* event duration -- GT event length as a fraction of the sampled clip range;
* target size -- mean GT box area / frame area over the GT track (or the single REC box);
* query length -- words of the query (media tag and the fixed task suffix removed).

Per-sample tIoU/sIoU come from the official-identical scorer (``stchat.eval.score``); this module only
groups and summarises them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

# (label, low inclusive, high exclusive) as fractions; the bins (#4 item 4).
DURATION_BINS: tuple[tuple[str, float, float], ...] = (
    ("very short (<10%)", 0.0, 0.10),
    ("short (10-30%)", 0.10, 0.30),
    ("medium (30-70%)", 0.30, 0.70),
    ("long (>70%)", 0.70, math.inf),
)
SIZE_BINS: tuple[tuple[str, float, float], ...] = (
    ("tiny (<1%)", 0.0, 0.01),
    ("small (1-5%)", 0.01, 0.05),
    ("medium (5-20%)", 0.05, 0.20),
    ("large (>20%)", 0.20, math.inf),
)
DEFAULT_QUERY_EDGES: tuple[int, ...] = (50,)

# The fixed instructions the benchmark front-end appends (docs/official_quirks.md#task-questions); they are
# not the user's query.
_TASK_SUFFIXES = (
    "Please firstly give the timestamps, and then give the spatial bounding box corresponding to each "
    "timestamp in the time period.",
    "Please give the spatial bounding box corresponding to each timestamp in the time period.",
    "Please firstly give the end timestamp, then give the event associated with the object/subject, "
    "finally give the spatial bounding box corresponding to each timestamp in the time period.",
)
_MEDIA = re.compile(r"<(video|image)>\s*")


@dataclass
class SampleScore:
    """One scored sample: what the breakdowns, plots and the gallery need."""

    index: int  # position in the result file
    sample_id: str
    task: str  # stvg | svg | elc | tvg | rec
    tiou: float | None  # None where the task has no temporal answer (SVG's official tIoU is 0 by rule)
    siou: float | None  # None where the task has no boxes (TVG); REC: the box IoU
    viou: float | None = None
    duration_frac: float | None = None
    size_frac: float | None = None
    query_words: int | None = None
    record: dict = field(default_factory=dict, repr=False)

    def joint(self, thr: float = 0.5) -> bool:
        """Joint success: both the temporal and the spatial answer reach ``thr`` (one of them if single)."""
        parts = [v for v in (self.tiou, self.siou) if v is not None]
        return bool(parts) and all(v >= thr for v in parts)

    @property
    def quality(self) -> float:
        """One number to rank samples for the gallery: mean of the available IoUs."""
        parts = [v for v in (self.tiou, self.siou) if v is not None]
        return float(np.mean(parts)) if parts else 0.0


# ----------------------------------------------------------------------------------------------- features
def query_text(record: dict) -> str:
    """The query as the user would read it: the prompt without media tag and fixed task suffix."""
    text = str(record.get("prompt") or record.get("caption") or record.get("event") or "")
    text = _MEDIA.sub("", text)
    for s in _TASK_SUFFIXES:
        text = text.replace(s, "")
    return text.strip()


def query_words(record: dict) -> int:
    return len(query_text(record).split())


def duration_fraction(record: dict) -> float | None:
    """GT event length / sampled clip range, in [0, 1]; None when the record has no temporal GT."""
    gt = record.get("gt")
    split = record.get("split")
    if isinstance(gt, dict) and split:
        first, last = float(split[0]), float(split[1])
        span = last - first
        if span <= 0:
            return None
        if gt.get("tvg"):
            s, e = gt["tvg"][:2]
        elif gt.get("svg"):  # SVG has no temporal GT: the track's extent is the event
            frames = [float(k) for k in gt["svg"]]
            s, e = min(frames), max(frames)
        else:
            return None
        return max(0.0, min(1.0, (float(e) - float(s)) / span))
    if isinstance(gt, (list, tuple)) and len(gt) == 2:  # Charades: normalised [s, e]
        return max(0.0, min(1.0, float(gt[1]) - float(gt[0])))
    return None


def size_fraction(record: dict) -> float | None:
    """Mean GT box area / frame area; None when the record has no box GT."""
    gt = record.get("gt")
    w, h = record.get("width"), record.get("height")
    if isinstance(gt, dict) and gt.get("svg") and w and h:
        areas = [max(0.0, (b[2] - b[0])) * max(0.0, (b[3] - b[1])) for b in gt["svg"].values()]
        return float(np.mean(areas)) / (float(w) * float(h)) if areas else None
    box = record.get("gt_bbox")
    if box:  # REC: normalised xyxy
        return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
    return None


# --------------------------------------------------------------------------------------------- breakdowns
@dataclass
class BinRow:
    label: str
    count: int
    mean_tiou: float | None
    mean_siou: float | None
    joint: float | None  # fraction of samples with joint success

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def summarise(label: str, samples: Sequence[SampleScore], thr: float = 0.5) -> BinRow:
    return BinRow(
        label=label,
        count=len(samples),
        mean_tiou=_mean([s.tiou for s in samples]),
        mean_siou=_mean([s.siou for s in samples]),
        joint=(sum(s.joint(thr) for s in samples) / len(samples)) if samples else None,
    )


def bin_table(
    samples: Sequence[SampleScore],
    key: str,
    bins: Sequence[tuple[str, float, float]],
    thr: float = 0.5,
) -> list[BinRow]:
    """Rows for each bin (empty bins kept, count 0) plus an "unknown" row when a sample lacks ``key``."""
    rows = []
    for label, lo, hi in bins:
        sel = [s for s in samples if getattr(s, key) is not None and lo <= getattr(s, key) < hi]
        rows.append(summarise(label, sel, thr))
    unknown = [s for s in samples if getattr(s, key) is None]
    if unknown:
        rows.append(summarise("unknown", unknown, thr))
    return rows


def query_bins(edges: Sequence[int] = DEFAULT_QUERY_EDGES) -> list[tuple[str, float, float]]:
    """Word-count bins from ascending edges: (50,) -> "<50 words", ">=50 words"."""
    edges = sorted(set(int(e) for e in edges))
    if not edges or edges[0] <= 0:
        raise ValueError("query-length bin edges must be positive integers")
    bounds = [0, *edges, math.inf]
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if lo == 0:
            out.append((f"<{hi} words", 0.0, float(hi)))
        elif hi == math.inf:
            out.append((f">={lo} words", float(lo), math.inf))
        else:
            out.append((f"{lo}-{int(hi) - 1} words", float(lo), float(hi)))
    return out


def breakdowns(
    samples: Sequence[SampleScore], query_edges: Sequence[int] = DEFAULT_QUERY_EDGES, thr: float = 0.5
) -> dict[str, list[BinRow]]:
    """All three breakdown tables of one task's samples, plus the overall row."""
    return {
        "overall": [summarise("all", samples, thr)],
        "event duration": bin_table(samples, "duration_frac", DURATION_BINS, thr),
        "target size": bin_table(samples, "size_frac", SIZE_BINS, thr),
        "query length": bin_table(samples, "query_words", query_bins(query_edges), thr),
    }


# ------------------------------------------------------------------------------------------- correlation
def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (the Spearman convention)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    sx = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sx[j + 1] == sx[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson r; None when undefined (fewer than 2 points or a constant variable)."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(a) < 2 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(a) < 2:
        return None
    return pearson(_ranks(a), _ranks(b))


def paired(samples: Sequence[SampleScore]) -> tuple[list[float], list[float]]:
    """(tIoU, sIoU) of the samples that have both."""
    pairs = [(s.tiou, s.siou) for s in samples if s.tiou is not None and s.siou is not None]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def correlation(samples: Sequence[SampleScore]) -> dict[str, float | int | None]:
    t, s = paired(samples)
    return {"n": len(t), "pearson": pearson(t, s), "spearman": spearman(t, s)}
