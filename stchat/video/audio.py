"""A clip's audio, on the same file clock as the frames: copied packets where possible, else re-encoded.

**Copy** (:class:`AudioPackets`, the usual case): when the first audio track is AAC or MP3 with at most two
channels in an MP4/MOV/Matroska file, its packets are copied into the clip untouched -- no decode, no
second lossy generation, no encoder time. A packet is a fixed block of samples (1024 for AAC, 1152 for
MP3), so the copied audio covers the segment to within one packet: it starts with the first packet that
begins at or after the first frame's time (never before: that would need a negative timestamp, i.e. an
edit list in the MP4), which leaves up to one packet of silence at the clip's start (21.3 ms for AAC at
48 kHz), and ends with the last packet that starts more than half a packet before the clip's end (the
audio may stop up to half a packet early or run half a packet late). Each packet keeps its own time
relative to the clip's first frame (to the audio tick; a packet up to 0.5 ms before the first frame moves
to 0), so sound and picture stay in sync exactly. The first copied packet decodes without its
predecessor (AAC: its first milliseconds fade in; MP3: a frame whose bit reservoir lies in the packet
before decodes as silence), as with any stream copy.

**Re-encode** (:func:`iter_audio`): any other codec, more than two channels (downmixed to stereo, the most
any browser reliably plays from an MP4), other containers, or packets without timestamps. The slice then
starts at the exact sample under the first frame. Channels are kept (mono stays mono).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
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


# Audio an MP4 holds and every browser plays: copied as packets rather than re-encoded.
COPY_CODECS = frozenset({"aac", "mp3", "mp3float"})  # FFmpeg's MP3 decoder is named mp3float
# Containers whose AAC packets are raw frames with the decoder config in the stream header, as MP4 stores
# them (MPEG-TS and ADTS files frame each packet with an ADTS header instead).
_COPY_CONTAINERS = ("mov", "mp4", "matroska")
_EARLY_S = 0.0005  # a packet this close before the first frame still counts as starting with it


def can_copy_audio(path: str | Path) -> bool:
    """True when the first audio track's packets can go into an MP4 clip as they are (see module doc)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return False
            stream = container.streams.audio[0]
            fmt = container.format.name.split(",")
            return (
                stream.codec_context.name in COPY_CODECS
                and 0 < (stream.channels or 0) <= 2
                and bool(stream.rate)
                and stream.time_base is not None
                and any(name in _COPY_CONTAINERS for name in fmt)
            )
    except (av.FFmpegError, OSError):
        return False


class AudioPackets:
    """The first audio track's packets for the clip ``[start_s, end_s)`` of the file clock, retimed so
    that ``origin_s`` (the clip's first frame, on the file clock) is 0. See the module doc for the rule.

    ``stream`` is the source stream, the template for the clip's audio stream. Iterate with :meth:`until`
    to interleave with the video; :meth:`close` when done.
    """

    def __init__(self, path: str | Path, start_s: float, end_s: float, origin_s: float) -> None:
        self._container = av.open(str(path))
        self.stream = self._container.streams.audio[0]
        tb = self.stream.time_base
        if tb is None:
            self._container.close()
            raise VideoError(f"{Path(path).name}: audio has no time base")
        self._tb = Fraction(tb)
        clock = Fraction(self._container.start_time or 0, 1_000_000)  # file clock = pts * tb - clock
        # The rule in stream ticks, once, so each packet is judged with integers: kept when its pts is at
        # least ``_lo`` and twice its pts plus its duration is below ``_hi2`` (its middle before the end).
        self._lo = math.ceil((Fraction(start_s) - Fraction(_EARLY_S) + clock) / self._tb)
        self._hi2 = math.ceil(2 * (Fraction(end_s) + clock) / self._tb)
        self._offset = round((Fraction(origin_s) + clock) / self._tb)  # pts that becomes 0
        self._ticks_per_s = float(1 / self._tb)
        self._pending: av.Packet | None = None
        self._done = False
        # Seek a little early: the demuxer lands on the packet at or before the target.
        seek_pts = int((Fraction(start_s) + clock - Fraction(1, 2)) / self._tb)
        if seek_pts > 0:
            self._container.seek(seek_pts, stream=self.stream, backward=True)
        self._packets = self._select()

    def _select(self) -> Iterator[av.Packet]:
        first = True
        try:
            for packet in self._container.demux(self.stream):
                if packet.size == 0 or packet.pts is None or packet.is_corrupt:
                    continue
                if packet.pts < self._lo:
                    continue
                if 2 * packet.pts + (packet.duration or 1024) >= self._hi2:
                    return
                if first:
                    # Never a negative timestamp: a packet a hair before the first frame moves to 0.
                    self._offset = min(self._offset, packet.pts)
                    first = False
                shift = packet.pts - (packet.dts if packet.dts is not None else packet.pts)
                packet.pts -= self._offset
                packet.dts = packet.pts - shift
                yield packet
        except av.FFmpegError:
            return  # a damaged tail: the clip's audio ends where the readable packets do

    def until(self, seconds: float | None) -> Iterator[av.Packet]:
        """Packets whose clip time is before ``seconds`` (clip clock; None: all the rest), in order."""
        limit = None if seconds is None else seconds * self._ticks_per_s
        while not self._done:
            packet = self._pending or next(self._packets, None)
            self._pending = None
            if packet is None:
                self._done = True
                return
            if limit is not None and packet.pts >= limit:
                self._pending = packet
                return
            yield packet

    def close(self) -> None:
        self._container.close()


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
