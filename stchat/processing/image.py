"""Pixels -> ``pixel_values``: the official ``SigLipImageProcessor`` arithmetic, bit for bit.

The official processor (docs/official_quirks.md#pixel-preprocessing,
docs/official_quirks.md#pixel-preprocessing) does, per image or video frame:

1. PIL BICUBIC resize of the **uint8** image straight to 384x384 (no aspect ratio kept, no crop, no pad);
2. ``x * (1/255)`` evaluated in float64, then cast to float32;
3. ``(x - 0.5) / 0.5`` in float32, channels first.

Steps 2-3 depend only on the uint8 value, so they are a 256-entry lookup table here: the same float32
numbers as the official chain, computed once, and about 50x faster than running the float64 chain on
100 frames. The resize must be PIL's own bicubic filter: other bicubic kernels (OpenCV, torch) differ
by a few grey levels and the golden pixel hashes would not match.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stchat.errors import VideoError

IMAGE_SIZE = 384
_MAX_WORKERS = 4  # PIL releases the GIL while resizing, so a few threads help on long clips


def _build_lut() -> torch.Tensor:
    u = np.arange(256, dtype=np.uint8)
    rescaled = (u.astype(np.float64) * (1 / 255)).astype(np.float32)  # official rescale: float64, then f32
    mean = np.float32(0.5)
    std = np.float32(0.5)
    return torch.from_numpy((rescaled - mean) / std)  # official normalize: float32 arithmetic


_LUT = _build_lut()
_LUT_NP = _LUT.numpy()

ImageInput = np.ndarray | Image.Image | str | Path


def load_image(path: str | Path) -> Image.Image:
    """Open an image file as the official demo does: ``Image.open(path).convert("RGB")``.

    No EXIF orientation is applied, on purpose: the official demo does not apply it either, so the
    model sees the stored pixel grid and its boxes refer to that grid.
    """
    p = Path(path)
    if not p.is_file():
        raise VideoError(f"image not found: {p}")
    try:
        with Image.open(p) as im:
            return to_rgb(im)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise VideoError(f"cannot read image {p}: {exc}") from None


def to_rgb(im: Image.Image) -> Image.Image:
    """``im.convert("RGB")`` (the official conversion) for every mode PIL can convert at all.

    A few modes (``La``, ``I;16B`` ...) have no direct RGB conversion; they go through the nearest mode
    that has one instead of failing. Modes PIL cannot convert give a :class:`VideoError`.
    """
    try:
        return im.convert("RGB")  # a loaded copy even for RGB: the caller may close ``im``
    except ValueError:
        pass
    for via in ("RGBA", "LA", "L", "I"):
        try:
            return im.convert(via).convert("RGB")
        except ValueError:
            continue
    raise VideoError(f"images in PIL mode {im.mode!r} cannot be converted to RGB")


def _to_pil(item: ImageInput) -> Image.Image:
    if isinstance(item, (str, Path)):
        return load_image(item)
    if isinstance(item, Image.Image):
        if item.width < 1 or item.height < 1:
            raise VideoError(f"an image must not be empty, got size {item.size}")
        return item if item.mode == "RGB" else to_rgb(item)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise VideoError(f"frames must be uint8 RGB, got dtype {item.dtype}")
        if item.ndim != 3 or item.shape[2] != 3:
            raise VideoError(f"a frame must have shape (H, W, 3), got {tuple(item.shape)}")
        if item.shape[0] < 1 or item.shape[1] < 1:
            raise VideoError(f"a frame must not be empty, got shape {tuple(item.shape)}")
        return Image.fromarray(np.ascontiguousarray(item))  # (H, W, 3) uint8 is read as RGB
    raise VideoError(f"unsupported image input of type {type(item).__name__}")


def _resize(item: ImageInput) -> np.ndarray:
    im = _to_pil(item)
    # reducing_gap=None is what transformers' resize passes; it is also Pillow's default.
    out = im.resize((IMAGE_SIZE, IMAGE_SIZE), resample=Image.Resampling.BICUBIC, reducing_gap=None)
    return np.asarray(out, dtype=np.uint8)


def _as_items(images: np.ndarray | Image.Image | str | Path | Sequence[ImageInput]) -> list[ImageInput]:
    if isinstance(images, (Image.Image, str, Path)):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images)
        if images.ndim == 3:
            return [images]
        raise VideoError(f"frames must have shape (T, H, W, 3) or (H, W, 3), got {tuple(images.shape)}")
    if isinstance(images, (list, tuple)):
        return list(images)
    raise VideoError(f"unsupported image input of type {type(images).__name__}")


def resize_uint8(images: np.ndarray | Image.Image | str | Path | Sequence[ImageInput]) -> np.ndarray:
    """The official resize step alone: (N, 384, 384, 3) uint8, one row per image/frame."""
    items = _as_items(images)
    if not items:
        raise VideoError("no frames to process")
    if len(items) == 1:
        return np.stack([_resize(items[0])])  # stack copies: PIL's array view is read-only
    with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(items))) as pool:
        return np.stack(list(pool.map(_resize, items)))


def preprocess(images: np.ndarray | Image.Image | str | Path | Sequence[ImageInput]) -> torch.Tensor:
    """Images or frames -> ``pixel_values`` float32 (N, 3, 384, 384), identical to the official processor.

    Accepts a (T, H, W, 3) or (H, W, 3) uint8 RGB array, a PIL image, an image path, or a list of those.
    """
    items = _as_items(images)
    if not items:
        raise VideoError("no frames to process")
    out = np.empty((len(items), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)

    def _one(i: int) -> None:
        # Resize and look up one frame at a time: the working set stays in cache, which is ~3x faster
        # than one big gather over the whole clip, and the threads overlap PIL's GIL-free resizes.
        np.take(_LUT_NP, _resize(items[i]).transpose(2, 0, 1), out=out[i])

    if len(items) == 1:
        _one(0)
    else:
        with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(items))) as pool:
            list(pool.map(_one, range(len(items))))
    return torch.from_numpy(out)
