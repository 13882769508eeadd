"""The demo world: seeded synthetic clips of coloured shapes, with exact per-frame ground truth.

What the demo model understands is exactly what this module can draw:

* objects: colours red, green, blue, yellow, white, black, purple, orange (each shade jittered a little);
  shapes ball (filled circle), square, triangle (apex up); each object either moves left, right, up or
  down in a straight line at constant speed, or stands still; size 8-25 % of the shorter frame side;
* scenes: one target and 0-3 distractors whose colour differs from the target's (the shape may be the
  same); the target is visible during one sub-span of 20-80 % of the clip, each distractor during its own
  span (other or overlapping times); the target is drawn last, so it is never hidden;
* background: flat colour, vertical gradient, or blocky noise texture (kept away from the object colours);
* videos: 240p-1080p, aspect 16:9, 4:3, 1:1 or 9:16, 12-30 fps, 3-30 s, H.264 mp4.

``sample_scene(seed)`` is a pure function of the seed; ``render_frame`` draws one frame; ``write_clip``
encodes a scene as H.264 (PyAV) and ``scene_truth`` gives every frame's target box (normalised xyxy).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (35, 170, 50),
    "blue": (35, 70, 225),
    "yellow": (240, 215, 30),
    "white": (245, 245, 245),
    "black": (18, 18, 18),
    "purple": (135, 45, 175),
    "orange": (250, 135, 20),
}
SHAPES = ("ball", "square", "triangle")
MOTIONS = ("left", "right", "up", "down", "still")
ASPECTS: dict[str, tuple[int, int]] = {"16:9": (16, 9), "4:3": (4, 3), "1:1": (1, 1), "9:16": (9, 16)}
HEIGHTS = (240, 360, 480, 720, 1080)  # "p" of the shorter side
OBJECT_SIZES = (0.08, 0.25)  # an object's side, as a fraction of the frame's shorter side
BACKGROUNDS = ("flat", "gradient", "noise")


@dataclass(frozen=True)
class WorldObject:
    colour: str
    shape: str
    motion: str
    rgb: tuple[int, int, int]
    size: float  # side (px) of the bounding square
    start: int  # first visible frame (inclusive)
    end: int  # last visible frame (inclusive)
    x0: float  # top-left corner at ``start`` (px)
    y0: float
    vx: float  # px per frame
    vy: float

    def box_px(self, frame: int) -> tuple[float, float, float, float] | None:
        if not self.start <= frame <= self.end:
            return None
        x = self.x0 + self.vx * (frame - self.start)
        y = self.y0 + self.vy * (frame - self.start)
        return (x, y, x + self.size, y + self.size)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True)
class Scene:
    seed: int
    width: int
    height: int
    fps: int
    n_frames: int
    background: str
    bg_colours: tuple[tuple[int, int, int], tuple[int, int, int]]
    objects: tuple[WorldObject, ...]  # objects[0] is the target
    noise_cells: int = 16
    meta: dict = field(default_factory=dict)

    @property
    def target(self) -> WorldObject:
        return self.objects[0]

    def to_json(self) -> dict:
        return asdict(self)


def _contrast(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - np.asarray(b, float)).sum())


def _pick_background(rng: np.random.Generator, object_rgbs: list[tuple[int, int, int]]
                     ) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Two background colours (top, bottom) far enough from every object colour to be seen."""
    for _ in range(200):
        pair = [rng.integers(40, 215, size=3) for _ in range(2)]
        if all(min(_contrast(c, o) for o in object_rgbs) > 150 for c in pair):
            return tuple(int(v) for v in pair[0]), tuple(int(v) for v in pair[1])  # type: ignore[return-value]
    grey = (128, 128, 128)
    return grey, grey


def _place(rng: np.random.Generator, motion: str, size: float, w: int, h: int, frames: int
           ) -> tuple[float, float, float, float]:
    """Start corner and per-frame velocity of a straight, constant-speed path that stays in the frame."""
    if motion == "still":
        return float(rng.uniform(0, w - size)), float(rng.uniform(0, h - size)), 0.0, 0.0
    horizontal = motion in ("left", "right")
    room = (w if horizontal else h) - size
    travel = room * float(rng.uniform(0.3, 0.9))
    a = float(rng.uniform(0, room - travel))
    if motion in ("left", "up"):
        a, b = a + travel, a
    else:
        b = a + travel
    v = (b - a) / max(frames - 1, 1)
    other = float(rng.uniform(0, (h if horizontal else w) - size))
    return (a, other, v, 0.0) if horizontal else (other, a, 0.0, v)


def sample_scene(seed: int, *, height: int | None = None, aspect: str | None = None, fps: int | None = None,
                 seconds: float | None = None, max_seconds: float = 30.0, n_distractors: int | None = None,
                 sizes: tuple[float, float] = OBJECT_SIZES) -> Scene:
    """One random scene of the demo world; every choice is drawn from ``seed`` unless given.

    ``sizes``: the range of an object's side as a fraction of the frame's shorter side. The demo world is
    the default; a training curriculum may ask for larger objects (the draws, hence every other choice of a
    seed, stay the same)."""
    if not 0 < sizes[0] <= sizes[1] <= 0.9:
        raise ValueError(f"object sizes must satisfy 0 < low <= high <= 0.9 of the shorter side; got {sizes}")
    rng = np.random.default_rng(seed)
    aspect = aspect or str(rng.choice(list(ASPECTS)))
    p = height or int(rng.choice(HEIGHTS))
    aw, ah = ASPECTS[aspect]
    w, h = (round(p * aw / ah), p) if aw >= ah else (p, round(p * ah / aw))
    w, h = w + w % 2, h + h % 2
    fps = fps or int(rng.integers(12, 31))
    seconds = seconds if seconds is not None else float(rng.uniform(3.0, max_seconds))
    n = max(int(round(seconds * fps)), 2)
    k = n_distractors if n_distractors is not None else int(rng.integers(0, 4))
    colours = list(rng.permutation(list(COLOURS)))[: k + 1]
    short = min(w, h)
    objs = []
    for i, colour in enumerate(colours):
        shape = str(rng.choice(SHAPES))
        motion = str(rng.choice(MOTIONS))
        base = np.array(COLOURS[colour])
        rgb = tuple(int(v) for v in np.clip(base + rng.integers(-18, 19, size=3), 0, 255))
        size = short * float(rng.uniform(*sizes))
        frac = float(rng.uniform(0.2, 0.8)) if i == 0 else float(rng.uniform(0.2, 1.0))
        length = max(int(round(frac * n)), 2)
        start = int(rng.integers(0, n - length + 1))
        x0, y0, vx, vy = _place(rng, motion, size, w, h, length)
        objs.append(WorldObject(colour=colour, shape=shape, motion=motion, rgb=rgb, size=size, start=start,
                                end=start + length - 1, x0=x0, y0=y0, vx=vx, vy=vy))
    background = str(rng.choice(BACKGROUNDS))
    bg = _pick_background(rng, [o.rgb for o in objs])
    if background == "flat":
        bg = (bg[0], bg[0])
    return Scene(seed=seed, width=w, height=h, fps=fps, n_frames=n, background=background, bg_colours=bg,
                 objects=tuple(objs), noise_cells=int(rng.integers(8, 24)))


# ---------------------------------------------------------------------------------------------------
# drawing


def background_image(scene: Scene) -> np.ndarray:
    h, w = scene.height, scene.width
    top, bottom = (np.array(c, np.float32) for c in scene.bg_colours)
    if scene.background == "gradient":
        t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
        img = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3))
    else:
        img = np.broadcast_to(top, (h, w, 3))
    img = np.array(img)
    if scene.background == "noise":
        rng = np.random.default_rng(scene.seed + 7919)
        cells = scene.noise_cells
        ch, cw = max(h // cells, 1), max(w // cells, 1)
        grid = rng.integers(-35, 36, size=(h // ch + 1, w // cw + 1, 3)).astype(np.float32)
        img += np.repeat(np.repeat(grid, ch, axis=0), cw, axis=1)[:h, :w]
    return np.clip(img, 0, 255).astype(np.uint8)


def _mask(shape: str, box: tuple[float, float, float, float], h: int, w: int
          ) -> tuple[slice, slice, np.ndarray] | None:
    x1, y1, x2, y2 = box
    c0, c1 = max(int(np.floor(x1)), 0), min(int(np.ceil(x2)), w)
    r0, r1 = max(int(np.floor(y1)), 0), min(int(np.ceil(y2)), h)
    if c1 <= c0 or r1 <= r0:
        return None
    ys = np.arange(r0, r1, dtype=np.float32)[:, None] + 0.5
    xs = np.arange(c0, c1, dtype=np.float32)[None, :] + 0.5
    if shape == "ball":
        cx, cy, r = (x1 + x2) / 2, (y1 + y2) / 2, (x2 - x1) / 2
        m = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    elif shape == "triangle":
        cx, side = (x1 + x2) / 2, x2 - x1
        rel = (ys - y1) / max(y2 - y1, 1e-6)  # 0 at the apex, 1 at the base
        m = (np.abs(xs - cx) <= rel * side / 2) & (ys >= y1) & (ys <= y2)
    else:
        m = (xs >= x1) & (xs <= x2) & (ys >= y1) & (ys <= y2)
    return slice(r0, r1), slice(c0, c1), m


def render_frame(scene: Scene, frame: int, background: np.ndarray | None = None) -> np.ndarray:
    img = (background if background is not None else background_image(scene)).copy()
    for obj in reversed(scene.objects):  # the target (index 0) last, on top
        box = obj.box_px(frame)
        if box is None:
            continue
        got = _mask(obj.shape, box, scene.height, scene.width)
        if got is None:
            continue
        rs, cs, m = got
        img[rs, cs][m] = obj.rgb
    return img


def target_box(scene: Scene, frame: int) -> list[float] | None:
    """Normalised ``[x1, y1, x2, y2]`` of the target at ``frame`` (None when not visible)."""
    return object_box(scene, scene.target, frame)


def object_box(scene: Scene, obj: WorldObject, frame: int) -> list[float] | None:
    """Normalised ``[x1, y1, x2, y2]`` of one of the scene's objects at ``frame`` (None when not visible)."""
    box = obj.box_px(frame)
    if box is None:
        return None
    x1, y1, x2, y2 = box
    w, h = scene.width, scene.height
    return [min(max(x1 / w, 0.0), 1.0), min(max(y1 / h, 0.0), 1.0), min(max(x2 / w, 0.0), 1.0),
            min(max(y2 / h, 0.0), 1.0)]


def write_clip(scene: Scene, path: str | Path, crf: int = 23, preset: str = "veryfast") -> Path:
    """Encode the scene as H.264 yuv420p mp4 (constant frame rate) with PyAV; atomic."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.mp4")
    bg = background_image(scene)
    with av.open(str(tmp), mode="w", format="mp4") as out:
        st = out.add_stream("libx264", rate=Fraction(scene.fps))
        st.width, st.height = scene.width, scene.height
        st.pix_fmt = "yuv420p"
        st.codec_context.options = {"crf": str(crf), "preset": preset}
        st.thread_type = "AUTO"
        for f in range(scene.n_frames):
            vf = av.VideoFrame.from_ndarray(render_frame(scene, f, bg), format="rgb24")
            for pkt in st.encode(vf):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    tmp.replace(path)
    return path


def scene_truth(scene: Scene) -> dict:
    """JSON ground truth: the scene, the target's visible frames and per-frame normalised boxes."""
    t = scene.target
    return {"seed": scene.seed, "width": scene.width, "height": scene.height, "fps": scene.fps,
            "n_frames": scene.n_frames, "target": t.name, "motion": t.motion,
            "first_frame": t.start, "last_frame": t.end,
            "boxes": {str(f): target_box(scene, f) for f in range(t.start, t.end + 1)},
            "scene": scene.to_json()}


def write_truth(scene: Scene, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(scene_truth(scene)))
    tmp.replace(path)
    return path
