"""Media of a training record -> ``pixel_values``, through the one media path inference uses.

Videos take the official 100-frame index formula over ``meta.split`` (the official training loader
``process_video_with_decord`` has the same formula as inference) and the official SigLIP preprocessing:
both are :func:`stchat.media.load_sampled`, so training sees exactly the pixels chat and eval see.
Besides real video files we accept ``.npy`` arrays of decoded uint8 RGB frames (T, H, W, 3) -- the golden
training records use them, and they make tiny synthetic training sets codec-free -- and ``.npy`` images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from stchat.errors import VideoError
from stchat.media import load_sampled
from stchat.processing.image import load_image

if TYPE_CHECKING:  # the record type only; stchat.train.data imports this module
    from stchat.train.data import TrainRecord


def load_pixels(rec: TrainRecord) -> tuple[torch.Tensor, list[int] | None]:
    """``(pixel_values, frame_indices)``: (100, 3, 384, 384) for a video, (1, 3, 384, 384) for an image."""
    if not rec.media.is_file():
        raise VideoError(f"sample {rec.id}: media file not found: {rec.media}")
    if rec.modality == "video":
        try:
            loaded = load_sampled(rec.media, rec.split)
        except VideoError as exc:
            raise VideoError(f"{rec.media}: {exc}") from None
        return loaded.pixel_values, loaded.frame_indices
    # The record says it is an image: read it as one whatever its suffix (as the official loader does).
    media = np.load(rec.media) if rec.media.suffix == ".npy" else load_image(rec.media)
    return load_sampled(media).pixel_values, None
