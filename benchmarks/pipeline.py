"""Pipeline benchmark: every figure is a ratio against a baseline measured in the same run.

1. Sampling the official 100 frames of a 60 s clip at 720p and 1080p: ``stchat.video.io.read_frames``
   against the fastest anchors available in this run -- a plain threaded PyAV decode of every frame
   (keeping the 100), and decord / torchcodec when importable (benchmark-only, never stchat's
   dependencies). decord: ``pip install --target DIR decord`` and put DIR on ``PYTHONPATH``. torchcodec's
   PyPI wheel is built against CUDA torch and loads the system's FFmpeg libraries, so it cannot sit next to
   the CPU torch of ``.venv``: run this script from a scratch environment outside the repo instead
   (Debian 12 shown; the CUDA torch runs on a CPU-only machine)::

       apt-get install -y libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 \
           libavdevice59 libavfilter8
       python3.11 -m venv /tmp/tcvenv
       /tmp/tcvenv/bin/pip install torch==2.13.0 torchcodec==0.17.0 \
           -r <(grep -v '^torch==' requirements.txt)
       PYTHONPATH=.:DIR /tmp/tcvenv/bin/python benchmarks/pipeline.py --only sampling

   Pixels are compared with every anchor.
2. The clip of a 10 s segment (``render_answer``, clip only, superfast/crf 20) against plain ffmpeg
   re-encoding the same segment at the same x264 settings (imageio-ffmpeg's binary), with the audio
   treated as stchat treats it (``-c:a copy``: stchat copies AAC packets) and, for reference, with the
   audio re-encoded to AAC (ffmpeg's default, what stchat did before); and ``--full`` (clip + whole
   annotated video in one pass) against the clip alone.
3. ``stchat probe`` against ``ffmpeg -i`` (imageio-ffmpeg ships no ffprobe, so ``ffmpeg -i`` stands in
   for it: it opens the file and prints the stream facts from the header), both as fresh processes, on
   the first clip and on a 10-minute one (``--probe-long``); and against ``ffprobe`` itself when one is on
   the PATH (a system build, e.g. Debian 12's ``apt-get install ffmpeg``: dynamically linked, so its start
   loads the codec libraries that imageio-ffmpeg's static binary has built in);
   also ``stchat probe --full`` (every packet read, first frame decoded) and the floors any Python command
   starts from: a bare ``python -c pass`` of the same interpreter, ``import argparse``, and ``import re``
   (pip's console-script wrapper imports it before stchat's code runs).

Each pair is run interleaved ``--repeat`` times; the median ratio is printed, by wall time and by CPU time
(user + system of the process and its children: steadier than wall time on a busy machine).

Run: ``.venv/bin/python benchmarks/pipeline.py [--seconds 60] [--repeat 3] [--keep DIR]``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import imageio_ffmpeg
import numpy as np

from stchat.answer import ParsedAnswer
from stchat.pipeline import render_answer
from stchat.video.io import _index_cached, probe, read_frames
from stchat.video.sampling import official_frame_indices

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
REPO = Path(__file__).resolve().parents[1]


def make_clip(path: Path, size: str, seconds: int) -> None:
    """An H.264 clip with texture, motion and a tone: 30 fps, 2 s GOP, B-frames (x264 veryfast)."""
    src = f"testsrc2=size={size}:rate=30:duration={seconds}"
    cmd = [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", src,
           "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
           "-vf", "noise=alls=3:allf=t", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "60",
           "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-movflags", "+faststart", str(path)]
    subprocess.run(cmd, check=True, timeout=1800)


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def measure(fn: Callable[[], object]) -> tuple[float, float, object]:
    c, t = _cpu(), time.perf_counter()
    result = fn()
    return time.perf_counter() - t, _cpu() - c, result


def pair(ours: Callable[[], object], base: Callable[[], object], repeat: int) -> dict[str, float]:
    """Interleaved runs; medians of the per-pair ratios ours/base (wall and CPU)."""
    walls, cpus, t_ours, t_base = [], [], [], []
    for _ in range(repeat):
        w1, c1, _ = measure(ours)
        w0, c0, _ = measure(base)
        walls.append(w1 / w0)
        cpus.append(c1 / max(c0, 1e-9))
        t_ours.append(w1)
        t_base.append(w0)
    return {
        "wall": statistics.median(walls), "cpu": statistics.median(cpus),
        "ours_s": statistics.median(t_ours), "base_s": statistics.median(t_base),
    }


def fmt(r: dict[str, float]) -> str:
    return (f"{r['wall']:.2f}x wall ({r['ours_s']:.2f} s vs {r['base_s']:.2f} s), "
            f"{r['cpu']:.2f}x CPU")


# --------------------------------------------------------------------------- 1. sampling anchors

def pyav_threaded(path: Path, wanted: list[int]) -> np.ndarray:
    """Decode every frame with FFmpeg's threading, keep the wanted ones (swscale RGB, as stchat)."""
    want = set(wanted)
    keep: dict[int, np.ndarray] = {}
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(s)):
            if i in want:
                keep[i] = frame.to_ndarray(format="rgb24")
            if i >= wanted[-1]:
                break
    return np.stack([keep[k] for k in wanted])


def decord_anchor(path: Path, wanted: list[int]) -> np.ndarray:
    import decord

    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=0)
    return vr.get_batch(wanted).asnumpy()


def torchcodec_anchor(path: Path, wanted: list[int]) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    dec = VideoDecoder(str(path), dimension_order="NHWC", seek_mode="exact")
    return dec.get_frames_at(wanted).data.numpy()


def _available(name: str) -> bool:
    try:
        if name == "decord":
            import decord  # noqa: F401
        else:
            from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not measured in this run"
        return False
    return True


def bench_sampling(src: Path, repeat: int) -> None:
    info = probe(src)
    idx = official_frame_indices(info.frame_count)
    ours = read_frames(src, idx)
    anchors: dict[str, Callable[[Path, list[int]], np.ndarray]] = {"threaded PyAV": pyav_threaded}
    for name, fn in (("decord", decord_anchor), ("torchcodec", torchcodec_anchor)):
        if _available(name):
            anchors[name] = fn
        else:
            print(f"    ({name} not importable: not measured)")
    for name, fn in anchors.items():
        theirs = fn(src, idx)
        same = theirs.shape == ours.shape and np.array_equal(theirs, ours)
        diff = "identical pixels" if same else (
            f"mean |diff| {np.abs(theirs.astype(np.int16) - ours).mean():.3f} levels"
            if theirs.shape == ours.shape else f"shape {theirs.shape}")
        r = pair(lambda: read_frames(src, idx), lambda fn=fn: fn(src, idx), repeat)  # type: ignore[misc]
        print(f"[1] {info.height}p sample 100 frames: stchat / {name} = {fmt(r)}; {diff}")


# --------------------------------------------------------------------------- 2. clip vs ffmpeg

def ffmpeg_segment(src: Path, out: Path, start: float, dur: float, audio: str = "copy") -> None:
    cmd = [FFMPEG, "-v", "error", "-y", "-ss", f"{start}", "-t", f"{dur}", "-i", str(src),
           "-c:v", "libx264", "-preset", "superfast", "-crf", "20", "-pix_fmt", "yuv420p",
           "-c:a", audio, "-movflags", "+faststart", str(out)]
    subprocess.run(cmd, check=True, timeout=900)


def bench_clip(src: Path, work: Path, repeat: int, full_too: bool = True) -> None:
    info = probe(src)
    start_s, dur = 20.0, 10.0
    span = (start_s / info.duration_s, (start_s + dur) / info.duration_s)
    ans = ParsedAnswer(
        "stvg", "bench", span=span, boxes={span[0]: (0.1, 0.2, 0.3, 0.6), span[1]: (0.6, 0.2, 0.8, 0.6)}
    )

    def clip() -> object:
        return render_answer(src, ans, out_dir=work / "render", query="a red square", write_annotated=False)

    def full() -> object:
        return render_answer(src, ans, out_dir=work / "full", query="a red square", write_annotated=True)

    r = pair(clip, lambda: ffmpeg_segment(src, work / "ffmpeg.mp4", start_s, dur), repeat)
    print(f"[2] {info.height}p clip of a {dur:.0f} s segment (superfast, crf 20, audio copied by both): "
          f"stchat / ffmpeg = {fmt(r)}")
    r = pair(clip, lambda: ffmpeg_segment(src, work / "ffmpeg_aac.mp4", start_s, dur, "aac"), repeat)
    print(f"    same, ffmpeg re-encoding the audio to AAC: stchat / ffmpeg = {fmt(r)}")
    out = clip()
    first = out.mapped.first_frame  # type: ignore[attr-defined]
    ks = list(range(0, 280, 31))
    ref = read_frames(src, [first + k for k in ks]).astype(np.float64)
    ours = read_frames(out.clip, ks)[:, : info.height].astype(np.float64)  # type: ignore[attr-defined]
    theirs = read_frames(work / "ffmpeg.mp4", ks).astype(np.float64)
    # Boxes are drawn on our picture (from 20 % of the height down): compare the rows above them.
    rows = slice(0, info.height // 6)
    ours_db, theirs_db = psnr(ours[:, rows], ref[:, rows]), psnr(theirs[:, rows], ref[:, rows])
    print(f"    PSNR vs the source above the boxes: stchat {ours_db:.2f} dB, ffmpeg {theirs_db:.2f} dB")
    if full_too:
        r = pair(full, clip, max(1, repeat // 2))
        print(f"    --full ({info.duration_s:.0f} s annotated video + clip, one pass) / clip only = {fmt(r)}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a - b) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# --------------------------------------------------------------------------- 3. probe

def bench_probe(src: Path, work: Path, repeat: int) -> None:
    # No ``timeout=`` on these runs: with one, subprocess waits by polling with sleeps of up to 50 ms,
    # which added ~25 ms to a ~40 ms process (ffmpeg -i measured 66 ms instead of 38 ms).
    # Compiled bytecode as an installed package has it: with PYTHONDONTWRITEBYTECODE set (as in some
    # sandboxes) every run would compile stchat's modules again, which no user's `stchat probe` pays.
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONPYCACHEPREFIX": str(work / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    # What a user types: the console script (``python -m`` would add runpy's imports, ~5 ms).
    script = Path(sys.executable).with_name("stchat")
    stchat = [str(script)] if script.is_file() else [sys.executable, "-m", "stchat.cli"]

    def ours() -> None:
        subprocess.run([*stchat, "probe", str(src)], check=True, env=env, stdout=subprocess.DEVNULL)

    def ffmpeg_i() -> None:  # exits 1 ("no output file"), after printing the stream facts
        subprocess.run([FFMPEG, "-hide_banner", "-i", str(src)], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)

    def ours_full() -> None:
        subprocess.run([*stchat, "probe", "--full", str(src)], check=True, env=env,
                       stdout=subprocess.DEVNULL)

    def python_pass() -> None:
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=env)

    def python_argparse() -> None:  # the floor of any command-line tool built on argparse
        subprocess.run([sys.executable, "-c", "import argparse"], check=True, env=env)

    def python_re() -> None:  # the floor of a pip-installed console script: pip's wrapper imports re
        subprocess.run([sys.executable, "-c", "import re"], check=True, env=env)

    for warm in (ours, ours_full, python_pass, python_argparse, python_re):
        warm()
    repeat = max(15, repeat)  # processes of a few tens of milliseconds: more pairs for a steady median
    r = pair(ours, ffmpeg_i, repeat)
    print(f"[3] stchat probe / ffmpeg -i (fresh processes) = {fmt(r)}")
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        version = subprocess.run([ffprobe, "-version"], capture_output=True, text=True).stdout.split()[2]

        def ffprobe_run() -> None:  # what a user types; prints the same facts as ffmpeg -i
            subprocess.run([ffprobe, "-hide_banner", str(src)], check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)

        ffprobe_run()
        r = pair(ours, ffprobe_run, repeat)
        print(f"    stchat probe / ffprobe {version} ({ffprobe}) = {fmt(r)}")
    else:
        print("    (no ffprobe on the PATH: the ffprobe anchor is skipped)")
    r = pair(ours_full, ffmpeg_i, repeat)
    print(f"    stchat probe --full / ffmpeg -i = {fmt(r)}")
    r = pair(python_pass, ffmpeg_i, repeat)
    print(f"    python -c pass (the interpreter's own start) / ffmpeg -i = {fmt(r)}")
    r = pair(python_argparse, ffmpeg_i, repeat)
    print(f"    python -c 'import argparse' / ffmpeg -i = {fmt(r)}")
    r = pair(python_re, ffmpeg_i, repeat)
    print(f"    python -c 'import re' (what pip's console-script wrapper imports) / ffmpeg -i = {fmt(r)}")

    def ours_in_process() -> None:
        _index_cached.cache_clear()  # no help from an earlier call
        probe(src)

    def pyav_open() -> None:  # the header facts only: no frame count from packets, no decoded frame
        with av.open(str(src)) as c:
            s = c.streams.video[0]
            _ = (c.duration, s.frames, s.average_rate, s.codec_context.width, c.streams.audio)

    r = pair(ours_in_process, pyav_open, repeat)
    print(f"    in process: stchat.video.io.probe / PyAV container open = {fmt(r)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="folder for the generated clips (reused when present)")
    ap.add_argument("--only", choices=("sampling", "clip", "probe"), help="run one part")
    ap.add_argument("--sizes", default="1280x720,1920x1080", help="clip sizes, comma-separated")
    ap.add_argument("--no-full", action="store_true", help="skip the --full vs clip-only measurement")
    ap.add_argument("--probe-long", type=int, default=600, metavar="SECONDS",
                    help="also probe a clip this long (640x360; 0: skip)")
    args = ap.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="stchat-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; PyAV {av.__version__}")
    clips = {}
    for size in args.sizes.split(","):
        path = work / f"bench_{size}_{args.seconds}s.mp4"
        if not path.exists():
            make_clip(path, size, args.seconds)
        clips[size] = path
    if args.only in (None, "sampling"):
        for path in clips.values():
            bench_sampling(path, args.repeat)
    if args.only in (None, "clip"):
        for path in clips.values():
            bench_clip(path, work, args.repeat, full_too=not args.no_full)
    if args.only in (None, "probe"):
        bench_probe(next(iter(clips.values())), work, args.repeat)
        if args.probe_long:  # the case: a long file's index is ten times the samples to check
            long_clip = work / f"bench_640x360_{args.probe_long}s.mp4"
            if not long_clip.exists():
                make_clip(long_clip, "640x360", args.probe_long)
            print(f"    on a {args.probe_long} s clip ({long_clip.name}):")
            bench_probe(long_clip, work, args.repeat)
    print(f"files in {work}")


if __name__ == "__main__":
    main()
