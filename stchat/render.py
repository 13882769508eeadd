"""Drawing answers on frames with OpenCV: small annotators composed by a :class:`Renderer`.

Each annotator draws one thing (a box track, the query label, the timeline) onto a canvas, in the style
of ``supervision``'s annotators. The canvas is the video frame with an information strip added *below*
it: the label and the timeline live in the strip, so nothing but the box outlines covers the picture
(content stays inspectable, and the frame's own pixels -- e.g. the synthetic clips' barcodes -- survive).
Box coordinates are therefore unchanged: the picture keeps its origin at the canvas' top-left.

Colours are RGB (frames are RGB throughout stchat): prediction red, ground truth green.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import cv2
import numpy as np

from stchat.mapping import PixelBox

RED = (255, 0, 0)
GREEN = (0, 200, 0)
WHITE = (255, 255, 255)
STRIP_BG = (24, 24, 24)
TRACK_BG = (80, 80, 80)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class FrameInfo:
    """What the annotators need to know about the frame being drawn."""

    index: int
    time_s: float
    width: int  # of the picture (the canvas is taller by the strip)
    height: int


class Annotator(Protocol):
    def annotate(self, canvas: np.ndarray, frame: FrameInfo) -> None: ...


def strip_height(height: int) -> int:
    """Height of the information strip under a picture of this height (even, for yuv420p)."""
    h = max(36, round(height * 0.11))
    return h + (h % 2)


@dataclass
class BoxAnnotator:
    """Outline of a per-frame box track (frames without a box are left alone)."""

    track: Mapping[int, PixelBox]
    color: tuple[int, int, int] = RED
    thickness: int = 3

    def annotate(self, canvas: np.ndarray, frame: FrameInfo) -> None:
        box = self.track.get(frame.index)
        if box is None:
            return
        draw_outline(canvas[: frame.height, : frame.width], box, self.color, self.thickness)

    def annotate_yuv(self, planes: YuvPlanes, frame: FrameInfo) -> None:
        """The same outline on a yuv420p picture: exact in luma, chroma covering every touched 2x2 block."""
        box = self.track.get(frame.index)
        if box is None:
            return
        y, u, v = planes
        cy, cu, cv = yuv_color(self.color)
        for r0, r1, c0, c1 in _outline_rects(box, self.thickness):
            _fill(y, r0, r1, c0, c1, cy)
            # A chroma sample covers a 2x2 block: widen outward so the whole line gets the colour (what
            # the RGB -> I420 conversion of an RGB drawing gives too, minus its averaging with the
            # neighbours).
            _fill(u, r0 // 2, (r1 + 1) // 2, c0 // 2, (c1 + 1) // 2, cu)
            _fill(v, r0 // 2, (r1 + 1) // 2, c0 // 2, (c1 + 1) // 2, cv)


YuvPlanes = tuple[np.ndarray, np.ndarray, np.ndarray]


@functools.lru_cache(maxsize=64)
def yuv_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    """An RGB colour in the BT.601 limited-range YUV that the RGB path's OpenCV conversion gives."""
    block = cv2.cvtColor(np.full((2, 2, 3), color, dtype=np.uint8), cv2.COLOR_RGB2YUV_I420)
    return int(block[0, 0]), int(block[2, 0]), int(block[2, 1])


def _fill(plane: np.ndarray, r0: int, r1: int, c0: int, c1: int, value: int) -> None:
    h, w = plane.shape[:2]
    r0, r1, c0, c1 = max(0, r0), min(h, r1), max(0, c0), min(w, c1)
    if r0 < r1 and c0 < c1:
        plane[r0:r1, c0:c1] = value


def _outline_rects(box: PixelBox, thickness: int) -> list[tuple[int, int, int, int]]:
    """The outline's four bars as ``(row0, row1, col0, col1)`` (ends exclusive, not yet clipped)."""
    x1, y1, x2, y2 = (round(v) for v in box)
    xl, xr = x1, max(x1, x2 - 1)
    yt, yb = y1, max(y1, y2 - 1)
    lo = thickness // 2  # pixels before the edge line; the rest fall on and after it
    hi = thickness - lo
    return [
        (yt - lo, yt + hi, xl - lo, xr + hi),
        (yb - lo, yb + hi, xl - lo, xr + hi),
        (yt - lo, yb + hi, xl - lo, xl + hi),
        (yt - lo, yb + hi, xr - lo, xr + hi),
    ]


def draw_outline(picture: np.ndarray, box: PixelBox, color: tuple[int, int, int], thickness: int) -> None:
    """A rectangle outline of exactly ``thickness`` pixels centred on the box edges, clipped to the picture.

    Drawn with array slices rather than ``cv2.rectangle``, whose thick lines come out a pixel wider than
    asked: the outline's geometry is exact, so a viewer (and the tests) can read the box back from it.
    Boxes have exclusive right/bottom edges, so the edge pixels are ``x1`` and ``x2 - 1``.
    """
    for r0, r1, c0, c1 in _outline_rects(box, thickness):
        _fill(picture, r0, r1, c0, c1, color)  # type: ignore[arg-type]


@dataclass
class LabelAnnotator:
    """The query (or any text) on the strip's first line, shortened with an ellipsis to fit.

    ASCII text is drawn with OpenCV's Hershey font. Hershey has ASCII glyphs only, so other text
    (accents, Greek, Cyrillic, CJK ...) is drawn with a TrueType font through PIL instead: rendered once
    into an alpha mask per frame size, then blended onto every frame, which costs about as much as the
    Hershey call. Characters that no available font has (most emoji) become ``?``.
    """

    on_strip = True  # draws only in the strip (the YUV path draws the strip alone, in RGB)
    text: str
    color: tuple[int, int, int] = WHITE
    _masks: dict[tuple[int, int], tuple[np.ndarray, int]] = field(default_factory=dict, repr=False)

    def annotate(self, canvas: np.ndarray, frame: FrameInfo) -> None:
        strip_h = canvas.shape[0] - frame.height
        text = " ".join(self.text.split())  # newlines and tabs would draw as boxes
        if text.isascii():
            scale = _font_scale(strip_h)
            text = _fit(text, frame.width - 8, scale)
            y = frame.height + round(strip_h * 0.42)
            cv2.putText(canvas, text, (4, y), _FONT, scale, self.color, 1, cv2.LINE_AA)
            return
        key = (frame.width, strip_h)
        if key not in self._masks:
            self._masks[key] = _unicode_label(text, frame.width - 8, strip_h)
        mask, top = self._masks[key]
        y0 = frame.height + top
        h = min(mask.shape[0], canvas.shape[0] - y0)
        w = min(mask.shape[1], canvas.shape[1] - 4)
        if h <= 0 or w <= 0:
            return
        region = canvas[y0 : y0 + h, 4 : 4 + w]
        alpha = mask[:h, :w, None].astype(np.float32) * (1.0 / 255.0)
        blended = region * (1.0 - alpha) + np.asarray(self.color, dtype=np.float32) * alpha
        region[:] = np.round(blended).astype(np.uint8)


def _unicode_label(text: str, max_width: int, strip_h: int) -> tuple[np.ndarray, int]:
    """``text`` as a uint8 alpha mask that fits ``max_width`` (ellipsis), and its top offset in the strip."""
    size = max(8, round(strip_h * 0.36))
    mask = _render_mask(text, size, max_width)
    top = max(0, round(strip_h * 0.42) - round(size * 0.8))  # same baseline as the Hershey label
    return mask, top


@dataclass
class TimelineAnnotator:
    """A bar for the whole video: the predicted span in red, ground truth in green, and a playhead."""

    on_strip = True
    duration_s: float
    span: tuple[float, float] | None = None
    gt_span: tuple[float, float] | None = None
    color: tuple[int, int, int] = RED
    gt_color: tuple[int, int, int] = GREEN
    show_time: bool = True

    def annotate(self, canvas: np.ndarray, frame: FrameInfo) -> None:
        strip_h = canvas.shape[0] - frame.height
        scale = _font_scale(strip_h)
        label = f"{format_timestamp(frame.time_s)}" if self.show_time else ""
        (tw, _), _ = cv2.getTextSize(label, _FONT, scale, 1)
        x0, x1 = 4, max(8, frame.width - 4 - (tw + 6 if label else 0))
        y0 = frame.height + round(strip_h * 0.58)
        y1 = min(canvas.shape[0] - 3, y0 + max(4, round(strip_h * 0.28)))
        cv2.rectangle(canvas, (x0, y0), (x1, y1), TRACK_BG, -1)

        def xpos(t: float) -> int:
            frac = 0.0 if self.duration_s <= 0 else min(1.0, max(0.0, t / self.duration_s))
            return x0 + round(frac * (x1 - x0))

        if self.span is not None:
            cv2.rectangle(
                canvas,
                (xpos(self.span[0]), y0),
                (max(xpos(self.span[0]), xpos(self.span[1])), y1),
                self.color,
                -1,
            )
        if self.gt_span is not None:
            gy = max(frame.height, y0 - 3)
            cv2.rectangle(
                canvas, (xpos(self.gt_span[0]), gy), (xpos(self.gt_span[1]), y0 - 1), self.gt_color, -1
            )
        px = xpos(frame.time_s)
        cv2.line(canvas, (px, y0 - 2), (px, y1 + 1), WHITE, 2)
        if label:
            cv2.putText(canvas, label, (x1 + 6, y1), _FONT, scale, WHITE, 1, cv2.LINE_AA)


@dataclass
class Renderer:
    """Compose annotators: picture + strip, then each annotator in order (later ones draw on top)."""

    annotators: Sequence[Annotator] = field(default_factory=list)
    with_strip: bool = True
    # (width, strip height) -> (the last strip drawn in RGB, its I420 conversion, flat Y|U|V): see render_yuv.
    _strips: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def render(self, rgb: np.ndarray, index: int, time_s: float) -> np.ndarray:
        h, w = rgb.shape[:2]
        if self.with_strip:
            canvas = np.empty((h + strip_height(h), w, 3), dtype=np.uint8)
            canvas[:h] = rgb
            canvas[h:] = STRIP_BG
        else:
            canvas = rgb.copy()
        info = FrameInfo(index, time_s, w, h)
        for annotator in self.annotators:
            annotator.annotate(canvas, info)
        return canvas

    def __call__(self, index: int, time_s: float, rgb: np.ndarray) -> np.ndarray:
        """The :data:`stchat.clip.FrameHook` signature."""
        return self.render(rgb, index, time_s)

    # -- the YUV path: draw on the decoder's own yuv420p picture, no RGB round trip -------------------
    def supports_yuv(self) -> bool:
        """True when every annotator draws either only in the strip or has an ``annotate_yuv``."""
        return all(getattr(a, "on_strip", False) or hasattr(a, "annotate_yuv") for a in self.annotators)

    def canvas_size(self, width: int, height: int) -> tuple[int, int]:
        return width, height + (strip_height(height) if self.with_strip else 0)

    def _strip_i420(self, strip: np.ndarray) -> np.ndarray:
        """The flat I420 of an RGB strip, converting only the columns that changed since the last call."""
        sh, w = strip.shape[:2]
        cached = self._strips.get((w, sh))
        if cached is None:
            i420 = cv2.cvtColor(strip, cv2.COLOR_RGB2YUV_I420).reshape(-1)
            self._strips[(w, sh)] = (strip, i420)
            return i420
        prev, i420 = cached
        # Columns that differ (a 2-D reduction over rows: numpy's any over axes (0, 2) is 30x slower).
        changed = np.flatnonzero((strip != prev).reshape(sh, -1).any(axis=0).reshape(w, 3).any(axis=1))
        if changed.size:
            ysz = sh * w
            y = i420[:ysz].reshape(sh, w)
            u = i420[ysz : ysz + ysz // 4].reshape(sh // 2, w // 2)
            v = i420[ysz + ysz // 4 :].reshape(sh // 2, w // 2)
            # Runs of changed columns (the playhead, the time label), each widened to even edges.
            breaks = np.flatnonzero(np.diff(changed) > 8)
            firsts = [int(changed[0]), *changed[breaks + 1].tolist()]
            lasts = [*changed[breaks].tolist(), int(changed[-1])]
            for lo, hi in zip(firsts, lasts, strict=True):
                c0, c1 = int(lo) & ~1, min(w, (int(hi) | 1) + 1)
                part = cv2.cvtColor(np.ascontiguousarray(strip[:, c0:c1]), cv2.COLOR_RGB2YUV_I420)
                pys = sh * (c1 - c0)
                y[:, c0:c1] = part.reshape(-1)[:pys].reshape(sh, c1 - c0)
                u[:, c0 // 2 : c1 // 2] = part.reshape(-1)[pys : pys + pys // 4].reshape(sh // 2, -1)
                v[:, c0 // 2 : c1 // 2] = part.reshape(-1)[pys + pys // 4 :].reshape(sh // 2, -1)
        self._strips[(w, sh)] = (strip, i420)
        return i420

    def render_yuv(self, src: YuvPlanes, out: YuvPlanes, index: int, time_s: float) -> None:
        """Copy the yuv420p picture ``src`` into ``out`` (sized by :meth:`canvas_size`) and annotate it.

        Sizes must be even. Only the strip (11% of the pixels) is drawn in RGB and converted; the picture
        keeps the decoder's pixels, so the clip loses no quality to colour conversions. From one frame to
        the next the strip changes only where the playhead and the time label are, so only the columns
        that differ from the previous frame's strip are converted again (the I420 conversion works on
        2x2 blocks, so an even-aligned column range converts exactly as in the whole strip).
        """
        y, u, v = src
        h, w = y.shape
        oy, ou, ov = out
        oy[:h] = y
        ou[: h // 2] = u
        ov[: h // 2] = v
        strip_h = oy.shape[0] - h
        if strip_h > 0:
            strip = _blank_strip(strip_h, w).copy()  # a copy: filling with a colour tuple is 30x slower
            strip_info = FrameInfo(index, time_s, w, 0)  # a strip-only canvas: the picture has height 0
            for a in self.annotators:
                if getattr(a, "on_strip", False):
                    a.annotate(strip, strip_info)
            i420 = self._strip_i420(strip)  # Y, then U, then V
            ysz = strip_h * w
            csz = ysz // 4
            oy[h:] = i420[:ysz].reshape(strip_h, w)
            ou[h // 2 :] = i420[ysz : ysz + csz].reshape(strip_h // 2, w // 2)
            ov[h // 2 :] = i420[ysz + csz :].reshape(strip_h // 2, w // 2)
        info = FrameInfo(index, time_s, w, h)
        picture = (oy[:h], ou[: h // 2], ov[: h // 2])
        for a in self.annotators:
            if not getattr(a, "on_strip", False):
                a.annotate_yuv(picture, info)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=8)
def _blank_strip(height: int, width: int) -> np.ndarray:
    strip = np.empty((height, width, 3), dtype=np.uint8)
    strip[:] = STRIP_BG
    strip.flags.writeable = False
    return strip


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``, rounded to the nearest millisecond, never negative."""
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _font_scale(strip_h: int) -> float:
    return max(0.35, min(1.2, strip_h / 70))


@functools.lru_cache(maxsize=256)
def _fit(text: str, max_width: int, scale: float) -> str:
    """Longest prefix (with an ellipsis) that fits ``max_width`` pixels."""
    if cv2.getTextSize(text, _FONT, scale, 1)[0][0] <= max_width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cv2.getTextSize(text[:mid] + "...", _FONT, scale, 1)[0][0] <= max_width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo] + "..."


# --------------------------------------------------------------------------- TrueType labels

# Fonts tried per character, in order. DejaVu Sans ships inside matplotlib (a dependency), so it is there
# on every install; it covers Latin, Greek, Cyrillic, Arabic, Hebrew and many symbols. The others are
# common system fonts with CJK glyphs, used only when present.
_SYSTEM_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/System/Library/Fonts/PingFang.ttc",
    "C:/Windows/Fonts/msyh.ttc",
)


@functools.lru_cache(maxsize=1)
def _font_files() -> tuple[tuple[str, frozenset[int]], ...]:
    """Available font files with the code points each covers (read once per process)."""
    import importlib.util
    import os

    from fontTools.ttLib import TTFont

    # Locate matplotlib's bundled font without importing matplotlib (that import alone takes ~0.5 s).
    spec = importlib.util.find_spec("matplotlib")
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    paths = [os.path.join(r, "mpl-data", "fonts", "ttf", "DejaVuSans.ttf") for r in roots]
    paths = [p for p in paths if os.path.isfile(p)][:1] + [p for p in _SYSTEM_FONTS if os.path.isfile(p)]
    fonts = []
    for path in paths:
        try:
            with TTFont(path, fontNumber=0, lazy=True) as tt:
                fonts.append((path, frozenset(tt.getBestCmap() or {})))
        except Exception:  # an unreadable system font is skipped, never fatal
            continue
    return tuple(fonts)


@functools.lru_cache(maxsize=16)
def _pil_font(path: str, size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size)


def _runs(text: str) -> list[tuple[str, str]]:
    """Split ``text`` into (font path, run) pieces; characters no font covers become ``?``."""
    fonts = _font_files()
    runs: list[tuple[str, str]] = []
    for ch in text:
        path = next((p for p, cmap in fonts if ord(ch) in cmap), None)
        if path is None:
            if not fonts:  # no TrueType font at all: PIL's built-in bitmap font, ASCII only
                path, ch = "", ch if ch.isascii() else "?"
            else:
                path, ch = fonts[0][0], "?"
        if runs and runs[-1][0] == path:
            runs[-1] = (path, runs[-1][1] + ch)
        else:
            runs.append((path, ch))
    return runs


def _render_mask(text: str, size: int, max_width: int) -> np.ndarray:
    """Anti-aliased uint8 mask of ``text`` at ``size`` px, shortened with "..." to ``max_width`` px."""
    from PIL import Image, ImageDraw

    def width(t: str) -> float:
        return sum(_pil_font(p, size).getlength(r) for p, r in _runs(t))

    if width(text) > max_width:
        lo, hi = 0, len(text)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if width(text[:mid] + "...") <= max_width:
                lo = mid
            else:
                hi = mid - 1
        text = text[:lo] + "..."
    height = round(size * 1.3)
    img = Image.new("L", (max(1, max_width), height), 0)
    draw = ImageDraw.Draw(img)
    x = 0.0
    for path, run in _runs(text):
        font = _pil_font(path, size)
        draw.text((x, 0), run, font=font, fill=255)
        x += font.getlength(run)
    return np.asarray(img, dtype=np.uint8)
