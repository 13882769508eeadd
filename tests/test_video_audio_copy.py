"""A clip's audio is the source's own packets when they fit MP4 (AAC, up to two channels), re-encoded
otherwise; either way it is read back from the output file and checked against the source: codec, the
packets themselves, coverage of the clip, and sync (each packet at its source time minus the clip start).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import official_examples_dir

from stchat.clip import cut_frames, cut_seconds
from stchat.video.audio import can_copy_audio
from stchat.video.io import probe

RATE = 48000


def make_clip(path: Path, seconds: float = 4.0, layout: str = "stereo", codec: str = "aac",
              change_s: float = 2.0) -> None:
    """25 fps grey video with a tone that steps from 440 Hz to 880 Hz at ``change_s``."""
    fps = 25
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuv420p"
        aus = out.add_stream(codec, rate=RATE, layout=layout)
        channels = aus.codec_context.channels
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 4 * i % 256, np.uint8), format="rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        t = np.arange(int(seconds * RATE)) / RATE
        tone = (0.3 * np.sin(2 * np.pi * np.where(t < change_s, 440.0, 880.0) * t)).astype(np.float32)
        size = aus.codec_context.frame_size or 1024
        fmt = aus.codec_context.format.name
        scale, dtype = {"s16": (32767, np.int16), "s32": (2**31 - 1, np.int32)}.get(
            fmt.rstrip("p"), (1, np.float32)
        )
        for k in range(0, tone.size, size):
            block = (np.repeat(tone[None, k : k + size], channels, axis=0) * scale).astype(dtype)
            if not fmt.endswith("p"):  # packed: one row of interleaved samples
                block = block.T.reshape(1, -1).copy()
            af = av.AudioFrame.from_ndarray(block, format=fmt, layout=layout)
            af.sample_rate, af.pts = RATE, k
            out.mux(aus.encode(af))
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def audio_packets(path: Path) -> tuple[list[tuple[float, float, bytes]], av.AudioStream, float]:
    """(time on the file clock, duration, payload) of each audio packet; the stream; the clock origin."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        tb = Fraction(s.time_base)
        origin = (c.start_time or 0) / 1e6
        out = [(float(p.pts * tb) - origin, float(p.duration * tb), bytes(p))
               for p in c.demux(s) if p.size]
        return out, s, origin


def audio_codec(path: Path) -> tuple[str, int, bytes]:
    with av.open(str(path)) as c:
        cc = c.streams.audio[0].codec_context
        return cc.name, cc.channels, bytes(cc.extradata or b"")


def check_copied(src: Path, clip: Path, start_s: float, end_s: float) -> None:
    """The clip's audio packets are the source's, each at its source time minus ``start_s``."""
    assert audio_codec(clip) == audio_codec(src)  # same codec, channels and decoder config
    theirs, _, _ = audio_packets(src)
    ours, _, _ = audio_packets(clip)
    by_payload: dict[bytes, list[float]] = {}
    for t, _, data in theirs:
        by_payload.setdefault(data, []).append(t)
    assert ours, "no audio in the clip"
    tick = 1 / RATE + 1e-9
    for t, _, data in ours:
        # Sync: the same payload sits at its source time minus the clip's start, to the audio tick.
        near = [u for u in by_payload.get(data, []) if abs(u - (t + start_s)) <= tick]
        assert near, f"packet at {t:.5f} s is not the source's packet at {t + start_s:.5f} s"
    packet = ours[0][1]
    first, last_end = ours[0][0], ours[-1][0] + ours[-1][1]
    # Coverage: starts within one packet after the first frame, ends within half a packet of the clip end.
    assert 0 <= first < packet + 1e-6, first
    assert abs(last_end - (end_s - start_s)) <= packet / 2 + 1e-6, (last_end, end_s - start_s)
    # Nothing of the segment is missing in between.
    starts = [t for t, _, _ in ours]
    assert np.allclose(np.diff(starts), packet, atol=1e-6)


def tone_change_s(path: Path, low: float, high: float) -> float:
    """Clip time where ``high`` starts to dominate ``low``, with samples placed by their timestamps."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        pieces = []
        for frame in c.decode(s):
            pieces.append((float(frame.pts * s.time_base), frame.to_ndarray()[0].astype(np.float32)))
        rate = s.rate
    t0 = pieces[0][0]
    samples = np.concatenate([p for _, p in pieces])
    win, hop = int(0.01 * rate), int(0.0025 * rate)
    n = np.arange(win) / rate
    w = np.hanning(win)

    def power(seg: np.ndarray, f: float) -> float:
        return float(np.abs(np.sum(seg * w * np.exp(-2j * np.pi * f * n))) ** 2)

    # From 0.1 s on: a copied stream's first packet decodes without its predecessor (an AAC fade-in, an
    # MP3 frame whose bit reservoir is in the packet before), which is not the tone.
    for i in range(int(0.1 * rate), samples.size - win, hop):
        seg = samples[i : i + win]
        if power(seg, high) > power(seg, low):
            return t0 + (i + win / 2) / rate
    raise AssertionError("the tone never changes")


@pytest.mark.parametrize("codec", ["aac", "libmp3lame"])
def test_audio_is_copied_packet_for_packet_and_in_sync(codec, tmp_path):
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg build has no {codec} encoder to make the source")
    src = tmp_path / "src.mp4"
    make_clip(src, codec=codec)
    assert can_copy_audio(src)
    res = cut_frames(src, tmp_path / "clip.mp4", 25, 74)  # [1.0, 3.0) s
    assert res.has_audio
    check_copied(src, res.path, res.start_s, res.end_s)
    # The clip's own clock: video starts at 0 and the tone change (2.0 s in the source) is 1.0 s in.
    info = probe(res.path)
    assert info.start_time_s == 0.0 and info.frame_count == 50
    assert abs(tone_change_s(res.path, 440, 880) - 1.0) < 0.01


def test_audio_that_cannot_be_copied_is_reencoded_in_sync(tmp_path):
    src = tmp_path / "src.mkv"
    make_clip(src, codec="mp2")  # MP2: not what an MP4 for browsers carries
    assert not can_copy_audio(src)
    res = cut_seconds(src, tmp_path / "clip.mp4", 1.0, 3.0)
    name, channels, _ = audio_codec(res.path)
    assert (name, channels) == ("aac", 2)
    assert abs(tone_change_s(res.path, 440, 880) - 1.0) < 0.01


def test_more_than_two_channels_are_reencoded_to_stereo(tmp_path):
    src = tmp_path / "src.mp4"
    make_clip(src, layout="5.1")
    assert not can_copy_audio(src)
    res = cut_seconds(src, tmp_path / "clip.mp4", 1.0, 3.0)
    assert audio_codec(res.path)[:2] == ("aac", 2)


def test_official_clip_whose_video_starts_late_keeps_audio_in_sync(tmp_path):
    """stvg/8665030691: video starts at 0.033 s, audio at 0 (an edit list); real-world AAC."""
    root = official_examples_dir()
    if root is None:
        pytest.skip("official demo clips not found: set STCHAT_VIDEOS or place them in ../shared/videos")
    src = root / "stvg" / "8665030691.mp4"
    facts = json.loads((root / "examples.json").read_text())["media_table"]["stvg/8665030691.mp4"]
    if not src.is_file() or not facts.get("has_audio"):
        pytest.skip(f"{src} (with audio) is not in the shared folder")
    assert can_copy_audio(src)
    res = cut_seconds(src, tmp_path / "clip.mp4", 5.0, 9.0)
    check_copied(src, res.path, res.start_s, res.end_s)


def test_clip_and_full_video_in_one_pass_both_carry_the_copied_audio(tmp_path):
    from stchat.clip import ClipSpec, encode_ranges

    src = tmp_path / "src.mp4"
    make_clip(src)
    clip, full = encode_ranges(
        src, [ClipSpec(tmp_path / "clip.mp4", 25, 74), ClipSpec(tmp_path / "full.mp4", 0, 99, origin_s=0.0)]
    )
    check_copied(src, clip.path, clip.start_s, clip.end_s)
    check_copied(src, full.path, 0.0, full.end_s)
    assert abs(tone_change_s(full.path, 440, 880) - 2.0) < 0.01
