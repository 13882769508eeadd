"""``stchat probe``'s fast path: an MP4/MOV file's facts from its index boxes, without importing PyAV.

The full probe (:func:`stchat.video.io.probe`) imports PyAV (~70 ms of CPU before it reads a byte), walks
every packet and decodes the first frame. For the common file -- MP4/MOV, H.264 video, AAC or no audio, a
plain edit list -- everything it reports is already in the ``moov`` box: the sample tables give every
frame's timestamp (``stts`` + ``ctts`` + ``elst``) and where every sample's bytes lie
(``stsc``/``stco``/``stsz``); the SPS in ``avcC`` gives the decoded size and aspect ratio; ``tkhd`` the
rotation. This module reads those boxes with ``struct`` (no numpy either) and derives each fact the way
FFmpeg's mov demuxer does, so the result equals the full probe's (a test checks every field on every
clip we have).

Truncation is still caught: a sample whose bytes lie past the end of the file is what the full packet
pass would find cut off, so the fast path checks that every sample (of every track) ends inside the file
instead of reading the packets. Whenever anything is outside what this module vouches for
-- another container or codec, fragmented MP4, several edits, negative composition offsets, samples
past the end of the file, implicit HE-AAC -- :func:`quick_probe` returns None and the caller runs the full
probe. What the fast path cannot see is a sample whose bytes are present but garbage; ``stchat probe
--full`` decodes.
"""

from __future__ import annotations

import math
import os
import struct
from bisect import bisect_right
from itertools import accumulate, chain, compress, count, repeat
from operator import add, lt, mul, sub  # C functions: 2-3x faster in map() than int.__add__ & co

from stchat.video.facts import DEFAULT_LIMITS, VideoLimits, check_file, check_limits

TYPE_CHECKING = False  # neither typing nor pathlib is imported on this path: see stchat/video/facts.py
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from stchat.video.facts import PathLike
    from stchat.video.info import VideoInfo

MOV_FORMAT = "mov,mp4,m4a,3gp,3g2,mj2"  # FFmpeg's name for the demuxer, what the full probe reports
_VIDEO_CODECS = {b"avc1": "h264", b"avc3": "h264"}
_HEADER_SLACK_S = 2.0  # as stchat.video.io
_MAX_MOOV = 256 * 1024 * 1024
_MAX_SAMPLES = 20_000_000  # per track; counts come from the file, so they are checked before any list
_INT_MAX = 2**31 - 1
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)
_AAC_CHANNELS = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 8}
_SAR_TABLE = (
    None, (1, 1), (12, 11), (10, 11), (16, 11), (40, 33), (24, 11), (20, 11), (32, 11), (80, 33),
    (18, 11), (15, 11), (64, 33), (160, 99), (4, 3), (3, 2), (2, 1),
)


class _Unsure(Exception):
    """The fast path cannot vouch for this file: the caller reads it the full way."""


class _Track:
    """One ``trak``'s boxes, as read (a plain class: ``dataclasses`` is not imported on this path)."""

    def __init__(self) -> None:
        self.kind = b""
        self.timescale = 0
        self.media_duration = 0  # mdhd
        self.matrix: tuple[int, ...] = ()
        self.edits: list[tuple[int, int, int]] = []  # (duration, media_time, rate)
        self.entry = b""  # sample entry type (avc1, mp4a ...)
        self.entry_data = b""
        # The sample tables as columns straight from struct.unpack (slices of one tuple, made in C): every
        # per-entry step below is then a C-level map, not a Python loop -- a 10-minute file has ~50,000
        # ctts and stsc entries.
        self.stts: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # (sample counts, deltas)
        self.ctts: tuple[tuple[int, ...], tuple[int, ...]] | None = None  # (sample counts, offsets)
        self.sizes: tuple[int, ...] | list[int] = ()
        self.stsc: tuple[tuple[int, ...], tuple[int, ...]] = ((), ())  # (first chunks, samples per chunk)
        self.chunks: tuple[int, ...] = ()


def quick_facts(path: PathLike, limits: VideoLimits = DEFAULT_LIMITS) -> dict[str, Any] | None:
    """:meth:`VideoInfo.to_dict` of what the full probe would give, from the index boxes alone; or None
    when this module cannot vouch for the file (the caller then runs the full probe).

    Bad input the cheap checks catch (missing, empty, too large) raises :class:`VideoError` as the full
    probe does.
    """
    check_file(path, limits)
    try:
        facts = _probe(os.fspath(path))
    except (_Unsure, struct.error, ValueError, IndexError, KeyError, ZeroDivisionError, OSError):
        return None
    check_limits(path, facts["duration_s"], facts["width"], facts["height"], facts["frame_count"], limits)
    return facts


def quick_probe(path: PathLike, limits: VideoLimits = DEFAULT_LIMITS) -> VideoInfo | None:
    """:func:`quick_facts` as a :class:`VideoInfo` (equal to :func:`stchat.video.io.probe`'s), or None."""
    from stchat.video.info import VideoInfo

    facts = quick_facts(path, limits)
    return None if facts is None else VideoInfo.from_dict(facts)


# --------------------------------------------------------------------------- boxes


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, payload end) of each box in ``data[start:end]``."""
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < head or pos + size > end:
            raise _Unsure
        yield kind, pos + head, pos + size
        pos += size
    if pos != end and end - pos >= 8:
        raise _Unsure


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int]:
    for k, a, b in _boxes(data, start, end):
        if k == kind:
            return a, b
    raise _Unsure


def _read_moov(path: str, file_size: int) -> bytes:
    """The ``moov`` box's payload; every top-level box must lie inside the file (else: cut off)."""
    moov = None
    with open(path, "rb") as fh:
        pos = 0
        first = True
        while pos < file_size:
            fh.seek(pos)
            head = fh.read(16)
            if len(head) < 8:
                raise _Unsure
            size, kind = struct.unpack_from(">I4s", head)
            hlen = 8
            if size == 1:
                if len(head) < 16:
                    raise _Unsure
                size, hlen = struct.unpack_from(">Q", head, 8)[0], 16
            elif size == 0:
                size = file_size - pos
            if first and kind not in (b"ftyp", b"moov", b"free", b"skip", b"wide", b"mdat", b"pnot"):
                raise _Unsure  # not an ISO/QuickTime file
            first = False
            if size < hlen or pos + size > file_size:
                raise _Unsure  # a box runs past the end of the file: let the full probe measure the damage
            if kind in (b"moof", b"mfra"):
                raise _Unsure  # fragmented MP4: samples live outside moov
            if kind == b"moov":
                if moov is not None or size > _MAX_MOOV:
                    raise _Unsure
                fh.seek(pos + hlen)
                moov = fh.read(size - hlen)
            pos += size
    if moov is None:
        raise _Unsure
    return moov


def _full_box(data: bytes, a: int) -> tuple[int, int]:
    """(version, offset of the payload after version and flags)."""
    return data[a], a + 4


def _parse_track(data: bytes, a: int, b: int) -> _Track:
    t = _Track()
    tk_a, _ = _child(data, a, b, b"tkhd")
    v, o = _full_box(data, tk_a)
    o += 32 if v == 1 else 20  # times, track id, reserved, duration
    o += 16  # reserved, layer, alternate group, volume, reserved
    t.matrix = struct.unpack_from(">9i", data, o)
    for k, ka, kb in _boxes(data, a, b):
        if k == b"edts":
            el_a, _ = _child(data, ka, kb, b"elst")
            v, o = _full_box(data, el_a)
            (n,) = struct.unpack_from(">I", data, o)
            o += 4
            for _ in range(n):
                if v == 1:
                    dur, media, rate = struct.unpack_from(">QqI", data, o)
                    o += 20
                else:
                    dur, media, rate = struct.unpack_from(">IiI", data, o)
                    o += 12
                t.edits.append((dur, media, rate))
    md_a, md_b = _child(data, a, b, b"mdia")
    h_a, _ = _child(data, md_a, md_b, b"mdhd")
    v, o = _full_box(data, h_a)
    if v == 1:
        t.timescale, t.media_duration = struct.unpack_from(">IQ", data, o + 16)
    else:
        t.timescale, t.media_duration = struct.unpack_from(">II", data, o + 8)
    hd_a, _ = _child(data, md_a, md_b, b"hdlr")
    t.kind = data[hd_a + 8 : hd_a + 12]
    mi_a, mi_b = _child(data, md_a, md_b, b"minf")
    st_a, st_b = _child(data, mi_a, mi_b, b"stbl")
    for k, ka, _kb in _boxes(data, st_a, st_b):
        _, o = _full_box(data, ka)
        if k == b"stsd":
            (n,) = struct.unpack_from(">I", data, o)
            if n != 1:
                raise _Unsure
            size, t.entry = struct.unpack_from(">I4s", data, o + 4)
            t.entry_data = data[o + 12 : o + 4 + size]
        elif k == b"stts":
            (n,) = struct.unpack_from(">I", data, o)
            rows = struct.unpack_from(f">{2 * n}I", data, o + 4)
            t.stts = rows[0::2], rows[1::2]
        elif k == b"ctts":
            (n,) = struct.unpack_from(">I", data, o)
            rows = struct.unpack_from(f">{2 * n}i", data, o + 4)
            t.ctts = rows[0::2], rows[1::2]
        elif k == b"stsz":
            fixed, n = struct.unpack_from(">II", data, o)
            if n > _MAX_SAMPLES:
                raise _Unsure
            t.sizes = [fixed] * n if fixed else struct.unpack_from(f">{n}I", data, o + 8)
        elif k == b"stz2":
            raise _Unsure
        elif k == b"stsc":
            (n,) = struct.unpack_from(">I", data, o)
            rows = struct.unpack_from(f">{3 * n}I", data, o + 4)
            t.stsc = rows[0::3], rows[1::3]
        elif k == b"stco":
            (n,) = struct.unpack_from(">I", data, o)
            t.chunks = struct.unpack_from(f">{n}I", data, o + 4)
        elif k == b"co64":
            (n,) = struct.unpack_from(">I", data, o)
            t.chunks = struct.unpack_from(f">{n}Q", data, o + 4)
    return t


# --------------------------------------------------------------------------- tables -> facts


def _check_in_file(t: _Track, file_size: int) -> None:
    """Raise :class:`_Unsure` when the chunk tables disagree or a sample's bytes lie past the end of the
    file (a cut-off file: the full probe then says what is readable)."""
    firsts, pers = t.stsc
    if not firsts or not t.chunks or not t.sizes:
        raise _Unsure
    if min(pers) < 1:
        raise _Unsure
    one_each = len(firsts) == len(t.chunks) and firsts == tuple(range(1, len(firsts) + 1))
    if one_each:  # a run per chunk (interleaved audio): one compare instead of a count per run
        counts = [1] * len(firsts)
        total = sum(pers)
    else:
        counts = list(map(sub, (*firsts[1:], len(t.chunks) + 1), firsts))  # chunks in each run
        if firsts[0] != 1 or min(counts) < 1:
            raise _Unsure
        total = sum(map(mul, pers, counts))
    if total != len(t.sizes):
        raise _Unsure
    # A chunk's samples lie back to back and none is larger than the largest, so a chunk's last byte is
    # at most its offset + samples x largest. If the chunk furthest into the file would end inside it even
    # with as many samples as any chunk has, every sample does: one C-level max per column, where summing
    # every sample's size was most of this module's time on a long file. Otherwise (moov first, samples up
    # to the file's last byte) only the chunks that start within that reach of the end get their sizes
    # summed.
    big = max(t.sizes)
    reach = max(pers) * big
    if max(t.chunks) + reach <= file_size:
        return
    near_end = file_size - reach
    if sorted(t.chunks) == list(t.chunks):  # chunks in file order (the usual): the late ones are a tail
        late: range | list[int] = range(bisect_right(t.chunks, near_end), len(t.chunks))
    else:
        late = list(compress(count(), map(lt, repeat(near_end), t.chunks)))
    sizes, chunks = t.sizes, t.chunks
    if len(late) > 64:  # not the usual few: every chunk's first sample, in C-level loops
        starts = list(accumulate(chain.from_iterable(map(repeat, pers, counts)), initial=0))
        spans = [(starts[j], starts[j + 1]) for j in late]
    else:  # a late chunk's first sample, counted back from the end through the stsc runs after it
        spans = []
        for j in late:
            r = bisect_right(firsts, j + 1) - 1  # the stsc run of chunk j (chunks are numbered from 1)
            after = sum(pers[r:]) if one_each else sum(map(mul, pers[r:], counts[r:]))
            start = total - after + (j + 1 - firsts[r]) * pers[r]
            spans.append((start, start + pers[r]))
    for j, (a, b) in zip(late, spans, strict=True):
        if chunks[j] + sum(sizes[a:b]) > file_size:
            raise _Unsure


def _stts_duration(t: _Track) -> tuple[int, int]:
    """(FFmpeg's duration_for_fps, its frame count) from ``stts``."""
    counts, deltas = t.stts
    if max(deltas, default=0) > _INT_MAX:
        raise _Unsure  # FFmpeg treats these as negative corrections
    total = sum(counts)
    if total != len(t.sizes):
        raise _Unsure  # also keeps a forged count from building a huge list
    duration = sum(map(mul, counts, deltas))
    if len(counts) > 1 and counts[-1] == 1:
        # FFmpeg's correction for a huge last sample duration (mov_read_stts), which enters the frame
        # rate: it becomes the mean of the samples before it.
        before, n_before = duration - deltas[-1], total - 1
        if n_before > 100 and deltas[-1] // 10 > before // n_before:
            duration = before + before // n_before
    return duration, total


def _rescale(a: int, b: int, c: int) -> int:
    """FFmpeg's av_rescale: a * b / c rounded to the nearest, halves away from zero."""
    q, r = divmod(abs(a) * b, c)
    if 2 * r >= c:
        q += 1
    return q if a >= 0 else -q


def _edit(t: _Track, movie_ts: int) -> tuple[int, int, int | None]:
    """(empty lead-in in track units, media time of the one edit, its length in track units or None)."""
    lead = 0
    media = 0
    length: int | None = None
    real = [e for e in t.edits if e[1] != -1]
    if len(real) > 1:
        raise _Unsure
    for dur, media_time, rate in t.edits:
        if rate != 0x10000 or dur == 0:
            raise _Unsure
        if media_time == -1:
            if real and (dur, media_time, rate) != t.edits[0]:
                raise _Unsure  # an empty edit after the real one
            lead += _rescale(dur, t.timescale, movie_ts)
        else:
            media = media_time
            length = _rescale(dur, t.timescale, movie_ts) if dur else None
    return lead, media, length


def _stream_duration(t: _Track, movie_ts: int, stts_duration: int) -> int:
    """FFmpeg's stream duration: the shorter of mdhd's and the samples', cut to the edit list's length."""
    duration = min(t.media_duration, stts_duration) if stts_duration else t.media_duration
    if t.edits:
        duration = min(duration, sum(_rescale(d, t.timescale, movie_ts) for d, _, _ in t.edits))
    return duration


def _frame_times(t: _Track) -> tuple[int, int, int, int]:
    """(first and last composition time, smallest and largest step between consecutive ones) of a
    video track, in track units, before the edit list."""
    counts, deltas = t.stts
    n = len(t.sizes)
    if len(deltas) == 1:
        d = deltas[0]
        dts: range | list[int] = range(0, n * d, d) if d else [0] * n
    else:
        dts = list(accumulate(chain.from_iterable(map(repeat, deltas, counts)), initial=0))[:-1]
    if t.ctts is None:
        cts = dts
    elif sum(t.ctts[0]) != n:
        raise _Unsure
    else:
        # Negative offsets are fine: FFmpeg shifts the dts by the largest (dts_shift) and adds it back to
        # every pts, so pts = dts + offset either way.
        runs, offsets = t.ctts
        if not min(runs) == 1 == max(runs):  # else (B-frames: nearly every offset differs) one per sample
            offsets = chain.from_iterable(map(repeat, offsets, runs))  # type: ignore[assignment]
        cts = list(map(add, dts, offsets))
    lo, hi = min(cts), max(cts)
    if len(deltas) == 1 and d:
        # The common constant-rate file, without sorting: all times on one grid of step d (every dts is
        # a multiple of d, so the offsets decide the residue), n distinct ones spanning (n - 1) x d,
        # fill every slot of the grid once, so every step is d.
        grid = t.ctts is None or len({o % d for o in set(t.ctts[1])}) == 1
        if grid and hi - lo == (n - 1) * d and (t.ctts is None or len(set(cts)) == n):
            return lo, hi, d, d
    ordered = sorted(cts)
    steps = list(map(sub, ordered[1:], ordered[:-1]))
    return lo, hi, min(steps, default=0), max(steps, default=0)


def _video_pts(t: _Track, movie_ts: int) -> tuple[int, int, int, int, int, int]:
    """First and last presentation time (track units), the smallest and largest step between frames,
    duration_for_fps, frames_for_fps."""
    fps_duration, n = _stts_duration(t)
    if n == 0:
        raise _Unsure
    lo, hi, min_step, max_step = _frame_times(t)
    lead, media, length = _edit(t, movie_ts)
    if t.edits:
        # Every frame must lie inside the edit: FFmpeg would mark the others as discarded.
        if lo < media or (length is not None and hi >= media + length):
            raise _Unsure
    shift = media
    if t.edits and lo > media:
        shift = lo  # FFmpeg moves the first frame of an edited video track to the edit's start
    if n > 1 and min_step == 0:
        raise _Unsure  # two frames at one time
    return lo + lead - shift, hi + lead - shift, min_step, max_step, fps_duration, n


class _Bits:
    """An H.264 RBSP bit reader (emulation-prevention bytes removed)."""

    def __init__(self, nal: bytes) -> None:
        self.data = nal.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.data[self.pos >> 3]
            v = (v << 1) | ((byte >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise _Unsure
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _sps(nal: bytes) -> tuple[int, int, tuple[int, int] | None]:
    """Cropped width and height and the VUI sample aspect ratio (None: unspecified) of an H.264 SPS."""
    r = _Bits(nal[1:])  # after the NAL header byte
    profile = r.u(8)
    r.u(16)  # constraint flags, level
    r.ue()  # sps id
    chroma = 1
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = r.ue()
        if chroma == 3:
            r.u(1)
        r.ue()
        r.ue()
        r.u(1)
        if r.u(1):  # scaling matrices
            for i in range(8 if chroma != 3 else 12):
                if r.u(1):
                    size, last, nxt = (16 if i < 6 else 64), 8, 8
                    for _ in range(size):
                        if nxt:
                            nxt = (last + r.se() + 256) % 256
                        last = nxt or last
    r.ue()  # log2_max_frame_num
    poc = r.ue()
    if poc == 0:
        r.ue()
    elif poc == 1:
        r.u(1)
        r.se()
        r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue()  # max refs
    r.u(1)
    w_mbs, h_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.u(1)
    if not frame_mbs_only:
        r.u(1)
    r.u(1)
    width, height = 16 * w_mbs, 16 * h_units * (2 - frame_mbs_only)
    if r.u(1):  # cropping
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        cx = 1 if chroma in (0, 3) else 2
        cy = (2 if chroma == 1 else 1) * (2 - frame_mbs_only)
        width -= cx * (left + right)
        height -= cy * (top + bottom)
    sar = None
    if r.u(1) and r.u(1):  # VUI present, aspect ratio info present
        idc = r.u(8)
        if idc == 255:
            num, den = r.u(16), r.u(16)
        elif 0 < idc < len(_SAR_TABLE):
            num, den = _SAR_TABLE[idc]  # type: ignore[misc]
        else:
            num, den = 0, 0
        if num > 0 and den > 0:
            sar = (num, den)
    if width <= 0 or height <= 0:
        raise _Unsure
    return width, height, sar


def _video_entry(t: _Track) -> tuple[int, int, tuple[int, int] | None]:
    """Decoded size and sample aspect ratio (a ``pasp`` box wins over the SPS, as in FFmpeg)."""
    d = t.entry_data
    boxes = {k: d[a:b] for k, a, b in _boxes(d, 78, len(d))}
    avcc = boxes.get(b"avcC")
    if avcc is None or len(avcc) < 8 or avcc[5] & 0x1F < 1:
        raise _Unsure
    (n,) = struct.unpack_from(">H", avcc, 6)
    width, height, sar = _sps(avcc[8 : 8 + n])
    pasp = boxes.get(b"pasp")
    if pasp is not None:
        h, v = struct.unpack_from(">II", pasp)
        if h > 0 and v > 0:
            sar = (h, v)
    return width, height, sar


def _aac_entry(t: _Track) -> tuple[int, int]:
    """(sample rate, channels) of an AAC-LC ``mp4a`` entry, from its AudioSpecificConfig."""
    d = t.entry_data
    (version,) = struct.unpack_from(">H", d, 8)
    start = {0: 28, 1: 44, 2: 64}.get(version)
    if start is None:
        raise _Unsure
    esds = next((d[a:b] for k, a, b in _boxes(d, start, len(d)) if k == b"esds"), None)
    if esds is None:
        raise _Unsure
    pos = 4  # version and flags
    asc = None
    oti = None
    while pos < len(esds):
        tag = esds[pos]
        pos += 1
        length = 0
        for _ in range(4):
            byte = esds[pos]
            pos += 1
            length = (length << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        if tag == 3:  # ES descriptor: its fields, then the nested descriptors
            flags = esds[pos + 2]
            pos += 3 + (2 if flags & 0x80 else 0)  # ES id, flags, the id it depends on
            if flags & 0x40:
                pos += 1 + esds[pos]  # URL
            pos += 2 if flags & 0x20 else 0  # OCR stream id
        elif tag == 4:  # decoder config: object type, then nested descriptors
            oti = esds[pos]
            pos += 13
        elif tag == 5:
            asc = esds[pos : pos + length]
            break
        else:
            pos += length
    if oti != 0x40 or asc is None or len(asc) < 2:
        raise _Unsure
    bits = int.from_bytes(asc[:5].ljust(5, b"\0"), "big")
    aot, idx = bits >> 35, (bits >> 31) & 0xF
    if aot != 2 or idx >= len(_AAC_RATES):
        raise _Unsure  # HE-AAC, explicit rates, other object types: FFmpeg reports what it decodes
    rate = _AAC_RATES[idx]
    channels = _AAC_CHANNELS.get((bits >> 27) & 0xF)
    if channels is None or rate < 32000:
        raise _Unsure  # a low LC rate may carry implicit SBR (HE-AAC), which only decoding reveals
    return rate, channels


def _rotation(matrix: tuple[int, ...]) -> int:
    """The clockwise display rotation (0/90/180/270) of a tkhd matrix, as FFmpeg's display matrix gives."""
    a, b, c, d = matrix[0], matrix[1], matrix[3], matrix[4]
    sa, sb = math.hypot(a, c), math.hypot(b, d)
    if sa == 0 or sb == 0:
        return 0
    ccw = -math.degrees(math.atan2(b / sb, a / sa))  # av_display_rotation_get
    return int(round(-ccw / 90.0)) * 90 % 360


def _probe(path: str) -> dict[str, Any]:
    size = os.path.getsize(path)
    moov = _read_moov(path, size)
    mv_a, _ = _child(moov, 0, len(moov), b"mvhd")
    v, o = _full_box(moov, mv_a)
    if v == 1:
        movie_ts, movie_dur = struct.unpack_from(">IQ", moov, o + 16)
        m_off = o + 16 + 12 + 16
    else:
        movie_ts, movie_dur = struct.unpack_from(">II", moov, o + 8)
        m_off = o + 8 + 8 + 16
    if struct.unpack_from(">9i", moov, m_off) != (0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000):
        raise _Unsure
    if not movie_ts or not movie_dur:
        raise _Unsure
    tracks = [_parse_track(moov, a, b) for k, a, b in _boxes(moov, 0, len(moov)) if k == b"trak"]
    videos = [t for t in tracks if t.kind == b"vide"]
    audios = [t for t in tracks if t.kind == b"soun"]
    if len(videos) != 1 or len(audios) > 1 or len(tracks) != len(videos) + len(audios):
        raise _Unsure
    for t in tracks:
        if not t.timescale:
            raise _Unsure
        _check_in_file(t, size)
    vt = videos[0]
    codec = _VIDEO_CODECS.get(vt.entry)
    if codec is None:
        raise _Unsure
    first, last, min_step, max_step, fps_duration, fps_frames = _video_pts(vt, movie_ts)
    coded_w, coded_h, sar = _video_entry(vt)
    # (start, duration) of each stream in its own units, then in microseconds as FFmpeg rounds them.
    spans = [(first, _stream_duration(vt, movie_ts, fps_duration), vt.timescale)]
    audio = None
    if audios:
        at = audios[0]
        if at.entry != b"mp4a":
            raise _Unsure
        audio = _aac_entry(at)
        lead, _media, _length = _edit(at, movie_ts)
        # AAC's priming (the edit's media time) is skipped by FFmpeg, so the track starts at its lead-in.
        spans.append((lead, _stream_duration(at, movie_ts, _stts_duration(at)[0]), at.timescale))
    starts_us = [_rescale(start, 1_000_000, ts) for start, _, ts in spans]
    ends_us = [s0 + _rescale(d, 1_000_000, ts) for s0, (_, d, ts) in zip(starts_us, spans, strict=True)]
    # The container's start is the earliest stream start; its duration runs to the latest stream end
    # (avformat's update_stream_timings; the mvhd duration is not what FFmpeg reports).
    origin_us = min(starts_us)
    container_us = max(max(_rescale(d, 1_000_000, ts) for _, d, ts in spans), max(ends_us) - origin_us)
    ts = vt.timescale
    n = fps_frames
    # Seconds as integer fractions (int / int is correctly rounded, as float(Fraction) is), so no
    # ``fractions`` import (with ``decimal`` behind it) on this path.
    first_s = (first * 1_000_000 - origin_us * ts) / (ts * 1_000_000)
    last_s = (last * 1_000_000 - origin_us * ts) / (ts * 1_000_000)
    vfr = (max_step - min_step) / ts > 0.002
    if not fps_frames or not fps_duration:
        raise _Unsure
    g = math.gcd(ts * fps_frames, fps_duration)
    fps_num, fps_den = ts * fps_frames // g, fps_duration // g
    if fps_num > _INT_MAX or fps_den > _INT_MAX:
        raise _Unsure  # av_reduce would approximate
    rotation = _rotation(vt.matrix)
    declared_s = container_us / 1_000_000
    video_end = last_s + fps_den / fps_num
    duration = declared_s
    truncated = False
    if duration > video_end + max(_HEADER_SLACK_S, 0.01 * video_end):
        duration = video_end
        truncated = True
    width, height = (coded_h, coded_w) if rotation in (90, 270) else (coded_w, coded_h)
    if sar is not None:
        g = math.gcd(*sar)
        sar = (sar[0] // g, sar[1] // g)
    return {  # VideoInfo's fields in its JSON form (VideoInfo.to_dict), in its order
        "path": path,  # as given, like the full probe's
        "container": MOV_FORMAT,
        "video_codec": codec,
        "duration_s": round(float(duration), 6),
        "fps": f"{fps_num}/{fps_den}",
        "fps_float": round(fps_num / fps_den, 6),
        "frame_count": n,
        "width": width,
        "height": height,
        "coded_width": coded_w,
        "coded_height": coded_h,
        "rotation": rotation,
        "has_audio": audio is not None,
        "audio_codec": "aac" if audio is not None else None,
        "audio_sample_rate": audio[0] if audio is not None else None,
        "audio_channels": audio[1] if audio is not None else None,
        "start_time_s": round(first_s, 6),
        "vfr": vfr,
        "sample_aspect_ratio": None if sar is None else ":".join(map(str, sar)).removesuffix(":1"),
        "declared_duration_s": round(float(declared_s), 6),
        "declared_frame_count": sum(vt.stts[0]) or None,
        "truncated": truncated,
    }
