"""A held-out demo-world benchmark in the official annotation formats, for ``stchat eval run --benchmark``.

Clips come from seeds the training set never uses (``stchat.demo.data.BENCH_SEED_BASE``), at the full
range of resolutions, aspects, frame rates and lengths. Written layout (as ``stchat eval make-synthetic``):

* ``st-align/stvg.json`` -- ST-Align items: the demo STVG question, ``meta.spatial_token['<bboxes>']``
  (pixel xywh per visible frame), ``meta.time_token`` (first/last visible frame), ``meta.split`` the whole
  clip;
* ``charades/test.json`` -- Charades-STA items (TVG) with the span normalised over the clip;
* ``captions.json`` -- per clip the target's colour and shape (for the describe-mode check);
* ``benchmark.json`` -- the manifest.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from stchat.demo.data import BENCH_SEED_BASE, make_bench_clips
from stchat.demo.text import phrase


def _xywh(box: list[float], w: int, h: int) -> list[int]:
    x1, y1, x2, y2 = box[0] * w, box[1] * h, box[2] * w, box[3] * h
    return [round(x1), round(y1), round(x2 - x1), round(y2 - y1)]


def make_demo_benchmark(out_dir: str | Path, n: int = 50, seed_base: int = BENCH_SEED_BASE,
                        workers: int = 2) -> Path:
    """Write the benchmark under ``out_dir``; returns the manifest path."""
    out = Path(out_dir)
    src = out / "sources"
    items = make_bench_clips(src, n, seed_base, workers)
    st, tvg, caps = [], [], []
    for it in items:
        truth = json.loads((src / f"{it['name']}.json").read_text())
        rng = random.Random(it["seed"])
        t = truth["scene"]["objects"][0]
        query = phrase(t["colour"], t["shape"], t["motion"] if rng.random() < 0.5 else None, rng)
        w, h, nf = truth["width"], truth["height"], truth["n_frames"]
        s, e = truth["first_frame"], truth["last_frame"]
        bboxes = {f: _xywh(b, w, h) for f, b in truth["boxes"].items()}
        st.append({
            "video_path": f"{it['name']}.mp4",
            "meta": {"width": w, "height": h, "split": [0, nf - 1], "spatial_token": {"<bboxes>": bboxes},
                     "time_token": {"<s>": s, "<e>": e}, "query": query},
            "conversations": [
                {"from": "human", "value": f"<video>\nAt which time interval in the video can we see {query} "
                 "occurring? Please describe the location of the corresponding subject/object in this "
                 "video."},
                {"from": "gpt", "value": "From <s> to <e>, Object bounding box: <bboxes>"}],
        })
        tvg.append({"image_id": f"{it['name']}.mp4", "caption": query,
                    "timestamp": [round(s / (nf - 1), 4), round(e / (nf - 1), 4)]})
        caps.append({"video": f"{it['name']}.mp4", "colour": t["colour"], "shape": t["shape"],
                     "motion": t["motion"]})
    (out / "st-align").mkdir(parents=True, exist_ok=True)
    (out / "charades").mkdir(parents=True, exist_ok=True)
    (out / "st-align" / "stvg.json").write_text(json.dumps(st, indent=1))
    (out / "charades" / "test.json").write_text(json.dumps(tvg, indent=1))
    (out / "captions.json").write_text(json.dumps(caps, indent=1))
    manifest = [
        {"name": "stvg", "task": "st-align", "dataset": "vidstg", "task_kind": "stvg",
         "ann_path": "st-align/stvg.json", "data_folder": "sources", "num_samples": len(st)},
        {"name": "charades_sta", "task": "tvg", "dataset": "charades_sta", "task_kind": "tvg",
         "ann_path": "charades/test.json", "data_folder": "sources", "num_samples": len(tvg)},
    ]
    path = out / "benchmark.json"
    path.write_text(json.dumps(manifest, indent=1))
    return path
