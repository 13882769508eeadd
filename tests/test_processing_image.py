"""Pixel preprocessing must equal the official SigLipImageProcessor bit for bit
(docs/official_quirks.md#pixel-preprocessing)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.numpy import load_file

from stchat.errors import VideoError
from stchat.processing.image import preprocess, resize_uint8


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().astype(np.float32).tobytes()).hexdigest()


def test_video_frames_match_all_100_golden_pixel_hashes(golden_dir):
    frames = np.load(golden_dir / "media" / "video_frames.npy")
    meta = json.loads((golden_dir / "vision" / "video.json").read_text())
    pv = preprocess(frames)
    assert pv.shape == (100, 3, 384, 384) and pv.dtype == torch.float32
    expected = meta["per_frame"]["pixel_values"]["sha256_fp32"]
    assert [_sha(pv[i]) for i in range(100)] == expected
    stored = load_file(str(golden_dir / "vision" / "video.safetensors"))["pixel_values_frames"]
    rows = meta["stored_frame_rows"]
    assert np.array_equal(pv[rows].numpy(), stored)


@pytest.mark.parametrize("form", ["path", "pil", "array", "list"])
def test_image_matches_golden_pixel_values(golden_dir, form):
    png = golden_dir / "media" / "image.png"
    arr = np.load(golden_dir / "media" / "image.npy")
    inp = {"path": png, "pil": Image.open(png), "array": arr, "list": [arr]}[form]
    expected = load_file(str(golden_dir / "vision" / "image.safetensors"))["pixel_values"]
    assert np.array_equal(preprocess(inp).numpy(), expected)


def test_lookup_table_equals_the_official_float_chain():
    # Independent recomputation of steps 2-3 with numpy in the official dtypes, on every uint8 value.
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 41, 67, 3), dtype=np.uint8)
    resized = resize_uint8(frames)
    chain = (resized.astype(np.float64) * (1 / 255)).astype(np.float32)
    chain = (chain - np.float32(0.5)) / np.float32(0.5)
    got = preprocess(frames).numpy()
    assert np.array_equal(got, chain.transpose(0, 3, 1, 2))
    assert got.min() >= -1.0 and got.max() <= 1.0


def test_resize_is_pil_bicubic_squash_without_aspect_preservation():
    frame = np.zeros((90, 300, 3), dtype=np.uint8)
    frame[:, :150] = 255  # left half white: stays the left half after the squash
    out = resize_uint8(frame)[0]
    ref = np.asarray(Image.fromarray(frame).resize((384, 384), Image.Resampling.BICUBIC))
    assert out.shape == (384, 384, 3) and np.array_equal(out, ref)
    assert out[:, :180].min() > 200 and out[:, 204:].max() < 50


def test_rgba_and_grey_pil_images_are_converted_to_rgb():
    rgba = Image.new("RGBA", (20, 10), (10, 200, 30, 128))
    grey = Image.new("L", (20, 10), 77)
    assert np.array_equal(preprocess(rgba).numpy(), preprocess(rgba.convert("RGB")).numpy())
    assert preprocess(grey).shape == (1, 3, 384, 384)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 8, 8, 3), dtype=np.float32),
        np.zeros((4, 8, 8), dtype=np.uint8),
        np.zeros((8, 8, 4), dtype=np.uint8),
        np.zeros((0, 8, 3), dtype=np.uint8),
        np.zeros((2, 2, 8, 8, 3), dtype=np.uint8),
        [],
        42,
    ],
)
def test_bad_arrays_raise_video_error(bad):
    with pytest.raises(VideoError):
        preprocess(bad)


def test_missing_or_corrupt_image_file_raises_video_error(tmp_path):
    with pytest.raises(VideoError, match="not found"):
        preprocess(tmp_path / "nope.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"definitely not a png")
    with pytest.raises(VideoError, match="cannot read image"):
        preprocess(junk)
