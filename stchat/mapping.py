"""Model coordinates -> this video's frames, seconds and pixels.

Time: the model speaks about the 100 frames sampled from the frame range ``split``
(docs/official_quirks.md#frame-sampling). A
normalised time ``t`` is sampled frame ``k = round(t * 99)`` (Python's half-to-even ``round``, as the
official demo visualiser does, docs/official_quirks.md#answer-syntax), which is source frame
``official_frame_indices(...)[k]``, which is
shown at that frame's own presentation time (exact for VFR and late-starting streams). Seconds are on
the file clock (what a player shows), rounded to the millisecond; ``split_s`` adds the official demo's
view, ``(frame - split[0]) / fps``.

Space: normalised ``(x1, y1, x2, y2)`` fractions of the displayed frame -> pixels. We round to the
nearest pixel and clip to the frame, where the official demo truncates with ``int(x * W)``
(docs/official_quirks.md#answer-syntax): that
only moves its drawing up-left by up to a pixel, nothing the weights depend on, so we take the exact one.
Pixel boxes use exclusive right/bottom edges, like the ground truth (width = x2 - x1).

Between the model's keyframes the box is linearly interpolated in time; before the first and after the
last keyframe of the segment it is held (the model only speaks about the sampled frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from stchat.answer import Box, ParsedAnswer
from stchat.errors import AnswerError
from stchat.tasks import video_tasks
from stchat.video.sampling import NUM_FRAMES, official_frame_indices, resolve_split

PixelBox = tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameMap:
    """How the model's normalised coordinates land on one video (and one frame range)."""

    times: np.ndarray  # seconds (file clock) of every source frame
    width: int
    height: int
    fps: float
    split: tuple[int, int]
    indices: tuple[int, ...] = field(default=())

    @classmethod
    def build(
        cls, times: np.ndarray, width: int, height: int, fps: float, split: Sequence[int] | None = None
    ) -> FrameMap:
        n = len(times)
        try:
            first, last = resolve_split(n, split)
            indices = tuple(official_frame_indices(n, (first, last)))
        except ValueError as exc:
            raise AnswerError(str(exc)) from None
        return cls(np.asarray(times, dtype=np.float64), width, height, fps, (first, last), indices)

    def sample_index(self, t: float) -> int:
        """Sampled frame ``k`` for a normalised time (clamped to 0..99)."""
        return min(NUM_FRAMES - 1, max(0, round(float(t) * (NUM_FRAMES - 1))))

    def frame(self, t: float) -> int:
        return self.indices[self.sample_index(t)]

    def seconds(self, frame: int) -> float:
        return round(float(self.times[frame]), 3)

    def end_seconds(self, frame: int) -> float:
        """When ``frame`` stops showing (the next frame's time; one nominal frame after the last)."""
        if frame + 1 < len(self.times):
            return round(float(self.times[frame + 1]), 3)
        return round(float(self.times[frame]) + 1.0 / self.fps, 3)

    def split_seconds(self, frame: int) -> float:
        """The official demo's printed time: ``(frame - split[0]) / fps``."""
        return round((frame - self.split[0]) / self.fps, 3)

    def box_px(self, box: Box) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = box
        if x2 < x1:
            x1, x2 = x2, x1
        if y2 < y1:
            y1, y2 = y2, y1
        w, h = self.width, self.height

        def cx(v: float) -> int:
            return min(w, max(0, round(v * w)))

        def cy(v: float) -> int:
            return min(h, max(0, round(v * h)))

        return cx(x1), cy(y1), cx(x2), cy(y2)


@dataclass(frozen=True)
class Keyframe:
    """One box the model gave, placed on the video."""

    t: float  # normalised time as answered
    sample_index: int
    frame: int
    time_s: float
    split_s: float
    box_norm: Box
    box_px: tuple[int, int, int, int]


@dataclass(frozen=True)
class MappedAnswer:
    """An answer placed on a video: the segment (inclusive frames) and the keyframe boxes."""

    task: str
    first_frame: int
    last_frame: int
    start_s: float
    end_s: float  # when the last frame stops showing (end exclusive, like the ground truth)
    keyframes: tuple[Keyframe, ...]
    frame_map: FrameMap

    @property
    def duration_s(self) -> float:
        return round(self.end_s - self.start_s, 3)

    def box_track(self) -> dict[int, PixelBox]:
        """A box for every source frame of the segment (interpolated between keyframes)."""
        fm = self.frame_map
        return interpolate_track(
            self.keyframes, fm.times, self.first_frame, self.last_frame, fm.width, fm.height
        )


def map_answer(answer: ParsedAnswer, frame_map: FrameMap) -> MappedAnswer:
    """Place a parsed answer on the video; :class:`AnswerError` when there is nothing to place."""
    if answer.task not in video_tasks():
        raise AnswerError(f"task '{answer.task}' is not a video task; nothing to render on a video")
    fm = frame_map
    by_frame: dict[int, Keyframe] = {}
    for t in sorted(answer.boxes):
        f = fm.frame(t)
        box = answer.boxes[t]
        # Short videos repeat indices: several times can hit one frame; the last one wins, as in the
        # official ST-pair parser (reference Q21, "last duplicate timestamp wins").
        by_frame[f] = Keyframe(
            t, fm.sample_index(t), f, fm.seconds(f), fm.split_seconds(f), tuple(box), fm.box_px(box)
        )
    keyframes = tuple(by_frame[f] for f in sorted(by_frame))
    start_t: float | None = None
    end_t: float | None = None
    if answer.span is not None:
        start_t, end_t = sorted(answer.span)
    elif answer.end_time is not None:
        end_t = answer.end_time
    if start_t is not None:
        first = fm.frame(start_t)
    elif keyframes:
        first = keyframes[0].frame
    else:
        raise AnswerError("the answer has no time span and no boxes: nothing to render")
    if end_t is not None:
        last = fm.frame(end_t)
    elif keyframes:
        last = keyframes[-1].frame
    else:
        last = first
    if last < first:
        first, last = last, first
    return MappedAnswer(answer.task, first, last, fm.seconds(first), fm.end_seconds(last), keyframes, fm)


def _px_float(box: Box, width: int, height: int) -> PixelBox:
    x1, x2 = sorted((box[0], box[2]))
    y1, y2 = sorted((box[1], box[3]))
    return (
        min(width, max(0.0, x1 * width)),
        min(height, max(0.0, y1 * height)),
        min(width, max(0.0, x2 * width)),
        min(height, max(0.0, y2 * height)),
    )


def interpolate_track(
    keyframes: Sequence[Keyframe], times: np.ndarray, first: int, last: int, width: int, height: int
) -> dict[int, PixelBox]:
    """Linear interpolation (in time, so VFR is right) of keyframe boxes onto frames ``first..last``."""
    if not keyframes:
        return {}
    kt = np.array([times[k.frame] for k in keyframes], dtype=np.float64)
    # Interpolate the unrounded pixel boxes; rounding happens once, when drawing.
    kb = np.array([_px_float(k.box_norm, width, height) for k in keyframes], dtype=np.float64)
    kb = _unclip(kb, width, height)
    track: dict[int, PixelBox] = {}
    limits = (width, height, width, height)
    for f in range(first, last + 1):
        t = times[f]
        # np.interp holds the end values outside [kt[0], kt[-1]]: the "hold" rule.
        track[f] = tuple(  # type: ignore[assignment]
            min(limits[c], max(0.0, float(np.interp(t, kt, kb[:, c])))) for c in range(4)
        )
    return track


def _unclip(kb: np.ndarray, width: int, height: int) -> np.ndarray:
    """Undo border clipping before interpolating, so objects entering or leaving the frame move right.

    A keyframe box cut by a frame border is smaller than the object; interpolating it linearly against an
    uncut neighbour bends the path (up to several pixels in between). When a box touches a border and is
    narrower (shorter) than the nearest keyframe box that touches no border on that axis, we assume the
    object kept that size and extend the box past the border; the result is clipped again after
    interpolation.
    """
    out = kb.copy()
    for lo, hi, size in ((0, 2, width), (1, 3, height)):
        extent = kb[:, hi] - kb[:, lo]
        free = (kb[:, lo] > 0.5) & (kb[:, hi] < size - 0.5)
        free_pos = np.nonzero(free)[0]
        if free_pos.size == 0:
            continue
        for i in np.nonzero(~free)[0]:
            ref = free_pos[np.argmin(np.abs(free_pos - i))]
            full = extent[ref]
            if extent[i] >= full or (kb[i, lo] <= 0.5 and kb[i, hi] >= size - 0.5):
                continue  # not smaller, or cut on both sides: nothing sensible to extend
            if kb[i, lo] <= 0.5:
                out[i, lo] = kb[i, hi] - full
            else:
                out[i, hi] = kb[i, lo] + full
    return out
