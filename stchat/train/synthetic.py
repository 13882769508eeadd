"""A small STVG training set (stchat format) from the synthetic ground-truth clips (tests/fixtures/synthetic).

Each clip's target object becomes one STVG sample: the official STVG question wording, and an answer
with the visible span and a few timestamped boxes, all as plain normalised numbers (``{s,e}``,
``t: [x1,y1,x2,y2]``) that ``stchat.train.friendly`` turns into OUTPUT placeholders. Times are
fractions of the 100 sampled frames (``k/99``) and boxes come from the exact per-frame ground truth at
the sampled frame. With ``as_frames=True`` the 100 sampled frames are decoded once into a ``.npy``
(codec-free, fast to re-read when training for many steps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stchat.video.io import read_frames
from stchat.video.sampling import official_frame_indices

STVG_SUFFIX = ("Please firstly give the timestamps, and then give the spatial bounding box corresponding "
               "to each timestamp in the time period.")


def _sample_for_clip(gt: dict, media: str, n_boxes: int) -> dict | None:
    target = next((o for o in gt["objects"] if o.get("role") == "target"), None)
    if target is None or not target.get("track"):
        return None
    idx = official_frame_indices(int(gt["n_frames"]))
    track = {int(t["frame"]): t["box_norm"] for t in target["track"]}
    visible = [k for k, f in enumerate(idx) if f in track]
    if not visible:
        return None
    s, e = visible[0] / 99, visible[-1] / 99
    picks = [visible[round(i * (len(visible) - 1) / max(1, n_boxes - 1))] for i in range(n_boxes)]
    def box(k: int) -> str:
        return ",".join(f"{min(max(v, 0.0), 1.0):.4f}" for v in track[idx[k]])

    pairs = ", ".join(f"{k / 99:.4f}: [{box(k)}]" for k in picks)
    name = target.get("name", "object").replace("_", " ")
    question = (f"<video>\nAt which time interval in the video can we see the {name} occurring? Please "
                f"describe the location of the corresponding subject/object in this video.{STVG_SUFFIX}")
    return {"id": Path(media).stem, "video": media, "format": "stchat",
            "conversations": [{"from": "human", "value": question},
                              {"from": "gpt", "value": f"{{{s:.4f},{e:.4f}}}, {pairs}"}]}


def build_synthetic_stvg(synthetic_dir: str | Path, out_dir: str | Path, as_frames: bool = True,
                         n_boxes: int = 3) -> Path:
    """Write ``out_dir/stvg.json`` (+ media) and return its path."""
    src, out = Path(synthetic_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    samples = []
    for gt_path in sorted(src.glob("*.json")):
        clip = gt_path.with_suffix(".mp4")
        if not clip.is_file():
            continue
        gt = json.loads(gt_path.read_text())
        media = clip.name
        if as_frames:
            frames = read_frames(clip, official_frame_indices(int(gt["n_frames"])))
            media = clip.stem + ".npy"
            np.save(out / media, np.ascontiguousarray(frames))
        else:
            media = str(clip.resolve())
        sample = _sample_for_clip(gt, media, n_boxes)
        if sample is not None:
            samples.append(sample)
    path = out / "stvg.json"
    path.write_text(json.dumps(samples, indent=1))
    return path
