"""Media of a training record -> ``pixel_values``, sampled exactly as at inference.

Videos take the official 100-frame index formula over ``meta.split`` (``official_frame_indices``, the
same function inference uses; the official training loader ``process_video_with_decord`` has the same
formula) and the official SigLIP preprocessing. Besides real video files we accept ``.npy`` arrays of
decoded uint8 RGB frames (T, H, W, 3): the golden training records use them, and they make tiny
synthetic training sets codec-free.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from stchat.errors import VideoError
from stchat.processing.image import load_image, preprocess
from stchat.train.data import TrainRecord
from stchat.video.sampling import official_frame_indices


def _video_frames(path: Path, split: tuple[int, int] | None) -> tuple[np.ndarray, list[int]]:
    if path.suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise VideoError(f"cannot read frame array {path}: {exc}") from None
        if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
            raise VideoError(f"{path}: a frame array must be uint8 (T, H, W, 3), got {arr.dtype} {arr.shape}")
        try:
            idx = official_frame_indices(arr.shape[0], split)
        except ValueError as exc:
            raise VideoError(f"{path}: {exc}") from None
        return np.ascontiguousarray(arr[idx]), idx
    from stchat.video import io as video_io  # the shared decoder (PyAV)

    info = video_io.probe(path)
    try:
        idx = official_frame_indices(int(info.frame_count), split)
    except ValueError as exc:
        raise VideoError(f"{path}: {exc}") from None
    return np.asarray(video_io.read_frames(path, idx)), idx


def load_pixels(rec: TrainRecord) -> tuple[torch.Tensor, list[int] | None]:
    """``(pixel_values, frame_indices)``: (100, 3, 384, 384) for a video, (1, 3, 384, 384) for an image."""
    if not rec.media.is_file():
        raise VideoError(f"sample {rec.id}: media file not found: {rec.media}")
    if rec.modality == "video":
        frames, idx = _video_frames(rec.media, rec.split)
        return preprocess(frames), idx
    if rec.media.suffix == ".npy":
        arr = np.load(rec.media)
        return preprocess(arr), None
    return preprocess(load_image(rec.media)), None
