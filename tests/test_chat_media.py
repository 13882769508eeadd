"""``stchat.chat.load_media`` (no model): frame sampling, timestamps, images, bad media."""

from __future__ import annotations

import numpy as np
import pytest

from stchat.errors import VideoError
from stchat.media import load_sampled as load_media
from stchat.processing.image import preprocess
from stchat.video.sampling import official_frame_indices


def test_split_moves_the_sampled_frames_and_times(synthetic_dir):
    clip = synthetic_dir / "syn_a_640x360_25fps_tone.mp4"
    m = load_media(clip, [10, 60])
    n = m.video_info.frame_count
    assert m.modality == "video" and m.pixel_values.shape == (100, 3, 384, 384)
    assert m.frame_indices == official_frame_indices(n, [10, 60])
    assert m.frame_indices[0] == 10 and m.frame_indices[-1] == 60 and m.split == (10, 60)
    fps = float(m.video_info.fps)
    assert m.frame_times_s == pytest.approx([i / fps for i in m.frame_indices], abs=1e-6)


def test_frame_arrays_and_npy_files_are_sampled_like_videos(golden_dir, tmp_path):
    frames = np.load(golden_dir / "media" / "video_frames.npy")
    short = frames[:37]
    np.save(tmp_path / "short.npy", short)
    m = load_media(tmp_path / "short.npy")
    idx = official_frame_indices(37)
    assert m.frame_indices == idx and m.frame_times_s is None
    assert np.array_equal(m.pixel_values.numpy(), preprocess(short[idx]).numpy())


def test_images_load_as_one_frame(golden_dir):
    m = load_media(golden_dir / "media" / "image.png")
    assert m.modality == "image" and m.pixel_values.shape == (1, 3, 384, 384) and m.size == (512, 384)


@pytest.mark.parametrize(
    ("media", "split"),
    [
        ("missing.mp4", None),
        ("missing.npy", None),
        (np.zeros((5, 8, 8, 3), dtype=np.uint8), [3, 1]),
        (np.zeros((5, 8, 8, 3), dtype=np.uint8), [0, 1, 2]),
        (np.zeros((5, 8, 8, 3), dtype=np.float32), None),
        (np.zeros((8, 8, 3), dtype=np.uint8), [0, 1]),
    ],
)
def test_bad_media_raise_video_error(media, split):
    with pytest.raises(VideoError):
        load_media(media, split)


def test_a_text_file_named_mp4_is_refused(tmp_path):
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(VideoError):
        load_media(fake)
