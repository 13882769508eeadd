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

from stchat.demo.world import COLOURS, Scene, WorldObject, render_frame

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
    title: str  # shown in the app; the browser tests refer to examples by it
    scene: Scene  # a demo-world scene (stchat.demo.world): objects[0] is the target
    with_audio: bool
    task: str
    event: str  # the description in the demo model's words ("the blue ball moving right")

    @property
    def width(self) -> int:
        return self.scene.width

    @property
    def height(self) -> int:
        return self.scene.height

    @property
    def fps(self) -> int:
        return self.scene.fps

    @property
    def n_frames(self) -> int:
        return self.scene.n_frames

    @property
    def first_visible(self) -> int:
        return self.scene.target.start

    @property
    def last_visible(self) -> int:
        return self.scene.target.end


def _obj(colour: str, shape: str, motion: str, size: float, start: int, end: int, x0: float, y0: float,
         x1: float, y1: float) -> WorldObject:
    """An object of the demo world that travels from (x0, y0) to (x1, y1) (top-left corners) while visible."""
    steps = max(end - start, 1)
    return WorldObject(colour=colour, shape=shape, motion=motion, rgb=COLOURS[colour], size=size, start=start,
                       end=end, x0=x0, y0=y0, vx=(x1 - x0) / steps, vy=(y1 - y0) / steps)


def _scene(seed: int, w: int, h: int, fps: int, n: int, background: str, bg: tuple, objects: tuple) -> Scene:
    return Scene(seed=seed, width=w, height=h, fps=fps, n_frames=n, background=background, bg_colours=bg,
                 objects=objects)


# Demo-world scenes (what the embedded demo model understands), kept small for the 1 MB budget.
CLIPS = (
    Clip("ball_left_to_right", "A blue ball rolling to the right",
         _scene(1, 426, 240, 15, 120, "gradient", ((170, 160, 120), (120, 150, 110)),
                (_obj("blue", "ball", "right", 48, 30, 89, 10, 96, 368, 96),
                 _obj("yellow", "triangle", "still", 40, 0, 119, 300, 20, 300, 20))),
         True, "stvg", "the blue ball moving right"),
    Clip("red_square_down", "A red square moving down",
         _scene(2, 320, 240, 12, 96, "flat", ((150, 165, 185), (150, 165, 185)),
                (_obj("red", "square", "down", 44, 20, 74, 60, 8, 60, 188),
                 _obj("green", "triangle", "still", 50, 10, 95, 220, 150, 220, 150))),
         False, "stvg", "the red square moving down"),
    Clip("green_flash", "A green square appears in the middle",
         _scene(3, 240, 240, 10, 60, "noise", ((110, 110, 140), (110, 110, 140)),
                (_obj("green", "square", "still", 56, 25, 44, 92, 92, 92, 92),)),
         False, "tvg", "the green square standing still"),
)


def target_box(clip: Clip, frame: int) -> tuple[int, int, int, int] | None:
    """Pixel box ``(x1, y1, x2, y2)`` of the target in ``frame``, or None if hidden."""
    box = clip.scene.target.box_px(frame)
    return None if box is None else tuple(int(round(v)) for v in box)  # type: ignore[return-value]


def draw_frame(clip: Clip, frame: int) -> np.ndarray:
    return render_frame(clip.scene, frame)


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
        "title": clip.title,
        "description": clip.event,
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
        "notes": "Demo-world clips (stchat.demo.world: what the embedded demo model understands) with exact "
        "ground truth; description is the query in the demo model's words; example_answer is the truth in "
        "the model's token syntax (for the app's 'Visualise an answer' path).",
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
