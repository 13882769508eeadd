"""``stchat probe``'s fast path (the MP4 index read in pure Python) says exactly what the full probe says,
falls back to it for what it cannot vouch for (cut-off files among them), and imports no decoder."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import REPO, SYNTHETIC_DIR, official_examples_dir

from stchat.cli import build_parser, main
from stchat.commands.probe import parse_plain
from stchat.video.io import probe
from stchat.video.quickprobe import quick_probe

SYNTHETIC = sorted(SYNTHETIC_DIR.glob("syn_*.mp4"))


def _write(path: Path, n: int = 30, size: tuple[int, int] = (96, 64), rotation: int | None = None,
           pts: list[int] | None = None, bframes: bool = True, audio: str | None = None,
           rate: int = 48000) -> Path:
    """An H.264 clip (25 fps, ms clock), optionally with AAC audio, rotation or irregular timestamps."""
    w, h = size
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        vs.codec_context.options = {"preset": "veryfast", "g": "10", "bf": "3" if bframes else "0"}
        if rotation is not None:
            vs.set_display_rotation(rotation)
        aus = out.add_stream("aac", rate=rate, layout=audio) if audio else None
        for i in range(n):
            img = np.full((h, w, 3), (7 * i) % 256, np.uint8)
            img[: h // 3, : w // 3] = 255 - img[0, 0]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = pts[i] if pts is not None else i * 40
            frame.time_base = Fraction(1, 1000)
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if aus is not None:
            channels = aus.codec_context.channels
            for k in range(0, int(n * 0.04 * rate), 1024):
                block = np.zeros((channels, 1024), np.float32)
                af = av.AudioFrame.from_ndarray(block, format="fltp", layout=audio)
                af.sample_rate, af.pts = rate, k
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


@pytest.fixture(scope="module")
def gen(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("quickprobe")
    _write(d / "plain.mp4")
    _write(d / "nob.mp4", bframes=False)
    _write(d / "audio.mp4", audio="stereo")
    _write(d / "mono44.mp4", audio="mono", rate=44100)
    _write(d / "odd_crop.mp4", size=(100, 58))  # cropped SPS: the decoded size is not a multiple of 16
    for rot in (90, -90, 180):
        _write(d / f"rot{rot}.mp4", rotation=rot)
    _write(d / "vfr.mp4", n=10, pts=[0, 40, 80, 200, 240, 400, 440, 480, 520, 900])
    _write(d / "quicktime.mov")
    _write(d / "low_rate_aac.mp4", audio="mono", rate=22050)  # could be HE-AAC: only decoding can tell
    _write(d / "matroska.mkv")
    return d


def _same_as_full(path: Path) -> bool:
    """True when the fast path answered (and then equals the full probe); False when it declined."""
    fast = quick_probe(path)
    if fast is None:
        return False
    assert fast == probe(path), path
    return True


@pytest.mark.parametrize("path", SYNTHETIC, ids=[p.stem for p in SYNTHETIC])
def test_fast_path_equals_full_probe_on_the_synthetic_clips(path):
    assert _same_as_full(path)


def test_fast_path_equals_full_probe_on_the_official_clips():
    root = official_examples_dir()
    if root is None:
        pytest.skip("official demo clips not found: set STCHAT_VIDEOS or place them in ../shared/videos")
    clips = sorted(root.glob("*/*.mp4"))
    assert clips
    # Real-world files: edit lists, negative composition offsets, 29.97 and odd rates, SAR in the SPS.
    assert all(_same_as_full(p) for p in clips)


@pytest.mark.parametrize(
    "name",
    ["plain", "nob", "audio", "mono44", "odd_crop", "rot90", "rot-90", "rot180", "vfr", "quicktime.mov"],
)
def test_fast_path_equals_full_probe_on_generated_clips(gen, name):
    path = gen / (name if "." in name else f"{name}.mp4")
    assert _same_as_full(path)


@pytest.mark.parametrize("name", ["low_rate_aac.mp4", "matroska.mkv"])
def test_fast_path_declines_what_it_cannot_vouch_for(gen, name):
    path = gen / name
    assert quick_probe(path) is None
    assert probe(path).frame_count > 0  # the full probe still reads it


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.95])
def test_cut_off_files_go_to_the_full_probe_and_are_reported(fraction, tmp_path, capsys):
    data = (SYNTHETIC_DIR / "syn_a_640x360_25fps_tone.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: int(len(data) * fraction)])
    assert quick_probe(path) is None  # samples past the end of the file: not for the fast path
    info = probe(path)
    assert info.truncated
    assert main(["probe", str(path)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated" in err[0] and f"{info.frame_count} frames" in err[0]


def test_a_file_missing_only_its_last_bytes_is_left_to_the_full_probe(tmp_path, capsys):
    """The last audio packets are gone: the fast path checks every track's samples and declines."""
    data = (SYNTHETIC_DIR / "syn_a_640x360_25fps_tone.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[:-100])
    assert quick_probe(path) is None
    assert main(["probe", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts == json.loads(json.dumps({**probe(path).to_dict(), "warning": probe(path).warning()}))


def _cut_keeping_boxes_whole(data: bytes, cut: int) -> bytes:
    """The file less its last ``cut`` bytes, with the size of its last top-level box (``mdat``) shrunk to
    match: every box still fits the file, so only the sample tables tell that samples are missing."""
    pos, last = 0, 0
    while pos < len(data):
        last = pos
        pos += int.from_bytes(data[pos : pos + 4], "big")
    assert pos == len(data) and data[last + 4 : last + 8] == b"mdat"
    size = int.from_bytes(data[last : last + 4], "big") - cut
    return data[:last] + size.to_bytes(4, "big") + data[last + 4 : len(data) - cut]


@pytest.mark.parametrize("cut", [0, 1, 100, 5000, 60_000])
def test_samples_past_the_end_are_found_from_the_tables_alone(cut, tmp_path):
    """moov first and the samples up to the file's last byte (the layout where the cheap per-chunk bound
    cannot vouch for the file): the last chunks' sizes are summed, and one missing byte declines."""
    data = (SYNTHETIC_DIR / "syn_a_640x360_25fps_tone.mp4").read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(_cut_keeping_boxes_whole(data, cut))
    if cut == 0:
        assert _same_as_full(path)
    else:
        assert quick_probe(path) is None


@pytest.mark.parametrize("seed", range(40))
def test_the_in_file_check_agrees_with_every_sample_summed(seed):
    """Random chunk tables (runs of chunks, samples per chunk, sizes; one huge sample in some, so that
    many chunks fall within its reach of the end): the check declines exactly when some sample's last
    byte lies past the end of the file, as summing every sample says."""
    import random

    from stchat.video.quickprobe import _check_in_file, _Track, _Unsure

    rng = random.Random(seed)
    t = _Track()
    firsts, pers, chunks, sizes = [], [], [], []
    n_chunks = rng.randint(1, 400)
    pos, ends = 1000, []
    for c in range(1, n_chunks + 1):
        if c == 1 or rng.random() < 0.5:
            firsts.append(c)
            pers.append(rng.randint(1, 4))
        chunks.append(pos)
        for _ in range(pers[-1]):
            sizes.append(rng.randint(1, 300) if rng.random() > 0.002 else 50_000)
            pos += sizes[-1]
        ends.append(pos)
        pos += rng.choice([0, 0, 17])  # another track's bytes between chunks, sometimes
    if seed % 2:  # chunks in another order in the table than in the file
        order = list(range(n_chunks))
        rng.shuffle(order)
        chunks = [chunks[i] for i in order]
        ends = [ends[i] for i in order]
        firsts, pers = list(range(1, n_chunks + 1)), [1] * n_chunks
        sizes = [rng.randint(1, 300) for _ in range(n_chunks)]
        ends = [c + s for c, s in zip(chunks, sizes, strict=True)]
    t.stsc, t.chunks, t.sizes = (tuple(firsts), tuple(pers)), chunks, sizes
    last = max(ends)
    for file_size in (last + 100, last, last - 1, last - rng.randint(2, 400)):
        try:
            _check_in_file(t, file_size)
            declined = False
        except _Unsure:
            declined = True
        assert declined == (last > file_size), (seed, file_size)


@pytest.mark.parametrize("seed", range(60))
def test_frame_times_agree_with_sorting_every_time(seed):
    """Random ``stts``/``ctts`` tables (one or several durations, offsets on or off the frame grid, runs of
    one sample or longer, empty runs, repeated times): first/last time and the smallest/largest step equal
    what expanding every sample and sorting gives."""
    import random

    from stchat.video.quickprobe import _frame_times, _Track

    rng = random.Random(seed)
    n = rng.randint(1, 300)
    t = _Track()
    t.sizes = [1] * n
    d = rng.choice([1, 512, 1001])
    if seed % 3 == 0:  # several durations (variable frame rate)
        counts, left = [], n
        while left:
            counts.append(rng.randint(1, left))
            left -= counts[-1]
        t.stts = (tuple(counts), tuple(rng.choice([d, 2 * d, d + 7]) for _ in counts))
    else:
        t.stts = ((n,), (d,))
    if seed % 4 != 1:  # composition offsets: B-frame-like permutations, or arbitrary
        runs, left = [], n
        while left:
            runs.append(min(left, rng.choice([1, 1, 1, 2, 5]) if seed % 5 else rng.choice([0, 1])))
            left -= runs[-1]
        grid = seed % 2 == 0
        offs = [d * rng.randint(0, 3) if grid else rng.randint(0, 3 * d) for _ in runs]
        t.ctts = (tuple(runs), tuple(offs))
    dts, acc = [], 0
    for c, delta in zip(*t.stts, strict=True):
        for _ in range(c):
            dts.append(acc)
            acc += delta
    per = [o for c, o in zip(*t.ctts, strict=True) for _ in range(c)] if t.ctts else [0] * n
    cts = sorted(a + o for a, o in zip(dts, per, strict=True))
    steps = [b - a for a, b in zip(cts[:-1], cts[1:], strict=True)]
    assert _frame_times(t) == (cts[0], cts[-1], min(steps, default=0), max(steps, default=0))


def test_moov_at_the_end_and_cut_off_is_refused_like_the_full_probe(gen, tmp_path, capsys):
    data = (gen / "plain.mp4").read_bytes()  # written without faststart: the index is at the end
    path = tmp_path / "no_index.mp4"
    path.write_bytes(data[: len(data) // 2])
    assert quick_probe(path) is None
    assert main(["probe", str(path)]) == 2
    assert "stchat: error:" in capsys.readouterr().err


def test_cli_fast_and_full_print_the_same(capsys):
    path = SYNTHETIC_DIR / "syn_e_640x360_29.97fps_tone.mp4"
    outputs = []
    for extra in ([], ["--full"]):
        assert main(["probe", str(path), "--json", *extra]) == 0
        outputs.append(json.loads(capsys.readouterr().out))
    assert outputs[0] == outputs[1]
    assert outputs[0]["frame_count"] == probe(path).frame_count and outputs[0]["warning"] is None


def test_probe_command_imports_no_decoder_numpy_model_code_or_slow_stdlib():
    path = SYNTHETIC_DIR / "syn_b_1280x720_30fps_tone_distractor.mp4"
    code = (
        "import sys\n"
        "from stchat.cli import main\n"
        f"assert main(['probe', {str(path)!r}]) == 0\n"
        # typing, pathlib and argparse (with the parser it builds) cost ~30 ms of the command's ~90 ms
        "heavy = ('av', 'numpy', 'cv2', 'torch', 'transformers', 'PIL', 'dataclasses', 'fractions',\n"
        "         'typing', 'pathlib', 'argparse')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_forged_sample_counts_are_declined_without_building_huge_tables(tmp_path):
    """Counts come from the file: a forged stsz (fixed size, 4 billion samples) must not be expanded."""
    data = bytearray((SYNTHETIC_DIR / "syn_c_640x360_30fps_noaudio_longgop.mp4").read_bytes())
    at = data.index(b"stsz")
    data[at + 8 : at + 16] = (1).to_bytes(4, "big") + (0xFFFFFFF0).to_bytes(4, "big")
    path = tmp_path / "forged.mp4"
    path.write_bytes(bytes(data))
    assert quick_probe(path) is None



@pytest.mark.parametrize("args", [["V"], ["V", "--json"], ["--full", "V"], ["--json", "V", "--full"],
                                  ["--full", "--json", "V"], ["dir/V.mp4"]])
def test_plain_probe_command_line_reads_as_argparse_reads_it(args):
    plain = parse_plain(args)
    assert plain is not None
    assert vars(plain) == vars(build_parser(["probe"]).parse_args(["probe", *args]))


# argparse's answer to each: a namespace (its fields checked) or an exit (help, usage error)
OTHER_LINES = [
    ([], "exit"), (["-h"], "exit"), (["V", "--help"], "exit"), (["V", "W"], "exit"),
    (["V", "--fast"], "exit"), (["-x.mp4"], "exit"),
    (["--js", "V"], {"json": True, "video": "V"}),  # an unambiguous abbreviation
    (["--json", "--json", "V"], {"json": True, "full": False}),
    (["--", "-x.mp4"], {"video": "-x.mp4"}),
]


@pytest.mark.parametrize(("args", "argparse_says"), OTHER_LINES)
def test_any_other_probe_command_line_goes_to_argparse(args, argparse_says, capsys):
    assert parse_plain(args) is None
    parser = build_parser(["probe"])
    if argparse_says == "exit":
        with pytest.raises(SystemExit):
            parser.parse_args(["probe", *args])
    else:
        parsed = vars(parser.parse_args(["probe", *args]))
        assert {k: parsed[k] for k in argparse_says} == argparse_says
