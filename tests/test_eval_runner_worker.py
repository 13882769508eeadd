"""Worker process of the runner kill/resume tests (``python tests/test_eval_runner_worker.py BENCH OUT N T``).

Runs the real tiny golden model over the first N STVG samples of a synthetic benchmark through the
runner's crash-safe loop (``run_distributed``: one process, or one rank of a torchrun launch with a merge
at the end). No test functions live here; pytest collects nothing from this file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN_MODEL = REPO / "tests" / "fixtures" / "golden" / "model"
# The official STVG suffix (docs/official_quirks.md#task-questions), appended without a separator.
STVG_SUFFIX = (
    "Please firstly give the timestamps, and then give the spatial bounding box corresponding to each "
    "timestamp in the time period."
)


def stvg_samples(bench: Path, n: int) -> list:
    from stchat.eval.samples import Sample
    from stchat.eval.synthetic_bench import load_manifest

    entry = next(e for e in load_manifest(bench / "benchmark.json") if e.name == "stvg")
    items = json.loads(Path(entry.ann_path).read_text())[:n]
    out = []
    for i, it in enumerate(items):
        query = it["conversations"][0]["value"] + STVG_SUFFIX
        video = str(Path(entry.data_folder) / it["video_path"])
        rec = {"data_type": "video", "video_path": video, "prompt": query, "split": it["meta"]["split"],
               "width": it["meta"]["width"], "height": it["meta"]["height"], "frame_num": 100}
        out.append(Sample(sample_id=str(i), record=rec, query=query, modality="video", media_path=video,
                          split=it["meta"]["split"]))
    return out


def run_once(bench: Path, final: Path, n: int, max_new: int) -> None:
    """One process's share of the run (all of it when not launched by torchrun)."""
    import torch

    from stchat.eval import distributed as D
    from stchat.eval.engine import Decoding, Engine
    from stchat.eval.writer import run_distributed

    torch.set_num_threads(1)  # two ranks share two cores; also makes every run use the same kernels
    info = D.dist_info()
    joined = D.init_process_group(info)
    try:
        engine = Engine(str(GOLDEN_MODEL), device="cpu", dtype="float32",
                        decoding=Decoding(max_new_tokens=max_new))
        run_distributed(stvg_samples(bench, n), engine, final, progress=False)
    finally:
        if joined:
            D.destroy_process_group()


def main(argv: list[str]) -> int:
    run_once(Path(argv[0]), Path(argv[1]), int(argv[2]), int(argv[3]))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main(sys.argv[1:]))
