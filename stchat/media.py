"""The one media path: a video file, frame array or image -> the model's ``pixel_values``.

:func:`load_sampled` samples the official 100 frames of a video (:mod:`stchat.video.sampling`), decodes
them once each and SigLIP-preprocesses them (:mod:`stchat.processing.image`); images are preprocessed as
the official demo does. :func:`media_context` reads only headers (frame count, times, size) to check a
request and convert seconds and pixels into the model's fractions before anything is decoded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stchat.errors import VideoError
from stchat.processing.image import IMAGE_SIZE, load_image, preprocess
from stchat.request import IMAGE_SUFFIXES, check_split
from stchat.video.info import VideoInfo
from stchat.video.readers import get_reader
from stchat.video.sampling import official_frame_indices

Media = str | Path | np.ndarray | Image.Image
_PREPROCESS_WORKERS = 4  # PIL releases the GIL while resizing: a few threads overlap decoding


@dataclass
class LoadedMedia:
    """Media ready for the model: ``pixel_values`` and where the sampled frames came from."""

    modality: str
    pixel_values: torch.Tensor
    frame_indices: list[int] | None = None
    frame_times_s: list[float] | None = None
    video_info: VideoInfo | None = None
    size: tuple[int, int] | None = None  # (width, height) of what the model saw, before the squash
    split: tuple[int, int] | None = None
    timings: dict[str, float] = field(default_factory=dict)



def check_media_type(media: object) -> None:
    if not isinstance(media, (str, Path, np.ndarray, Image.Image)):
        raise VideoError(
            f"unsupported media of type {type(media).__name__}: pass a file path, a PIL image, or a uint8 "
            "numpy array of shape (H, W, 3) (image) or (T, H, W, 3) (video frames)"
        )
    if isinstance(media, str) and not media.strip():
        raise VideoError("no media: the path is empty")


def is_image_input(media: Media) -> bool:
    check_media_type(media)
    if isinstance(media, Image.Image):
        return True
    if isinstance(media, np.ndarray):
        return media.ndim in (2, 3)  # (H, W) is a grey image: refused later with a shape message
    return Path(media).suffix.lower() in IMAGE_SUFFIXES


def _indices(num_frames: int, split: Sequence[int] | None) -> list[int]:
    try:
        return official_frame_indices(num_frames, check_split(split))
    except ValueError as exc:
        raise VideoError(str(exc)) from None


def load_sampled(media: Media, split: Sequence[int] | None = None, fps: float | None = None) -> LoadedMedia:
    """Read and preprocess a video (file, or (T, H, W, 3) uint8 frames / ``.npy``) or an image.

    The one way media becomes ``pixel_values``: chat, the benchmark runner and training all call this,
    so the pixels the model sees cannot drift between them (the golden tests compare them bit for bit).
    """
    t0 = time.perf_counter()
    if is_image_input(media):
        if split is not None:
            raise VideoError("a frame range only applies to videos, not images")
        image = media if isinstance(media, (Image.Image, np.ndarray)) else load_image(media)
        pixels = preprocess(image)
        size = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
        return LoadedMedia("image", pixels, size=size, timings={"preprocess_s": time.perf_counter() - t0})

    split = check_split(split)
    if fps is not None and not (isinstance(fps, (int, float, np.number)) and 0 < float(fps) < float("inf")):
        raise VideoError(f"fps must be a positive number; got {fps!r}")
    info = None
    times: list[float] | None = None
    if isinstance(media, np.ndarray) or Path(media).suffix.lower() == ".npy":
        frames_all = media if isinstance(media, np.ndarray) else _load_npy(Path(media))
        if frames_all.ndim != 4 or frames_all.shape[0] < 1:
            raise VideoError(f"video frames must have shape (T, H, W, 3); got {tuple(frames_all.shape)}")
        if frames_all.dtype != np.uint8:
            raise VideoError(f"video frames must be uint8 RGB; got dtype {frames_all.dtype}")
        idx = _indices(frames_all.shape[0], split)
        frames: Iterable[tuple[int, np.ndarray]] = ((i, frames_all[i]) for i in sorted(set(idx)))
        if fps is not None:
            times = [i / float(fps) for i in idx]
    else:
        path = Path(media)
        if not path.is_file():
            raise VideoError(f"video not found: {path}" if not path.exists() else f"not a file: {path}")
        reader = get_reader()  # PyAV unless $STCHAT_VIDEO_READER names another (pixel-identical) backend
        info = reader.probe(path)
        idx = _indices(info.frame_count, split)
        frames = reader.iter_frames(path, idx, rotation=info.rotation)
        all_times = reader.frame_times(path)
        times = [float(all_times[i]) for i in idx]
    pixels, size, decode_s = _preprocess_sampled(frames, idx)
    first, last = (split[0], split[1]) if split is not None else (0, max(idx))
    return LoadedMedia(
        "video", pixels, idx, times, info, size=size, split=(first, last),
        timings={"decode_s": decode_s, "preprocess_s": time.perf_counter() - t0 - decode_s},
    )


def _preprocess_sampled(
    frames: Iterable[tuple[int, np.ndarray]], idx: Sequence[int]
) -> tuple[torch.Tensor, tuple[int, int], float]:
    """``pixel_values`` for the sampled indices, each distinct frame decoded and preprocessed once.

    Frames stream through: each is preprocessed (on a few threads) as soon as it is decoded and then
    dropped, so memory holds a handful of source frames, not all 100. That is what lets a 4000x3000 or
    7680x4320 clip be grounded without gigabytes of RAM, and a short clip (whose 100 samples repeat a
    few frames) costs one preprocessing per distinct frame. The per-frame arithmetic is
    :func:`stchat.processing.image.preprocess`'s, so the tensor is identical to preprocessing the stack.
    """
    slots: dict[int, list[int]] = {}
    for pos, i in enumerate(idx):
        slots.setdefault(int(i), []).append(pos)
    out = torch.empty((len(idx), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    size: tuple[int, int] | None = None
    decode_s = 0.0
    pending: deque[tuple[int, Future[torch.Tensor]]] = deque()

    def drain(keep: int) -> None:
        while len(pending) > keep:
            i, fut = pending.popleft()
            out[slots[i]] = fut.result()

    with ThreadPoolExecutor(max_workers=_PREPROCESS_WORKERS) as pool:
        it = iter(frames)
        while True:
            t = time.perf_counter()
            item = next(it, None)
            decode_s += time.perf_counter() - t
            if item is None:
                break
            i, rgb = item
            size = size or (int(rgb.shape[1]), int(rgb.shape[0]))
            pending.append((int(i), pool.submit(preprocess, rgb)))
            drain(2 * _PREPROCESS_WORKERS)  # bound the frames held in memory
        drain(0)
    if size is None:
        raise VideoError("no video frame could be read")
    return out, size, decode_s


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VideoError(f"cannot read frames from {path.name}: {exc}") from None
    if arr.dtype != np.uint8:
        raise VideoError(f"{path.name}: frames must be uint8 RGB, got {arr.dtype}")
    return arr
