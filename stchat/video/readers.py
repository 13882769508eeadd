"""The video reader seam: a small protocol, a registry, and an environment override.

Everything that turns a video file into frames for the model goes through :func:`get_reader` (the
default is PyAV, :class:`PyAVReader`). A second backend registers itself with :func:`register_reader`
and is picked per call (``get_reader("name")``) or for the whole process with ``STCHAT_VIDEO_READER``,
the way qwen-vl-utils' ``FORCE_QWENVL_VIDEO_READER`` works. A backend must return exactly the pixels
PyAV returns (the golden tests compare the model's inputs bit for bit), so one is only worth adding when
``benchmarks/pipeline.py`` measures it faster *and* pixel-identical.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from stchat.errors import VideoError
from stchat.video import io as video_io
from stchat.video.info import VideoInfo

ENV_VAR = "STCHAT_VIDEO_READER"
DEFAULT_READER = "pyav"


@runtime_checkable
class VideoReader(Protocol):
    """Frame-accurate reading in displayed orientation; index ``i`` is the ``i``-th presented frame."""

    name: str

    def probe(self, path: str | os.PathLike[str]) -> VideoInfo: ...

    def frame_times(self, path: str | os.PathLike[str]) -> np.ndarray: ...

    def iter_frames(
        self, path: str | os.PathLike[str], indices: Sequence[int], rotation: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(index, RGB uint8 (H, W, 3))`` for the distinct wanted indices, in increasing order."""
        ...

    def read(self, path: str | os.PathLike[str], indices: Sequence[int]) -> np.ndarray:
        """``(T, H, W, 3)`` uint8 RGB for ``indices`` in the given order (repeats allowed)."""
        ...


class PyAVReader:
    """The default: :mod:`stchat.video.io` (keyframe-aware seeking, non-reference frames skipped)."""

    name = "pyav"

    def probe(self, path: str | os.PathLike[str]) -> VideoInfo:
        return video_io.probe(path)

    def frame_times(self, path: str | os.PathLike[str]) -> np.ndarray:
        return video_io.frame_times(path)

    def iter_frames(
        self, path: str | os.PathLike[str], indices: Sequence[int], rotation: int | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        return video_io.iter_frames(path, indices, rotation=rotation)

    def read(self, path: str | os.PathLike[str], indices: Sequence[int]) -> np.ndarray:
        return video_io.read_frames(path, indices)


_REGISTRY: dict[str, Callable[[], VideoReader]] = {DEFAULT_READER: PyAVReader}


def register_reader(name: str, factory: Callable[[], VideoReader]) -> None:
    """Make a backend available under ``name`` (a later registration under the same name replaces it)."""
    if not name or not name.isidentifier():
        raise ValueError(f"reader name must be an identifier, got {name!r}")
    _REGISTRY[name] = factory


def available_readers() -> list[str]:
    return sorted(_REGISTRY)


def get_reader(name: str | None = None) -> VideoReader:
    """The reader called ``name``; else ``$STCHAT_VIDEO_READER``; else PyAV."""
    chosen = name or os.environ.get(ENV_VAR, "").strip() or DEFAULT_READER
    factory = _REGISTRY.get(chosen)
    if factory is None:
        source = "" if name else f" (from {ENV_VAR})"
        raise VideoError(
            f"unknown video reader '{chosen}'{source}; available: {', '.join(available_readers())}"
        )
    return factory()
