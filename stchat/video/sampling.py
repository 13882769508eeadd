"""Which source frames the model sees: the official LLaVA-ST frame-index formula.

The official ``load_video`` (inference and training alike) samples exactly ``n = 100`` frames over an
inclusive frame range ``split = [first, last]`` (default: the whole video)::

    frame_idx[i] = first + round((i / (n - 1)) * (last - first))      i = 0 .. n-1

evaluated left to right in float64 with Python's ``round`` (half to even). Clips shorter than ``n``
frames repeat indices. Sampled frame ``k`` is the frame the model's temporal token ``<TEMP-k>`` means,
i.e. time fraction ``k / 99`` of the range.
"""

from __future__ import annotations

from collections.abc import Sequence

NUM_FRAMES = 100  # fixed by the released model: LAPE broadcasts a 100-row temporal table


def resolve_split(num_frames_in_video: int, split: Sequence[int] | None) -> tuple[int, int]:
    """The inclusive frame range to sample; ``None`` means the whole video."""
    if num_frames_in_video < 1:
        raise ValueError("the video has no frames")
    if split is None:
        return 0, num_frames_in_video - 1
    first, last = int(split[0]), int(split[1])
    if first < 0 or last < first:
        raise ValueError(f"invalid frame range [{first}, {last}]: need 0 <= first <= last")
    if last > num_frames_in_video - 1:
        raise ValueError(
            f"frame range [{first}, {last}] ends past the last frame ({num_frames_in_video - 1})"
        )
    return first, last


def official_frame_indices(
    num_frames_in_video: int, split: Sequence[int] | None = None, n: int = NUM_FRAMES
) -> list[int]:
    """Source frame indices the official code samples (inclusive ``split``, ``n`` frames)."""
    first, last = resolve_split(num_frames_in_video, split)
    duration = last - first + 1
    # Same expression and evaluation order as the official code, so float64 rounding ties match.
    return [first + round((i / (n - 1)) * (duration - 1)) for i in range(n)]
