"""Build ``docs/sweep_example.png``: the ``stchat eval sweep`` figure on simulated answers.

The tiny test model's answers score ~0 at every temperature, which makes an empty figure. This script
instead writes, for each temperature, official-layout STVG result files whose answers are the synthetic
benchmark's exact ground truth perturbed by temperature-dependent noise (time shift, box jitter, and a
growing share of unparsable answers), then scores and plots them with the real sweep code
(``scored_samples`` -> ``summarise_sweep`` -> ``write_sweep_outputs``). The numbers illustrate the figure;
they are not measurements of LLaVA-ST.

    .venv/bin/python docs/make_sweep_example.py [OUT_DIR]
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPERATURES = (0.01, 0.1, 0.5, 1.0, 1.5)


def _tok(kind: str, k: float) -> str:
    return f"<{kind}-{min(99, max(0, round(k))):03d}>"


def noisy_answer(item: dict, rng: random.Random, temperature: float) -> str:
    """The GT answer in the model's token format, perturbed with noise that grows with ``temperature``."""
    from stchat.eval.official import sampled_frame_ids

    if rng.random() < 0.12 * temperature:
        return "I am not sure."  # an unparsable answer scores 0
    m = item["meta"]
    a, b = m["split"]
    w, h = m["width"], m["height"]
    ids = sampled_frame_ids([a, b])
    track = {int(k): v for k, v in m["spatial_token"]["<bboxes>"].items()}
    shift = rng.gauss(0, 1 + 10 * temperature)  # in sampled frames
    jitter = 0.5 + 5 * temperature  # in coordinate tokens (1/99 of the frame)
    ks = (m["time_token"]["<s>"] - a) / (b - a) * 99 + shift + rng.gauss(0, jitter)
    ke = (m["time_token"]["<e>"] - a) / (b - a) * 99 + shift + rng.gauss(0, jitter)
    pairs = []
    for k, f in enumerate(ids):
        if f in track and 0 <= k + shift <= 99:
            x, y, bw, bh = track[f]
            box = [x / w * 99, y / h * 99, (x + bw) / w * 99, (y + bh) / h * 99]
            box = [v + rng.gauss(0, jitter) for v in box]
            pairs.append(f"{_tok('TEMP', k + shift)}: [{_tok('WIDTH', box[0])}{_tok('HEIGHT', box[1])}"
                         f"{_tok('WIDTH', box[2])}{_tok('HEIGHT', box[3])}]")
    return "{" + _tok("TEMP", ks) + _tok("TEMP", ke) + "} " + ", ".join(pairs)


def main(out_dir: Path) -> Path:
    from stchat.eval.report import scored_samples
    from stchat.eval.samples import load_samples
    from stchat.eval.sweep import setting_label, summarise_sweep, write_sweep_outputs
    from stchat.eval.synthetic_bench import make_synthetic_benchmark
    from stchat.processing.decode import replace_and_normalize

    work = Path(tempfile.mkdtemp(prefix="sweep_example_"))
    try:
        (entry,) = make_synthetic_benchmark(work / "bench", REPO / "tests" / "fixtures" / "synthetic",
                                            tasks=("stvg",))
        items = json.loads(Path(entry.ann_path).read_text())
        samples = load_samples(entry)
        per_setting = {}
        for t in TEMPERATURES:
            rng = random.Random(f"sweep-example:{t}")
            label = setting_label("temperature", t)
            res = work / "res" / "simulated" / label / "st-align" / "vidstg" / "stvg.json"
            res.parent.mkdir(parents=True)
            with open(res, "w") as fh:
                for rep in range(4):  # 4 noisy answers per item, so each setting has ~70 samples
                    for item, s in zip(items, samples, strict=True):
                        out = noisy_answer(item, rng, t)
                        rec = {**s.record, "outputs": out, "converted_outputs": replace_and_normalize(out),
                               "id": f"{s.sample_id}.{rep}"}
                        fh.write(json.dumps(rec) + "\n")
            _, per = scored_samples(res.parents[2], captions=False)
            per_setting[label] = per["stvg"]
        summary = summarise_sweep("temperature", per_setting)
        paths = write_sweep_outputs(summary, out_dir, note="simulated answers: synthetic ground truth + "
                                    "temperature-dependent noise (illustration, not LLaVA-ST output)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return paths["png"]


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="sweep_out_"))
    print(main(target))
