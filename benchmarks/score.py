"""How fast the official-identical scorer is: ``python benchmarks/score.py [--n 10000] [--captions]``.

Builds N synthetic result records per task (seeded; realistic answers: a span and ~20 frame boxes per
ST record), writes them in the official layout, and times ``score_dir`` (file reading included).
"""

from __future__ import annotations

import argparse
import random
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000, help="records per task")
    ap.add_argument("--captions", action="store_true", help="also score ELC (Java caption metrics)")
    args = ap.parse_args()
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
