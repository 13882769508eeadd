"""Check ``stchat eval score`` against the official evaluator on the same synthetic result files.

Usage: ``python benchmarks/compare_official_eval.py --official-src DIR [--n 500]`` where DIR is a checkout
of appletea233/LLaVA-ST (it must contain ``inference/multi_task_eval.py``; nothing is copied from it, it
is run as a separate process). Exit code 0 when every official key has the same value, where mean sIoU
/ vIoU may differ in the last bit only (the official per-record sum runs in a ``set``'s hash order, which
changes between its own runs).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from score import build  # benchmarks/score.py: the synthetic result generator

from stchat.eval.captions import caption_score
from stchat.eval.score import score_dir

ORDER_SENSITIVE = {"msiou", "mstiou"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--official-src", required=True, type=Path)
    ap.add_argument("--n", type=int, default=500)
    args = ap.parse_args()
    if not (args.official_src / "inference" / "multi_task_eval.py").is_file():
        print(f"no inference/multi_task_eval.py under {args.official_src}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "results"
        build(root, args.n, with_elc=True)
        env = dict(os.environ, PYTHONPATH=str(args.official_src))
        subprocess.run(
            [sys.executable, "-m", "inference.multi_task_eval", "--result_dir", str(root)],
            cwd=args.official_src,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        official = json.loads((root / "total_eval.json").read_text())
        (root / "total_eval.json").unlink()
        ours = score_dir(root, captions=caption_score).to_json(with_extra=False)
    bad = 0
    for name, values in official.items():
        for key, want in values.items():
            got = ours.get(name, {}).get(key)
            same = got == want
            if not same and key in ORDER_SENSITIVE and isinstance(got, float):
                same = abs(got - want) <= 2 * math.ulp(want)
            print(f"{'ok ' if same else 'BAD'} {name:14s} {key:14s} official={want!r} ours={got!r}")
            bad += not same
    if list(official) != [k for k in ours if k in official] or set(official) != set(ours):
        print("BAD result names differ", list(official), list(ours))
        bad += 1
    print("identical" if bad == 0 else f"{bad} difference(s)")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
