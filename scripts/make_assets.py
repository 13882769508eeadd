#!/usr/bin/env python3
"""Generate the small example videos the web app offers (``assets/``) and ``assets/examples.json``.

Only numpy and PyAV (which bundles the FFmpeg libraries) are needed; no system ffmpeg. The clips are
drawn frame by frame, so their ground truth (when and where the object is) is exact. Each example
also carries an *example answer*: the ground truth written the way LLaVA-ST speaks (``<TEMP-k>`` /
``<WIDTH-k>`` / ``<HEIGHT-k>`` tokens, k in 0..99), so the app's "Visualise an answer" path can be
demonstrated without a model.

    python scripts/make_assets.py            # (re)write assets/*.mp4 and assets/examples.json
    python scripts/make_assets.py --check    # regenerate in a temp dir, compare the JSON, check sizes
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "assets"
MAX_TOTAL_BYTES = 1_000_000  # the budget for everything we ship under assets/
NUM_SAMPLED = 100  # the model sees 100 frames; its tokens are 0..99 (see stchat.video.sampling)

# The official demo's STVG query template (reference §3.5), with our object put in.
STVG_TEMPLATE = (
    "At which time interval in the video can we see {event} occurring? Please describe the location of "
    "the corresponding subject/object in this video.Please firstly give the timestamps, and then give the "
    "spatial bounding box corresponding to each timestamp in the time period."
)
TVG_TEMPLATE = (
    "Give you a textual query: '{event}'. When does the described content occur in the video? "
    "Please return the start and end timestamps."
)


@dataclass(frozen=True)
class Clip:
    name: str
    width: int
    height: int
    fps: int
    n_frames: int
    first_visible: int  # inclusive frame range in which the target is drawn
    last_visible: int
    color: tuple[int, int, int]
    size_px: int
    path: str  # "left-right" or "diagonal": where the object travels while visible
    with_audio: bool
    task: str
    event: str


CLIPS = (
    Clip("ball_left_to_right", 320, 180, 15, 120, 30, 89, (40, 90, 230), 36, "left-right", True, "stvg",
         "a blue ball rolling to the right"),
    Clip("square_diagonal", 320, 180, 15, 90, 20, 74, (230, 60, 40), 30, "diagonal", False, "stvg",
         "a red square moving down to the right"),
    Clip("green_flash", 240, 240, 10, 60, 25, 44, (40, 200, 70), 60, "still", False, "tvg",
         "a green square appears in the middle"),
)


def target_box(clip: Clip, frame: int) -> tuple[int, int, int, int] | None:
    """Pixel box ``(x1, y1, x2, y2)`` (x2/y2 exclusive) of the target in ``frame``, or None if hidden."""
    if not clip.first_visible <= frame <= clip.last_visible:
        return None
    span = max(1, clip.last_visible - clip.first_visible)
    u = (frame - clip.first_visible) / span
    s = clip.size_px
    if clip.path == "left-right":
        x = round(8 + u * (clip.width - s - 16))
        y = (clip.height - s) // 2
    elif clip.path == "diagonal":
        x = round(10 + u * (clip.width - s - 20))
        y = round(10 + u * (clip.height - s - 20))
    else:
        x, y = (clip.width - s) // 2, (clip.height - s) // 2
    return x, y, x + s, y + s


def draw_frame(clip: Clip, frame: int) -> np.ndarray:
    """One RGB frame: a soft gradient with a faint grid (cheap to encode) and the target when visible."""
    h, w = clip.height, clip.width
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[..., 0] = 150 + (xx * 40 // w)
    img[..., 1] = 160 + (yy * 30 // h)
    img[..., 2] = 170
    img[(yy % 30 == 0) | (xx % 30 == 0)] = (135, 140, 150)
    box = target_box(clip, frame)
    if box is not None:
        x1, y1, x2, y2 = box
        if clip.path == "left-right":  # a disc, so the "ball" reads as one
            cy, cx, r = (y1 + y2 - 1) / 2, (x1 + x2 - 1) / 2, (x2 - x1) / 2
            img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = clip.color
        else:
            img[y1:y2, x1:x2] = clip.color
    return img


def tone(n_samples: int, rate: int, start: int, freq: float) -> np.ndarray:
    t = (np.arange(n_samples) + start) / rate
    return (0.2 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def encode(clip: Clip, out: Path) -> None:
    """H.264 (+ AAC when asked) MP4 with faststart, single-threaded so the bytes are reproducible."""
    with av.open(str(out), "w", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=clip.fps)
        video.width, video.height, video.pix_fmt = clip.width, clip.height, "yuv420p"
        video.options = {"crf": "30", "preset": "medium", "threads": "1", "g": str(clip.fps * 2)}
        audio = None
        rate = 44100
        if clip.with_audio:
            audio = container.add_stream("aac", rate=rate)
            audio.layout = "mono"
        for i in range(clip.n_frames):
            frame = av.VideoFrame.from_ndarray(draw_frame(clip, i), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode():
            container.mux(packet)
        if audio is not None:
            # 440 Hz, 880 Hz while the ball is visible: the tone tells a listener the clip cut is in sync.
            total = clip.n_frames * rate // clip.fps
            on, off = clip.first_visible * rate // clip.fps, (clip.last_visible + 1) * rate // clip.fps
            chunk = 1024
            for start in range(0, total, chunk):
                n = min(chunk, total - start)
                freq = 880.0 if on <= start < off else 440.0
                samples = tone(n, rate, start, freq)[None, :]
                aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                aframe.sample_rate, aframe.pts, aframe.time_base = rate, start, Fraction(1, rate)
                for packet in audio.encode(aframe):
                    container.mux(packet)
            for packet in audio.encode():
                container.mux(packet)


def token_index(frame: int, n_frames: int) -> int:
    """Temporal token whose sampled frame is nearest ``frame`` (whole-video split: frame ≈ k/99·(n-1))."""
    return round(frame / (n_frames - 1) * (NUM_SAMPLED - 1))


def example_answer(clip: Clip) -> str:
    """The ground truth in the model's raw token syntax (reference §5.4): span, then keyframe boxes."""
    s, e = token_index(clip.first_visible, clip.n_frames), token_index(clip.last_visible, clip.n_frames)
    if clip.task == "tvg":
        return f"{{<TEMP-{s:03d}><TEMP-{e:03d}>}}"
    pairs = []
    for k in range(s, e + 1, max(1, (e - s) // 4)):
        frame = round(k / (NUM_SAMPLED - 1) * (clip.n_frames - 1))
        box = target_box(clip, frame)
        if box is None:
            continue
        x1, y1, x2, y2 = box
        q = [round(x1 / clip.width * 99), round(y1 / clip.height * 99),
             round(x2 / clip.width * 99), round(y2 / clip.height * 99)]
        box_text = f"<WIDTH-{q[0]:03d}><HEIGHT-{q[1]:03d}><WIDTH-{q[2]:03d}><HEIGHT-{q[3]:03d}>"
        pairs.append(f"<TEMP-{k:03d}>: [{box_text}]")
    return f"{{<TEMP-{s:03d}><TEMP-{e:03d}>}} " + ", ".join(pairs)


def describe(clip: Clip) -> dict:
    query = (STVG_TEMPLATE if clip.task == "stvg" else TVG_TEMPLATE).format(event=clip.event)
    return {
        "file": f"{clip.name}.mp4",
        "title": clip.event[0].upper() + clip.event[1:],
        "task": clip.task,
        "query": query,
        "describe_query": "Describe what happens in this video.",
        "example_answer": example_answer(clip),
        "width": clip.width,
        "height": clip.height,
        "fps": clip.fps,
        "n_frames": clip.n_frames,
        "audio": clip.with_audio,
        "ground_truth": {
            "first_frame": clip.first_visible,
            "last_frame": clip.last_visible,
            "start_s": clip.first_visible / clip.fps,
            "end_s": (clip.last_visible + 1) / clip.fps,
            "box_px_first": list(target_box(clip, clip.first_visible) or ()),
            "box_px_last": list(target_box(clip, clip.last_visible) or ()),
        },
    }


def build(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    for clip in CLIPS:
        encode(clip, out_dir / f"{clip.name}.mp4")
    listing = {
        "generator": "scripts/make_assets.py",
        "notes": "Synthetic example clips with exact ground truth; example_answer is that truth in the "
        "model's token syntax (for the app's 'Visualise an answer' path).",
        "examples": [describe(c) for c in CLIPS],
    }
    (out_dir / "examples.json").write_text(json.dumps(listing, indent=1) + "\n")
    return listing


def total_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ASSETS, help="output folder (default: assets/)")
    ap.add_argument("--check", action="store_true", help="rebuild in a temp dir and compare with assets/")
    args = ap.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = build(Path(tmp))
            shipped = json.loads((ASSETS / "examples.json").read_text())
            if fresh != shipped:
                print("assets/examples.json is stale: run scripts/make_assets.py", file=sys.stderr)
                return 1
    else:
        build(args.out)
    size = total_size(ASSETS if args.check else args.out)
    print(f"assets: {size} bytes")
    if size > MAX_TOTAL_BYTES:
        print(f"assets exceed {MAX_TOTAL_BYTES} bytes", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
