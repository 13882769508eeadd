"""Pipeline benchmark: every figure is a ratio against a baseline measured in the same run.

1. Frame sampling: the 100 official frames of a generated 60 s 720p clip, ``stchat.video.io.read_frames``
   vs decoding every frame with OpenCV (and keeping the 100). Both results are compared pixel for pixel.
2. Render + clip of a 10 s 720p segment (``render_answer(..., write_annotated=False)``) vs the floor, a
   plain ``ffmpeg -ss S -t 10 -c:v libx264`` re-encode of the same segment (imageio-ffmpeg's binary), at
   ffmpeg's default preset and at ours.
3. Clipping the same segment: PyAV (``stchat.clip.cut_seconds``) vs MoviePy (``cut_seconds_moviepy``).

Run: ``.venv/bin/python benchmarks/pipeline.py [--seconds 60] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import imageio_ffmpeg
import numpy as np

from stchat.answer import ParsedAnswer
from stchat.clip import cut_seconds, cut_seconds_moviepy
from stchat.pipeline import render_answer
from stchat.video.io import probe, read_frames
from stchat.video.sampling import official_frame_indices

W, H, FPS, RATE = 1280, 720, 30, 48000


def make_clip(path: Path, seconds: int) -> None:
    """A 720p30 H.264 clip with a moving square, noise texture and a stereo tone (2 s GOP, B-frames)."""
    rng = np.random.default_rng(0)
    texture = rng.integers(60, 200, (H // 8, W // 8, 3), dtype=np.uint8)
    texture = cv2.resize(texture, (W, H), interpolation=cv2.INTER_LINEAR)
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
        vs = out.add_stream("libx264", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.codec_context.options = {"preset": "veryfast", "crf": "23", "g": str(2 * FPS)}
        aus = out.add_stream("aac", rate=RATE, layout="stereo")
        n = seconds * FPS
        samples_per_frame = RATE // FPS
        for i in range(n):
            img = np.roll(texture, i * 4, axis=1)
            x = int((i * 7) % (W - 200))
            img[200:400, x : x + 200] = (230, 40, 40)
            cv2.putText(img, str(i), (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, FPS)
            out.mux(vs.encode(frame))
            t = (np.arange(samples_per_frame) + i * samples_per_frame) / RATE
            tone = (0.2 * np.sin(2 * np.pi * (440 + 100 * (i // (2 * FPS))) * t)).astype(np.float32)
            af = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
            af.sample_rate = RATE
            af.pts = i * samples_per_frame
            out.mux(aus.encode(af))
        out.mux(vs.encode(None))
        out.mux(aus.encode(None))


def timed(fn: Callable[[], object], repeat: int = 1) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def opencv_all_frames(path: Path, wanted: list[int]) -> np.ndarray:
    cap = cv2.VideoCapture(str(path))
    keep: dict[int, np.ndarray] = {}
    want = set(wanted)
    i = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if i in want:
            keep[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        i += 1
    cap.release()
    return np.stack([keep[k] for k in wanted])


def ffmpeg_floor(src: Path, out: Path, start: float, dur: float, preset: str | None) -> None:
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-v",
        "error",
        "-y",
        "-ss",
        f"{start}",
        "-t",
        f"{dur}",
        "-i",
        str(src),
    ]
    cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart"]
    if preset:
        cmd += ["-preset", preset]
    subprocess.run([*cmd, str(out)], check=True, timeout=600)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--keep", type=Path, help="folder to keep the generated files in")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="stchat-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "bench_720p.mp4"
    t_gen, _ = timed(lambda: make_clip(src, args.seconds))
    info = probe(src)
    print(
        f"generated {src.name}: {info.width}x{info.height} {info.fps_float} fps, {info.frame_count} frames "
        f"({t_gen:.1f} s)"
    )

    # 1. sampling
    idx = official_frame_indices(info.frame_count)
    t_ours, ours = timed(lambda: read_frames(src, idx))
    t_cv, theirs = timed(lambda: opencv_all_frames(src, idx))
    diff = np.abs(ours.astype(np.int16) - theirs.astype(np.int16)).mean()
    print(
        f"[1] sample 100 frames: stchat {t_ours:.2f} s vs OpenCV decode-all {t_cv:.2f} s "
        f"-> {t_cv / t_ours:.2f}x faster (mean |diff| vs OpenCV {diff:.2f} levels)"
    )

    # 2. render + clip of a 10 s segment vs the ffmpeg floor
    start_s, dur = 20.0, 10.0
    span = (start_s / info.duration_s, (start_s + dur) / info.duration_s)
    ans = ParsedAnswer(
        "stvg", "bench", span=span, boxes={span[0]: (0.1, 0.2, 0.3, 0.6), span[1]: (0.6, 0.2, 0.8, 0.6)}
    )
    t_render, out = timed(
        lambda: render_answer(src, ans, out_dir=work / "render", query="a red square", write_annotated=False)
    )
    t_floor, _ = timed(lambda: ffmpeg_floor(src, work / "floor.mp4", start_s, dur, None))
    t_floor_sf, _ = timed(lambda: ffmpeg_floor(src, work / "floor_sf.mp4", start_s, dur, "superfast"))
    seg = out.rows[0]  # type: ignore[attr-defined]
    print(
        f"[2] render+clip {seg.duration_s:.2f} s segment: stchat {t_render:.2f} s vs ffmpeg re-encode "
        f"(preset medium) {t_floor:.2f} s -> {t_render / t_floor:.2f}x the floor; vs ffmpeg superfast "
        f"{t_floor_sf:.2f} s -> {t_render / t_floor_sf:.2f}x"
    )
    t_full, _ = timed(lambda: render_answer(src, ans, out_dir=work / "render_full", query="a red square"))
    print(
        f"    full pipeline (annotated {info.duration_s:.0f} s video + clip): {t_full:.2f} s "
        f"-> {t_full / t_floor:.2f}x the 10 s floor"
    )

    # 3. clipping: PyAV vs MoviePy
    t_pyav, res = timed(lambda: cut_seconds(src, work / "cut_pyav.mp4", start_s, start_s + dur))
    t_mpy, _ = timed(lambda: cut_seconds_moviepy(src, work / "cut_moviepy.mp4", start_s, start_s + dur))
    n_pyav = probe(work / "cut_pyav.mp4").frame_count
    n_mpy = probe(work / "cut_moviepy.mp4").frame_count
    print(
        f"[3] clip 10 s: PyAV {t_pyav:.2f} s ({n_pyav} frames) vs MoviePy {t_mpy:.2f} s ({n_mpy} frames) "
        f"-> MoviePy takes {t_mpy / t_pyav:.2f}x PyAV's time; expected {int(dur * FPS)} frames"
    )
    print(f"files in {work}")


if __name__ == "__main__":
    main()
