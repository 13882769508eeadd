"""How fast the official-identical scorer is: ``python benchmarks/score.py [--n 10000] [--captions]
[--official-src DIR --pairs 5]``.

Builds N synthetic result records per task (seeded; realistic answers: a span and ~20 frame boxes per
ST record), writes them in the official layout, and times ``score_dir`` (file reading included).

With ``--official-src`` (a checkout of appletea233/LLaVA-ST, run as a separate process, never imported
here) it also times the official scorer against ``stchat eval score`` on the same N STVG records: both as
the command a user runs (a fresh process: start-up, imports, reading, scoring, writing) and as the scoring
call alone (``load_jsonl`` + ``eval_stvg`` against ``read_records`` + ``eval_stvg``, each in its own
process). The two run in interleaved pairs, alternating which goes first; the ratio stchat / official is
the median over the pairs, in CPU time (user + system of the child: a loaded machine stretches wall time
for both alike, but unevenly) and in wall time.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stchat.eval.captions import caption_score
from stchat.eval.results import read_records, write_records
from stchat.eval.score import score_dir, score_records
from stchat.processing.decode import replace_and_normalize


def _tok_box(k: list[int]) -> str:
    return f"[<WIDTH-{k[0]:03d}><HEIGHT-{k[1]:03d}><WIDTH-{k[2]:03d}><HEIGHT-{k[3]:03d}>]"


def _st_record(rng: random.Random, task: str) -> dict:
    s0 = rng.randrange(0, 2000)
    split = [s0, s0 + rng.randrange(100, 3000)]
    d = split[1] - split[0] + 1
    w, h = 1280, 720
    fids = [split[0] + round(i / 99 * (d - 1)) for i in range(100)]
    a, b = sorted(rng.sample(range(100), 2))
    gt = {str(fids[k]): [100.0 + k, 50.0, 400.0 + k, 300.0] for k in range(a, b + 1)}
    ks = sorted(rng.sample(range(100), 20))
    pairs = " ".join(f"<TEMP-{k:03d}>: " + _tok_box([10 + k % 5, 7, 31, 41]) for k in ks)
    if task == "elc":
        outputs = f"Ends in <TEMP-{b:03d}>, a person walks to the car. " + pairs
    else:
        outputs = "{" + f"<TEMP-{a:03d}><TEMP-{b:03d}>" + "} " + pairs
    rec = {"split": split, "width": w, "height": h, "outputs": outputs, "gt": {"svg": gt}}
    rec["converted_outputs"] = replace_and_normalize(outputs)
    if task != "svg":
        rec["gt"]["tvg"] = [fids[a], fids[b]]
    if task == "elc":
        rec["gt"]["caption"] = "a person walks towards the car"
    return rec


def build(root: Path, n: int, with_elc: bool) -> None:
    rng = random.Random(0)
    for task in ("stvg", "svg") + (("elc",) if with_elc else ()):
        write_records(
            root / "m/s/st-align/vidstg" / f"{task}.json", (_st_record(rng, task) for _ in range(n))
        )
    tvg = []
    for _ in range(n):
        a, b = sorted(rng.sample(range(100), 2))
        out = "{" + f"<TEMP-{a:03d}><TEMP-{b:03d}>" + "}"
        tvg.append({"gt": [0.2, 0.6], "outputs": out, "converted_outputs": replace_and_normalize(out)})
    write_records(root / "m/s/tvg/charades_sta/charades_sta.json", tvg)
    rec = []
    for _ in range(n):
        k = sorted(rng.sample(range(100), 2)) + sorted(rng.sample(range(100), 2))
        out = _tok_box([k[0], k[2], k[1], k[3]])
        rec.append(
            {"gt_bbox": [0.1, 0.1, 0.5, 0.5], "outputs": out, "converted_outputs": replace_and_normalize(out)}
        )
    write_records(root / "m/s/rec/refcoco/refcoco.json", rec)


def build_stvg(root: Path, n: int) -> Path:
    """A result folder holding only ``n`` STVG records (the issue's comparison); returns the file."""
    rng = random.Random(0)
    path = root / "m/s/st-align/vidstg/stvg.json"
    write_records(path, (_st_record(rng, "stvg") for _ in range(n)))
    return path


# The scoring call alone, in a fresh process; prints its CPU and wall seconds on the last line. The
# official one runs with the official checkout on sys.path (cwd), nothing of it is copied here.
_OFFICIAL_CALL = """
import sys, time
from inference.src.metrics import eval_stvg
from inference.src.utils import load_jsonl
t0, c0 = time.perf_counter(), time.process_time()
eval_stvg(load_jsonl(sys.argv[1]), "stvg")
print(f"@@ {time.process_time() - c0} {time.perf_counter() - t0}")
"""
_STCHAT_CALL = """
import sys, time
from stchat.eval.metrics import eval_stvg
from stchat.eval.results import read_records
t0, c0 = time.perf_counter(), time.process_time()
eval_stvg(read_records(sys.argv[1]).records, "stvg", captions=None)
print(f"@@ {time.process_time() - c0} {time.perf_counter() - t0}")
"""


def _child(cmd: list[str], cwd: str | None, env: dict[str, str]) -> tuple[float, float, str]:
    """(child CPU seconds, wall seconds, stdout) of one command run to completion."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), wall, done.stdout


def _call_times(out: str) -> tuple[float, float]:
    line = next(ln for ln in reversed(out.splitlines()) if ln.startswith("@@ "))
    cpu, wall = line.split()[1:]
    return float(cpu), float(wall)


def compare_official(official_src: Path, n: int, pairs: int) -> None:
    """Interleaved pairs stchat / official on the same N STVG records; prints per-pair and median ratios."""
    if not (official_src / "inference" / "multi_task_eval.py").is_file():
        sys.exit(f"no inference/multi_task_eval.py under {official_src}")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env_off = dict(env, PYTHONPATH=str(official_src.resolve()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        path = build_stvg(root, n)
        ours_out = Path(tmp) / "stchat_total_eval.json"
        official_out = root / "total_eval.json"
        cli = {
            "stchat": ([sys.executable, "-m", "stchat.cli", "eval", "score", "--result-dir", str(root),
                        "--no-captions", "--out", str(ours_out)], None, env),
            "official": ([sys.executable, "-m", "inference.multi_task_eval", "--result_dir", str(root)],
                         str(official_src), env_off),
        }  # fmt: skip
        call = {
            "stchat": ([sys.executable, "-c", _STCHAT_CALL, str(path)], None, env),
            "official": ([sys.executable, "-c", _OFFICIAL_CALL, str(path)], str(official_src), env_off),
        }
        ratios: dict[str, list[float]] = {"cli_cpu": [], "cli_wall": [], "call_cpu": [], "call_wall": []}
        for k in range(pairs):
            order = ["stchat", "official"] if k % 2 == 0 else ["official", "stchat"]
            cli_t: dict[str, tuple[float, float]] = {}
            call_t: dict[str, tuple[float, float]] = {}
            for who in order:
                cpu, wall, _ = _child(*cli[who])
                cli_t[who] = (cpu, wall)
                official_out.unlink(missing_ok=True)  # the official script writes into the result dir
            for who in order:
                call_t[who] = _call_times(_child(*call[who])[2])
            ratios["cli_cpu"].append(cli_t["stchat"][0] / cli_t["official"][0])
            ratios["cli_wall"].append(cli_t["stchat"][1] / cli_t["official"][1])
            ratios["call_cpu"].append(call_t["stchat"][0] / call_t["official"][0])
            ratios["call_wall"].append(call_t["stchat"][1] / call_t["official"][1])
            print(
                f"pair {k + 1} (CPU s / wall s): command stchat "
                f"{cli_t['stchat'][0]:.2f} / {cli_t['stchat'][1]:.2f},"
                f" official {cli_t['official'][0]:.2f} / {cli_t['official'][1]:.2f};"
                f" scoring call stchat {call_t['stchat'][0]:.2f} / {call_t['stchat'][1]:.2f},"
                f" official {call_t['official'][0]:.2f} / {call_t['official'][1]:.2f}"
            )
        med = {k: statistics.median(v) for k, v in ratios.items()}
        print(
            f"stchat / official on {n} STVG records, median of {pairs} interleaved pairs: "
            f"command {med['cli_cpu']:.3f}x CPU ({med['cli_wall']:.3f}x wall), "
            f"scoring call {med['call_cpu']:.3f}x CPU ({med['call_wall']:.3f}x wall)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000, help="records per task")
    ap.add_argument("--captions", action="store_true", help="also score ELC (Java caption metrics)")
    ap.add_argument("--official-src", type=Path, help="LLaVA-ST checkout: compare against its scorer")
    ap.add_argument("--pairs", type=int, default=5, help="interleaved stchat/official pairs")
    args = ap.parse_args()
    if args.official_src is not None:
        compare_official(args.official_src, args.n, args.pairs)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root, args.n, args.captions)
        # CPU time next to wall time: on a shared machine the wall clock mostly measures the neighbours.
        t0, c0 = time.perf_counter(), time.process_time()
        report = score_dir(root, captions=caption_score if args.captions else None)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        tasks = ", ".join(f"{k}" for k in report.official)
        print(
            f"scored {len(report.official)} files x {args.n} records ({tasks}): "
            f"{total:.2f} s wall, {cpu:.2f} s CPU"
        )
        # Baseline measured in the same run: only reading and JSON-decoding the same file (the floor any
        # scorer pays); the ratio says what scoring adds on top of it.
        for name, ts in report.task_scores.items():
            path = report.extra[name]["path"]
            c1 = time.process_time()
            records = read_records(path).records
            read_cpu = time.process_time() - c1
            c2 = time.process_time()
            score_records(records, ts.task, captions=None)
            score_cpu = time.process_time() - c2
            print(
                f"  {name:14s} read {read_cpu:6.2f} s CPU, score {score_cpu:6.2f} s CPU: "
                f"(read + score) / read = {(read_cpu + score_cpu) / max(read_cpu, 1e-9):5.2f}x"
            )


if __name__ == "__main__":
    main()
