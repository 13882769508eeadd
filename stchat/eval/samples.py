"""What a benchmark run asks: samples from the official-format readers, subsets, decoding settings.

Light on purpose (no torch): ``stchat eval run`` checks annotations, media files and result paths with
these before the model stack is imported.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stchat.errors import StchatError
from stchat.eval import datasets
from stchat.request import OFFICIAL_SAMPLING


class RunError(StchatError):
    """A benchmark run cannot start or continue (bad paths, unreadable result file, ...)."""


@dataclass
class Sample:
    """One benchmark sample ready for inference."""

    sample_id: str
    record: dict  # the official record fields (JSON-serialisable), completed by the runner
    query: str  # benchmark prompt text incl. the media tag
    modality: str  # "video" | "image"
    media_path: str
    split: list[int] | None = None


@dataclass
class Decoding:
    """Decoding settings; ``official`` = the official near-greedy sampling (Q22)."""

    do_sample: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_new_tokens: int = 1024
    seed: int = 0
    speculative: bool = True  # greedy only: grammar drafts verified exactly (same ids, fewer passes)

    @classmethod
    def official(cls, max_new_tokens: int = 1024, seed: int = 0) -> Decoding:
        return cls(**OFFICIAL_SAMPLING, max_new_tokens=max_new_tokens, seed=seed)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def sample_seed(base: int, sample_id: str) -> int:
    """Per-sample seed independent of order, shard and resume (ids are positions or strings)."""
    return (int(base) * 1_000_003 + zlib.crc32(str(sample_id).encode())) % (2**31 - 1)


@dataclass(frozen=True)
class Subset:
    """Which items of each benchmark file to run, and how prompt phrases are drawn.

    ``first``/``random_n`` select items by their position in the file (after the official 2000-item cut of
    ST-Align, Q17); the position is the sample id, so a subset resumes into, and merges with, any other
    run of the same file. ``seed=None`` draws phrases from the unseeded module ``random`` as the official
    classes do (Q17/Q18); an integer gives every item its own phrase RNG (see ``stchat.eval.datasets``).
    """

    first: int | None = None
    random_n: int | None = None
    subset_seed: int = 0
    seed: int | None = 0


def load_samples(entry: Any, subset: Subset | None = None) -> list[Sample]:
    """The samples of one benchmark entry, built by the official-format dataset readers."""
    sub = subset or Subset()
    items = datasets.load_benchmark(entry.task_kind, entry.ann_path, entry.data_folder, seed=sub.seed,
                                    first=sub.first, random_n=sub.random_n, subset_seed=sub.subset_seed)
    out = []
    for item in items:
        rec = dict(item.record)
        modality = "image" if item.task == "rec" else "video"
        out.append(Sample(sample_id=str(item.index), record=rec, query=str(rec["prompt"]), modality=modality,
                          media_path=str(item.media_path), split=item.split))
    return out


def check_media(name: str, samples: Sequence[Sample]) -> None:
    """Fail before the model loads when media files are missing.

    The official loop swaps a failing item for the next one (Q19), which silently changes the benchmark;
    we stop instead, naming how many files are missing and the first one.
    """
    missing = sorted({s.media_path for s in samples if not os.path.isfile(s.media_path)})
    if missing:
        raise RunError(f"{name}: {len(missing)} media file(s) not found, e.g. {missing[0]}")
