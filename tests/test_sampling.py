"""The frame-index formula equals the official load_video on every golden pair and table row."""

import json

import numpy as np
import pytest

from stchat.video.sampling import official_frame_indices


def test_matches_official_pairs(golden_dir):
    pairs = json.loads((golden_dir / "frame_sampling.json").read_text())["pairs"]
    assert len(pairs) >= 10
    for p in pairs:
        if p["indices_out_of_range"]:
            # The official reader would fail on frames past the end; we refuse the range up front.
            with pytest.raises(ValueError):
                official_frame_indices(p["num_frames_in_video"], p["split"], p["n_frms"])
            continue
        got = official_frame_indices(p["num_frames_in_video"], p["split"], p["n_frms"])
        assert got == p["indices"], p


def test_matches_official_table(golden_dir):
    table = np.load(golden_dir / "frame_sampling_table_split_none_1_to_1200.npy")
    for n in range(1, table.shape[0] + 1):
        assert official_frame_indices(n) == table[n - 1].tolist(), n


def test_reference_examples():
    assert official_frame_indices(830, [0, 829])[:6] == [0, 8, 17, 25, 33, 42]
    assert official_frame_indices(1300, [901, 1221])[:4] == [901, 904, 907, 911]
    assert official_frame_indices(1300, [901, 1221])[-1] == 1221


@pytest.mark.parametrize("split", [(-1, 5), (5, 4), (0, 100)])
def test_bad_split(split):
    with pytest.raises(ValueError):
        official_frame_indices(100, split)
