"""Sample-accurate audio slices of a video's first audio track, on the same file clock as the frames.

A clip's audio must start at the exact sample under its first video frame (sync within a frame is the
acceptance bar), so we decode and re-encode rather than copying AAC packets, whose 1024-sample granularity
and encoder priming would shift the cut by up to ~21 ms. Channels are kept (mono stays mono); more than two
channels are downmixed to stereo, the most any browser reliably plays from an MP4.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from stchat.errors import VideoError


@dataclass(frozen=True)
class AudioFormat:
    sample_rate: int
    layout: str  # "mono" or "stereo"

    @property
    def channels(self) -> int:
        return 1 if self.layout == "mono" else 2


def audio_format(path: str | Path) -> AudioFormat | None:
    """The format :func:`iter_audio` produces for this file, or None when it has no audio track."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if not stream.rate:
            return None
        return AudioFormat(int(stream.rate), "mono" if stream.channels == 1 else "stereo")


def iter_audio(
    path: str | Path, start_s: float, end_s: float, fmt: AudioFormat, chunk: int = 16384
) -> Iterator[np.ndarray]:
    """Yield float32 ``(channels, n)`` blocks covering exactly ``[start_s, end_s)`` of the file clock.

    Silence fills whatever the track does not cover (it starts late, ends early, or has gaps), so the
    total is always ``round((end_s - start_s) * rate)`` samples and sample 0 is the sound at ``start_s``.
    """
    rate = fmt.sample_rate
    total = max(0, round((end_s - start_s) * rate))
    cursor = 0  # samples emitted so far
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        origin = (container.start_time or 0) / 1_000_000
        resampler = av.AudioResampler(format="fltp", layout=fmt.layout, rate=rate)
        # Seek half a second early: an AAC frame needs its predecessor for overlap-add.
        seek_s = max(0.0, start_s + origin - 0.5)
        if seek_s > 0 and stream.time_base:
            container.seek(int(seek_s / stream.time_base), stream=stream, backward=True)
        try:
            for frame in container.decode(stream):
                if frame.pts is None or stream.time_base is None:
                    raise VideoError(f"{Path(path).name}: audio has no timestamps")
                t = float(frame.pts * stream.time_base) - origin
                for out in resampler.resample(frame):
                    block = out.to_ndarray().astype(np.float32, copy=False)
                    offset = round((t - start_s) * rate)
                    t += block.shape[1] / rate
                    cursor, emitted = _place(block, offset, cursor, total, fmt.channels)
                    yield from _chunks(emitted, chunk)
                if cursor >= total:
                    break
        except av.FFmpegError:
            pass  # a damaged tail: the rest becomes silence below
    while cursor < total:
        n = min(chunk, total - cursor)
        cursor += n
        yield np.zeros((fmt.channels, n), dtype=np.float32)


def _place(
    block: np.ndarray, offset: int, cursor: int, total: int, channels: int
) -> tuple[int, list[np.ndarray]]:
    """Fit a decoded block starting at sample ``offset`` onto the output whose next sample is ``cursor``."""
    out: list[np.ndarray] = []
    if offset > cursor:  # a gap (or the track starts late): fill with silence
        gap = min(offset, total) - cursor
        if gap > 0:
            out.append(np.zeros((channels, gap), dtype=np.float32))
            cursor += gap
    skip = cursor - offset  # samples of this block already covered (or before the slice)
    if skip < block.shape[1] and cursor < total:
        part = block[:, max(0, skip) : max(0, skip) + (total - cursor)]
        out.append(part)
        cursor += part.shape[1]
    return cursor, out


def _chunks(blocks: list[np.ndarray], size: int) -> Iterator[np.ndarray]:
    for b in blocks:
        for i in range(0, b.shape[1], size):
            yield b[:, i : i + size]
