"""Sampling does less decoding work and returns exactly the pixels of a plain full decode.

Measured properties, not times: the frames match a straightforward decode of every frame bit for bit, and
the decoder produces fewer frames than the file holds (non-reference frames that are never sampled are
skipped, and GOPs before a wanted frame's keyframe are not decoded).
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from test_video_support import clip_path

from stchat.errors import VideoError
from stchat.video import io as vio
from stchat.video import readers
from stchat.video.sampling import official_frame_indices

NAMES = ["syn_b_1280x720_30fps_tone_distractor", "syn_c_640x360_30fps_noaudio_longgop"]


def _plain_decode(path: Path, wanted: list[int]) -> np.ndarray:
    keep = {}
    with av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(c.streams.video[0])):
            if i in set(wanted):
                keep[i] = frame.to_ndarray(format="rgb24")
    return np.stack([keep[i] for i in wanted])


def _decoded(path: Path, wanted: list[int]) -> int:
    idx = vio._index(path)
    with vio._SeekingDecoder(path, idx, wanted) as dec:
        for i in sorted(set(wanted)):
            dec.get(i)
        return dec.decoded


@pytest.mark.parametrize("name", NAMES)
def test_official_sampling_matches_a_plain_decode_with_less_work(name: str) -> None:
    path = clip_path(name)
    n = vio.probe(path).frame_count
    for split in (None, (n // 5, n // 2)):
        wanted = official_frame_indices(n, split)
        assert np.array_equal(vio.read_frames(path, wanted), _plain_decode(path, wanted))
    wanted = official_frame_indices(n)
    assert _decoded(path, wanted) < n  # B-frames nobody samples were not decoded


def test_sparse_frames_skip_whole_gops_and_stay_exact() -> None:
    path = clip_path("syn_b_1280x720_30fps_tone_distractor")
    n = vio.probe(path).frame_count
    rng = np.random.default_rng(1)
    wanted = sorted(rng.choice(n, size=12, replace=False).tolist())
    assert np.array_equal(vio.read_frames(path, wanted), _plain_decode(path, wanted))
    # At most the frames from each wanted frame's keyframe up to it (fewer: non-reference ones skipped).
    idx = vio._index(path)
    bound = 0
    for i in wanted:
        key = idx.key_pts[np.searchsorted(idx.key_pts, idx.pts[i], side="right") - 1]
        bound += i - int(np.searchsorted(idx.pts, key)) + 1
    assert _decoded(path, wanted) <= bound + 8  # a few frames of decoder delay at the end


def test_skip_switch_and_thread_env_do_not_change_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    path = clip_path("syn_b_1280x720_30fps_tone_distractor")
    wanted = official_frame_indices(vio.probe(path).frame_count)
    base = vio.read_frames(path, wanted)
    monkeypatch.setenv("STCHAT_DECODE_SKIP_NONREF", "0")
    monkeypatch.setenv("STCHAT_DECODE_THREADS", "1")
    assert np.array_equal(vio.read_frames(path, wanted), base)


def test_reader_registry_default_env_override_and_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    path = clip_path("syn_c_640x360_30fps_noaudio_longgop")
    reader = readers.get_reader()
    assert reader.name == "pyav" and isinstance(reader, readers.VideoReader)
    assert np.array_equal(reader.read(path, [3, 1, 3]), vio.read_frames(path, [3, 1, 3]))

    class Flipped(readers.PyAVReader):
        name = "flipped"

        def read(self, p, indices):  # a toy backend: proves the override reaches the caller
            return super().read(p, indices)[:, ::-1]

    readers.register_reader("flipped", Flipped)
    try:
        monkeypatch.setenv(readers.ENV_VAR, "flipped")
        assert readers.get_reader().name == "flipped"
        assert np.array_equal(readers.get_reader().read(path, [0]), vio.read_frames(path, [0])[:, ::-1])
        monkeypatch.setenv(readers.ENV_VAR, "nope")
        with pytest.raises(VideoError, match="unknown video reader 'nope'"):
            readers.get_reader()
    finally:
        readers._REGISTRY.pop("flipped", None)
