"""Video I/O: probe facts, exact frame times, frame-accurate reads, and every kind of bad or odd file."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np
import pytest
from test_video_support import CLIPS, barcode, clip_path, truth

from stchat.errors import VideoError
from stchat.video.io import VideoLimits, frame_times, probe, read_frames
from stchat.video.sampling import official_frame_indices


@pytest.mark.parametrize("name", CLIPS)
def test_probe_matches_synthetic_truth(name):
    meta = truth(name)
    info = probe(clip_path(name))
    assert (info.width, info.height) == (meta["width"], meta["height"])
    assert info.frame_count == meta["n_frames"]
    assert info.fps == Fraction(meta["fps"])
    assert info.duration_s == pytest.approx(meta["duration_s"], abs=1e-3)
    assert info.has_audio == (meta["audio"] is not None)
    assert info.rotation == 0 and info.start_time_s == 0.0 and not info.vfr


@pytest.mark.parametrize("name", CLIPS)
def test_frame_times_are_exact(name):
    meta = truth(name)
    times = frame_times(clip_path(name))
    expected = np.arange(meta["n_frames"]) / float(Fraction(meta["fps"]))
    assert np.abs(times - expected).max() < 1e-9


@pytest.mark.parametrize("name", CLIPS)
def test_official_sampling_reads_exact_frames(name):
    meta = truth(name)
    idx = official_frame_indices(meta["n_frames"])
    frames = read_frames(clip_path(name), idx)
    assert frames.shape == (100, meta["height"], meta["width"], 3) and frames.dtype == np.uint8
    assert [barcode(f, meta["frame_barcode"]) for f in frames] == idx


def test_random_order_and_repeats_on_long_gop():
    # One keyframe for 180 frames: every read past frame 0 is mid-GOP.
    name = "syn_c_640x360_30fps_noaudio_longgop"
    meta = truth(name)
    idx = [170, 3, 99, 99, 0, 179, 45]
    frames = read_frames(clip_path(name), idx)
    assert [barcode(f, meta["frame_barcode"]) for f in frames] == idx


def test_read_frames_out_of_range_is_a_video_error():
    with pytest.raises(VideoError, match="out of range"):
        read_frames(clip_path(CLIPS[0]), [0, 10_000])


def test_official_examples_probe_like_ffprobe(official_dir):
    import json

    table = json.loads((official_dir / "examples.json").read_text())["media_table"]
    for rel, facts in table.items():
        if not rel.endswith(".mp4") or not (official_dir / rel).exists():
            continue
        info = probe(official_dir / rel)
        assert info.frame_count == facts["frames"], rel
        assert (info.width, info.height) == (facts["width"], facts["height"]), rel
        num, den = facts["avg_frame_rate"].split("/")
        assert info.fps == Fraction(int(num), int(den)), rel
        assert info.has_audio == facts["has_audio"], rel
        assert info.start_time_s == pytest.approx(facts["video_start_s"], abs=1e-3), rel


# --- generated robustness cases --------------------------------------------------------------------


def _pattern(i: int, w: int, h: int) -> np.ndarray:
    """Frame i: its index as the grey level of the left half, a white marker in the top-left corner."""
    img = np.full((h, w, 3), 40, dtype=np.uint8)
    img[:, : w // 2] = 10 + 12 * i
    img[: h // 4, : w // 4] = (255, 255, 255)
    return img


def _index_of(frame: np.ndarray) -> int:
    h, w = frame.shape[:2]
    return round((float(frame[h // 2 :, : w // 4].mean()) - 10) / 12)


def _write(
    path: Path,
    codec: str,
    n: int = 16,
    size: tuple[int, int] = (96, 64),
    pts=None,
    rotation=None,
    pix_fmt: str = "yuv420p",
    audio: bool = False,
) -> Path:
    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, pix_fmt
        tb = Fraction(1, 1000)
        vs.codec_context.time_base = tb
        if codec == "libx264":
            vs.codec_context.options = {"preset": "ultrafast", "g": "4"}
        if rotation is not None:
            vs.set_display_rotation(rotation)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_pattern(i, w, h), format="rgb24")
            frame.pts = pts[i] if pts is not None else i * 40
            frame.time_base = tb
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
    return path


@pytest.fixture(scope="module")
def gen(tmp_path_factory):
    return tmp_path_factory.mktemp("videos")


@pytest.mark.parametrize(
    ("ext", "codec"),
    [("mkv", "libx264"), ("webm", "libvpx-vp9"), ("avi", "mpeg4"), ("ts", "libx264"), ("mov", "libx264")],
)
def test_other_containers_read_exactly(gen, ext, codec):
    path = _write(gen / f"c.{ext}", codec)
    info = probe(path)
    assert info.frame_count == 16 and (info.width, info.height) == (96, 64)
    frames = read_frames(path, [0, 5, 15, 7])
    assert [_index_of(f) for f in frames] == [0, 5, 15, 7]
    times = frame_times(path)
    assert np.allclose(np.diff(times), 0.04, atol=1e-3)


def test_ts_has_nonzero_start_but_frame_zero_at_zero(gen):
    path = _write(gen / "s.ts", "libx264")
    # MPEG-TS shifts timestamps (1.4 s); the file clock starts at the container start.
    assert frame_times(path)[0] == pytest.approx(probe(path).start_time_s) and probe(path).start_time_s < 0.05


def test_vfr_times_are_the_real_pts(gen):
    pts = [0, 40, 80, 200, 240, 400, 440, 480, 520, 900]
    path = _write(gen / "vfr.mp4", "libx264", n=len(pts), pts=pts)
    info = probe(path)
    assert info.vfr and info.frame_count == len(pts)
    assert np.allclose(frame_times(path), np.array(pts) / 1000, atol=1e-6)
    frames = read_frames(path, [9, 3, 5])
    assert [_index_of(f) for f in frames] == [9, 3, 5]


def _ffmpeg_rgb(path: Path, w: int, h: int) -> np.ndarray:
    """First frame as FFmpeg itself displays it (autorotate on): the independent reference."""
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    raw = subprocess.run(
        [exe, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotation_metadata_is_applied_like_ffmpeg(gen, rotation):
    path = _write(gen / f"rot{rotation}.mp4", "libx264", rotation=rotation)
    info = probe(path)
    assert info.rotation == (-rotation) % 360
    assert (info.width, info.height) == ((64, 96) if rotation % 180 else (96, 64))
    ours = read_frames(path, [0])[0]
    ref = _ffmpeg_rgb(path, info.width, info.height)
    assert ours.shape == ref.shape
    assert np.abs(ours.astype(int) - ref.astype(int)).mean() < 3


def test_odd_size_reads_at_its_size(gen):
    path = _write(gen / "odd.mkv", "libx264rgb", size=(97, 63), pix_fmt="rgb24")
    info = probe(path)
    assert (info.width, info.height) == (97, 63)
    assert read_frames(path, [3]).shape == (1, 63, 97, 3)


def test_empty_file(gen):
    p = gen / "empty.mp4"
    p.write_bytes(b"")
    with pytest.raises(VideoError, match="empty"):
        probe(p)


def test_missing_file(gen):
    with pytest.raises(VideoError, match="not found"):
        probe(gen / "nope.mp4")


def test_garbage_file(gen):
    p = gen / "garbage.mp4"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoError):
        probe(p)


def test_image_renamed_as_video(gen):
    import cv2

    p = gen / "photo.mp4"
    ok, buf = cv2.imencode(".png", _pattern(0, 64, 48))
    p.write_bytes(buf.tobytes())
    with pytest.raises(VideoError, match="image"):
        probe(p)


def test_audio_only(gen):
    p = gen / "audio.mp4"
    with av.open(str(p), "w") as out:
        st = out.add_stream("aac", rate=48000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        out.mux(st.encode(frame))
        out.mux(st.encode(None))
    with pytest.raises(VideoError, match="no video stream"):
        probe(p)


def test_truncated_file_errors_or_reads_exactly(gen):
    src = clip_path("syn_a_640x360_25fps_tone")
    meta = truth("syn_a_640x360_25fps_tone")
    data = src.read_bytes()
    p = gen / "trunc.mp4"
    p.write_bytes(data[: len(data) // 2])  # faststart: the index survives, half the frames do not
    try:
        n = probe(p).frame_count
    except VideoError:
        return
    try:
        frames = read_frames(p, [0, n // 4, n - 1])
    except VideoError as exc:
        assert "frame" in str(exc) or "decod" in str(exc)
        return
    assert [barcode(f, meta["frame_barcode"]) for f in frames] == [0, n // 4, n - 1]


def test_truncated_without_index(gen):
    data = _write(gen / "moov_end.mp4", "libx264").read_bytes()
    p = gen / "moov_end_trunc.mp4"
    p.write_bytes(data[: len(data) // 2])  # moov at the end: cut off entirely
    with pytest.raises(VideoError):
        probe(p)


def test_limits_are_enforced():
    path = clip_path("syn_b_1280x720_30fps_tone_distractor")
    with pytest.raises(VideoError, match="limit"):
        probe(path, VideoLimits(max_width=640))
    with pytest.raises(VideoError, match="limit"):
        probe(path, VideoLimits(max_duration_s=5))
    with pytest.raises(VideoError, match="limit"):
        probe(path, VideoLimits(max_file_bytes=1000))
