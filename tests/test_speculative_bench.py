"""``benchmarks/decoding.py`` replay mode (#11): saved answers -> the passes the drafter would need."""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

from transformers import AutoTokenizer

from stchat.processing.decode import decode_output

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("decoding_bench", REPO / "benchmarks" / "decoding.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)  # type: ignore[union-attr]


def test_replay_of_saved_normalized_answers(golden_model_dir: Path, tmp_path: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(golden_model_dir))
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    rng = random.Random(1)
    texts = [bench.released_grammar_answer(rng) for _ in range(8)]
    ids = [tok(t, add_special_tokens=False).input_ids + [eos] for t in texts]
    lines = []
    for i, x in enumerate(ids):
        _, normalized = decode_output(tok, x)
        lines.append(json.dumps({"id": i, "converted_outputs": normalized}))  # what eval records keep
    (tmp_path / "results.jsonl").write_text("\n".join(lines) + "\n")
    # The normalized text maps back to exactly the model's ids.
    back = bench.replay_ids(bench.read_records(tmp_path / "results.jsonl"), tok)
    assert [b for _, b in back] == ids
    out = tmp_path / "report.json"
    assert bench.main(["--model", str(golden_model_dir), "--replay", str(tmp_path / "results.jsonl"),
                       "--synthetic-replay", "5", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    for key in ("replay", "synthetic_replay"):
        s = report[key]["summary"]
        assert s["passes_ratio"] >= 2.5, s  # the STVG acceptance bar on 60-100-entry answers
        assert all(60 * 8 < r["tokens"] for r in report[key]["rows"])
