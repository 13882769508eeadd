"""Drawing answers on frames with OpenCV: small annotators composed by a :class:`Renderer`.

Each annotator draws one thing (a box track, the query label, the timeline) onto a canvas, in the style
of ``supervision``'s annotators. The canvas is the video frame with an information strip added *below*
it: the label and the timeline live in the strip, so nothing but the box outlines covers the picture
(content stays inspectable, and the frame's own pixels -- e.g. the synthetic clips' barcodes -- survive).
Box coordinates are therefore unchanged: the picture keeps its origin at the canvas' top-left.

Colours are RGB (frames are RGB throughout stchat): prediction red, ground truth green.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

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


def draw_outline(picture: np.ndarray, box: PixelBox, color: tuple[int, int, int], thickness: int) -> None:
    """A rectangle outline of exactly ``thickness`` pixels centred on the box edges, clipped to the picture.

    Drawn with array slices rather than ``cv2.rectangle``, whose thick lines come out a pixel wider than
    asked: the outline's geometry is exact, so a viewer (and the tests) can read the box back from it.
    Boxes have exclusive right/bottom edges, so the edge pixels are ``x1`` and ``x2 - 1``.
    """
    h, w = picture.shape[:2]
    x1, y1, x2, y2 = (round(v) for v in box)
    xl, xr = x1, max(x1, x2 - 1)
    yt, yb = y1, max(y1, y2 - 1)
    lo = thickness // 2  # pixels before the edge line; the rest fall on and after it
    hi = thickness - lo

    def rows(a: int, b: int) -> slice:
        return slice(min(h, max(0, a)), min(h, max(0, b)))

    def cols(a: int, b: int) -> slice:
        return slice(min(w, max(0, a)), min(w, max(0, b)))

    outer_x, outer_y = cols(xl - lo, xr + hi), rows(yt - lo, yb + hi)
    picture[rows(yt - lo, yt + hi), outer_x] = color
    picture[rows(yb - lo, yb + hi), outer_x] = color
    picture[outer_y, cols(xl - lo, xl + hi)] = color
    picture[outer_y, cols(xr - lo, xr + hi)] = color


@dataclass
class LabelAnnotator:
    """The query (or any text) on the strip's first line, shortened with an ellipsis to fit."""

    text: str
    color: tuple[int, int, int] = WHITE

    def annotate(self, canvas: np.ndarray, frame: FrameInfo) -> None:
        strip_h = canvas.shape[0] - frame.height
        scale = _font_scale(strip_h)
        # Hershey fonts have ASCII glyphs only.
        text = _fit(self.text.encode("ascii", "replace").decode(), frame.width - 8, scale)
        y = frame.height + round(strip_h * 0.42)
        cv2.putText(canvas, text, (4, y), _FONT, scale, self.color, 1, cv2.LINE_AA)


@dataclass
class TimelineAnnotator:
    """A bar for the whole video: the predicted span in red, ground truth in green, and a playhead."""

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


def format_timestamp(seconds: float) -> str:
    """``HH:MM:SS.mmm``, rounded to the nearest millisecond, never negative."""
    ms = max(0, int(round(seconds * 1000)))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


def _font_scale(strip_h: int) -> float:
    return max(0.35, min(1.2, strip_h / 70))


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
