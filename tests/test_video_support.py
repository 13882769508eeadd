"""Ground-truth helpers for the synthetic clips (barcodes, drawn boxes, tones), and tests of the helpers.

The synthetic clips (``tests/fixtures/synthetic``) carry a 16-bit frame barcode, exact boxes and a tone
schedule; these helpers read them back from decoded output so the video tests can measure, not trust.
"""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np

from stchat.answer import ParsedAnswer
from stchat.video.io import read_frames
from stchat.video.sampling import official_frame_indices

SYNTHETIC = Path(__file__).resolve().parent / "fixtures" / "synthetic"
CLIPS = sorted(p.stem for p in SYNTHETIC.glob("syn_*.json"))


def truth(name: str) -> dict:
    return json.loads((SYNTHETIC / f"{name}.json").read_text())


def clip_path(name: str) -> Path:
    return SYNTHETIC / f"{name}.mp4"


def target(meta: dict) -> dict:
    return next(o for o in meta["objects"] if o["role"] == "target")


def barcode(rgb: np.ndarray, geometry: dict) -> int:
    """The frame index drawn in a synthetic frame (luma at each cell centre > 128 means 1, MSB first)."""
    luma = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    c = geometry["cell_px"]
    value = 0
    for k in range(geometry["bits"]):
        x, y = geometry["x0"] + k * c + c // 2, geometry["y0"] + c // 2
        value = (value << 1) | int(luma[y, x] > 128)
    return value


def gt_answer(meta: dict, task: str = "stvg") -> ParsedAnswer:
    """The ground truth phrased as the model would: the span and a box at each of the 100 sampled times."""
    track = {e["frame"]: e["box_norm"] for e in target(meta)["track"]}
    idx = official_frame_indices(meta["n_frames"])
    ks = [k for k, f in enumerate(idx) if f in track]
    boxes = {k / 99: tuple(track[idx[k]]) for k in ks}
    return ParsedAnswer(task=task, text="ground truth", span=(ks[0] / 99, ks[-1] / 99), boxes=boxes)


def red_box(picture: np.ndarray, source: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (exclusive x2/y2) of the red outline drawn into ``picture`` over ``source``.

    Outline pixels are red *and* darker than the source in luma: luma is stored at full resolution, so
    unlike the colour (4:2:0 chroma, one chroma sample per 2x2 pixels) it does not bleed a pixel outward.
    """
    p = picture.astype(np.float32)
    s = source.astype(np.float32)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    darker = (s @ weights) - (p @ weights) > 30
    reddish = (p[..., 0] > 150) & (p[..., 0] - p[..., 1] > 100) & (p[..., 0] - p[..., 2] > 100)
    ys, xs = np.nonzero(reddish & darker)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def outline_to_box(outer: tuple[int, int, int, int], width: int, height: int, thickness: int = 3):
    """The box an outline of ``thickness`` px centred on its edges was drawn for (clipped at borders)."""
    lo = thickness // 2
    hi = thickness - lo - 1
    x1, y1, x2, y2 = outer
    return (
        x1 + lo if x1 > 0 else 0,
        y1 + lo if y1 > 0 else 0,
        x2 - hi if x2 < width else width,
        y2 - hi if y2 < height else height,
    )


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """First channel of the first audio track as float32, and its rate."""
    with av.open(str(path)) as c:
        stream = c.streams.audio[0]
        chunks = [f.to_ndarray() for f in c.decode(stream)]
        rate = stream.rate
    data = np.concatenate(chunks, axis=1)[0].astype(np.float32)
    return data, rate


def tone_power(samples: np.ndarray, rate: int, freq: float) -> float:
    """Goertzel-style power of one frequency in a window (Hann)."""
    n = samples.size
    w = np.hanning(n)
    t = np.arange(n) / rate
    return float(np.abs(np.sum(samples * w * np.exp(-2j * np.pi * freq * t))) ** 2)


def dominant_freq(samples: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spec) * rate / samples.size)


def test_barcodes_of_sampled_frames_match_official_indices():
    for name in CLIPS:
        meta = truth(name)
        idx = official_frame_indices(meta["n_frames"])[::9]
        frames = read_frames(clip_path(name), idx)
        assert [barcode(f, meta["frame_barcode"]) for f in frames] == idx, name


def test_gt_answer_spans_the_visible_interval():
    meta = truth("syn_a_640x360_25fps_tone")
    ans = gt_answer(meta)
    vis = target(meta)["visible_interval"]
    idx = official_frame_indices(meta["n_frames"])
    assert idx[round(ans.span[0] * 99)] >= vis["first_frame"]
    assert idx[round(ans.span[1] * 99)] <= vis["last_frame"]
    assert len(ans.boxes) > 40
