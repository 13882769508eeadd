"""Decoding benchmark (#11): speculative (grammar drafter + exact verification) against plain greedy decoding.

Every figure is a ratio against the plain loop measured in the same run, on the same inputs, interleaved
(plain, speculative, plain, ...). Per input it records decoder passes, generated tokens, tokens per pass,
generation wall time and CPU time (user+system of this process: steadier than wall time on a busy machine),
and whether both answers are the same token ids.

Modes (combine freely):

- ``--golden``: the golden fixture models' cases (``tests/fixtures/golden*``), prompt ids and visual
  features from the fixture, ``--max-new-tokens`` per case.
- ``--clips N``: N generated demo clips (:mod:`stchat.demo.world`), an STVG question about each clip's
  target, answered by ``--model`` (default: the embedded demo model) through ``StableChat.ground``.
  Runs unchanged on a GPU: ``--device cuda --model /path/to/LLaVA-ST-Qwen2-7B``.
- ``--replay FILE ...``: no model run. Answers you already have -- eval result JSONL / ``answer.json``
  records (``output_ids``, else ``raw_text``, else the normalized text) or plain text files, one answer
  per line -- and the passes the drafter would need if those were the model's greedy outputs. Normalized
  numbers (``0.12121``) are turned back into coordinate tokens (``round(x * 99)``). The tokenizer comes
  from ``--model``.
- ``--synthetic-replay N``: N answers in the released STVG grammar (60-100 entries, the box holding or
  drifting by a bin now and then), replayed as above.

Run: ``.venv/bin/python benchmarks/decoding.py --golden --clips 30 --synthetic-replay 20 [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stchat.speculative import DecodeStats, GrammarDrafter, replay, speculative_generate  # noqa: E402


def _timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - w, time.process_time() - c


def _row(name: str, plain_ids: list[int], spec_ids: list[int], plain_s: tuple[float, float],
         spec_s: tuple[float, float], spec_stats: DecodeStats, plain_passes: int) -> dict[str, Any]:
    return {
        "name": name, "identical": plain_ids == spec_ids, "tokens": len(plain_ids),
        "passes_plain": plain_passes, "passes_spec": spec_stats.decoder_passes,
        "drafted": spec_stats.drafted_tokens, "accepted": spec_stats.accepted_tokens,
        "wall_plain_s": plain_s[0], "wall_spec_s": spec_s[0],
        "cpu_plain_s": plain_s[1], "cpu_spec_s": spec_s[1],
    }


# ----------------------------------------------------------------------------- golden fixture models
def run_golden(max_new_tokens: int, device: str) -> list[dict[str, Any]]:
    from stchat.golden import FixtureMedia
    from stchat.model.loading import load_model

    rows = []
    for root in sorted((REPO / "tests" / "fixtures").glob("golden*")):
        if not (root / "model" / "config.json").is_file() or not (root / "cases").is_dir():
            continue
        model, _ = load_model(str(root / "model"), device=device, dtype=torch.float32)
        media = FixtureMedia(root)
        for case_path in sorted((root / "cases").glob("*.json")):
            case = json.loads(case_path.read_text())
            ids = case["input_ids"]
            ids = torch.tensor([json.loads(ids) if isinstance(ids, str) else ids])
            kw = {"modality": case["modality"], "variables": case.get("variables"),
                  "visual_features": media.features(model, case["modality"])}
            plain, pw, pc = _timed(model.generate_ids, ids, max_new_tokens=max_new_tokens, **kw)
            (spec, stats), sw, sc = _timed(speculative_generate, model, ids, max_new_tokens=max_new_tokens,
                                           **kw)
            name = f"{root.name}/{case_path.stem}"
            rows.append(_row(name, plain, spec, (pw, pc), (sw, sc), stats, len(plain)))
    return rows


# ----------------------------------------------------------------------------- demo clips through StableChat
def demo_clips(n: int, out_dir: Path, seed_base: int = 910_000) -> list[tuple[str, str]]:
    """(mp4 path, target description) for ``n`` generated demo clips (written once, reused)."""
    from stchat.demo.text import phrase
    from stchat.demo.world import sample_scene, write_clip

    out = []
    for i in range(n):
        scene = sample_scene(seed_base + i, max_seconds=12.0)
        path = out_dir / f"demo_{seed_base + i}.mp4"
        if not path.is_file():
            write_clip(scene, path)
        t = scene.target
        out.append((str(path), phrase(t.colour, t.shape, None, random.Random(seed_base + i))))
    return out


def run_clips(model: str | None, n: int, device: str | None, dtype: str | None, max_new_tokens: int,
              clip_dir: Path) -> list[dict[str, Any]]:
    """STVG on generated clips: the question ``StableChat.ground`` would send, the clip's frames and visual
    features computed once, then the plain loop and the speculative loop timed on the same features."""
    from stchat.chat import StableChat
    from stchat.media import load_sampled
    from stchat.model.choice import choose_model
    from stchat.processing.prompt import build_prompt
    from stchat.request import GroundingRequest

    chat = StableChat(choose_model(model), device=device, dtype=dtype)
    m = chat.model
    rows = []
    for i, (path, desc) in enumerate(demo_clips(n, clip_dir)):
        question = GroundingRequest(path, "stvg", desc).question(None, None)
        prompt = build_prompt(chat.tokenizer, question, "video", "demo")
        media = load_sampled(path)
        ids = torch.tensor([prompt.input_ids])
        with torch.no_grad():
            feats = m.encode(media.pixel_values.to(m.device, chat._pixel_dtype()), "video")
        kw = {"modality": "video", "variables": prompt.variables, "visual_features": feats,
              "max_new_tokens": max_new_tokens}
        runs: dict[bool, Any] = {}
        # Alternate which goes first so a warm cache or a busy neighbour does not favour one side.
        for spec in ((False, True) if i % 2 == 0 else (True, False)):
            if spec:
                runs[spec] = _timed(speculative_generate, m, ids, **kw)
            else:
                runs[spec] = _timed(m.generate_ids, ids, **kw)
        plain, pw, pc = runs[False]
        (spec_ids, stats), sw, sc = runs[True]
        row = _row(Path(path).stem, plain, spec_ids, (pw, pc), (sw, sc), stats, len(plain))
        row["answer"] = chat.tokenizer.decode(spec_ids[:40], skip_special_tokens=False)
        rows.append(row)
        print(f"  {row['name']}: {row['tokens']} tokens, "
              f"passes {row['passes_plain']} -> {row['passes_spec']}, "
              f"gen {pw:.2f}s -> {sw:.2f}s, identical={row['identical']}", flush=True)
    return rows


# ----------------------------------------------------------------------------- replay
_NUM = r"(\d+(?:\.\d+)?)"


def tokens_from_normalized(text: str) -> str:
    """Normalized answer text back to coordinate tokens: ``{a,b}``, ``t,: [x1,y1,x2,y2]`` pairs, boxes."""
    def q(v: str) -> int:
        return min(99, max(0, round(float(v) * 99)))

    text = re.sub(r"\{\s*" + _NUM + r"\s*,\s*" + _NUM + r"\s*\}",
                  lambda m: f"{{<TEMP-{q(m[1]):03d}><TEMP-{q(m[2]):03d}>}}", text)
    box = r"\[\s*" + r"\s*,\s*".join([_NUM] * 4) + r"\s*\]"

    def box_tokens(m: re.Match[str], off: int) -> str:
        x1, y1, x2, y2 = (q(m[off + i]) for i in range(4))
        return f"[<WIDTH-{x1:03d}><HEIGHT-{y1:03d}><WIDTH-{x2:03d}><HEIGHT-{y2:03d}>]"

    text = re.sub(_NUM + r",\s*:\s*" + box, lambda m: f"<TEMP-{q(m[1]):03d}>: " + box_tokens(m, 2), text)
    return re.sub(box, lambda m: box_tokens(m, 1), text)


def replay_ids(records: Iterable[Any], tokenizer: Any) -> list[tuple[str, list[int]]]:
    out = []
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for i, rec in enumerate(records):
        if isinstance(rec, dict):
            name = str(rec.get("name") or rec.get("id") or rec.get("video") or i)
            if rec.get("output_ids"):
                out.append((name, [int(t) for t in rec["output_ids"]]))
                continue
            keys = ("raw_text", "outputs", "prediction", "normalized_text", "converted_outputs", "text")
            text = next((rec[k] for k in keys if rec.get(k)), None)
            if not isinstance(text, str):
                continue
        else:
            name, text = str(i), str(rec)
        if "<TEMP-" not in text and "<WIDTH-" not in text:
            text = tokens_from_normalized(text)
        out.append((name, tokenizer(text, add_special_tokens=False).input_ids + [eos]))
    return out


def read_records(path: Path) -> list[Any]:
    text = path.read_text()
    if path.suffix == ".json":
        data = json.loads(text)
        return data if isinstance(data, list) else [data]
    recs: list[Any] = []
    for line in text.splitlines():
        if line.strip():
            try:
                recs.append(json.loads(line))
            except json.JSONDecodeError:
                recs.append(line)
    return recs


def released_grammar_answer(rng: random.Random, p_move: float = 0.3) -> str:
    """One STVG answer in the released model's token grammar: 60-100 entries, one per sampled frame."""
    n = rng.randrange(60, 101)
    s = rng.randrange(0, 100 - n + 1)
    x1, y1 = rng.randrange(0, 50), rng.randrange(0, 50)
    x2, y2 = x1 + rng.randrange(10, 49), y1 + rng.randrange(10, 49)
    box = [x1, y1, x2, y2]
    ents = []
    for k in range(s, s + n):
        if rng.random() < p_move:
            j = rng.randrange(4)
            box[j] = min(99, max(0, box[j] + rng.choice([-1, 1])))
        ents.append(f"<TEMP-{k:03d}>: [<WIDTH-{box[0]:03d}><HEIGHT-{box[1]:03d}>"
                    f"<WIDTH-{box[2]:03d}><HEIGHT-{box[3]:03d}>]")
    return f"{{<TEMP-{s:03d}><TEMP-{s + n - 1:03d}>}} " + ", ".join(ents)


def run_replay(answers: list[tuple[str, list[int]]], vocab_size: int) -> list[dict[str, Any]]:
    drafter = GrammarDrafter(vocab_size)
    rows = []
    for name, ids in answers:
        st = replay(ids, drafter)
        rows.append({"name": name, "tokens": len(ids), "passes_plain": len(ids),
                     "passes_spec": st.decoder_passes, "drafted": st.drafted_tokens,
                     "accepted": st.accepted_tokens})
    return rows


# ----------------------------------------------------------------------------- report
def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    tokens = sum(r["tokens"] for r in rows)
    pp, ps = sum(r["passes_plain"] for r in rows), sum(r["passes_spec"] for r in rows)
    out: dict[str, Any] = {
        "inputs": len(rows), "tokens": tokens, "passes_plain": pp, "passes_spec": ps,
        "passes_ratio": pp / ps if ps else float("nan"),
        "tokens_per_pass_spec": tokens / ps if ps else float("nan"),
        "median_passes_ratio": (statistics.median(r["passes_plain"] / r["passes_spec"] for r in rows)
                                if rows else None),
    }
    if rows and "identical" in rows[0]:
        out["identical"] = f"{sum(r['identical'] for r in rows)}/{len(rows)}"
        for k in ("wall", "cpu"):
            p, s = sum(r[f"{k}_plain_s"] for r in rows), sum(r[f"{k}_spec_s"] for r in rows)
            out[f"{k}_plain_s"], out[f"{k}_spec_s"] = p, s
            out[f"{k}_ratio"] = p / s if s else float("nan")  # > 1: speculation is faster
    return out


def print_summary(title: str, s: dict[str, Any]) -> None:
    line = (f"{title}: {s['inputs']} inputs, {s['tokens']} tokens; decoder passes {s['passes_plain']} -> "
            f"{s['passes_spec']} ({s['passes_ratio']:.2f}x fewer, "
            f"{s['tokens_per_pass_spec']:.2f} tokens/pass)")
    if "identical" in s:
        line += (f"; wall {s['wall_plain_s']:.2f}s -> {s['wall_spec_s']:.2f}s ({s['wall_ratio']:.2f}x), "
                 f"cpu {s['cpu_plain_s']:.2f}s -> {s['cpu_spec_s']:.2f}s ({s['cpu_ratio']:.2f}x); "
                 f"identical {s['identical']}")
    print(line, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model dir / hub id / 'demo' (default: stchat's choice)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None)
    ap.add_argument("--golden", action="store_true", help="the golden fixture models' cases")
    ap.add_argument("--clips", type=int, default=0, help="generated demo clips through StableChat.ground")
    ap.add_argument("--clip-dir", type=Path, default=None, help="where the clips are written (reused)")
    ap.add_argument("--max-new-tokens", type=int, default=1024)
    ap.add_argument("--replay", type=Path, nargs="*", default=[], help="answer JSONL/JSON/text files")
    ap.add_argument("--synthetic-replay", type=int, default=0, help="released-grammar STVG answers to replay")
    ap.add_argument("--json", type=Path, default=None, help="write rows and summaries here")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    report: dict[str, Any] = {}
    if args.golden:
        rows = run_golden(min(args.max_new_tokens, 512), args.device or "cpu")
        report["golden"] = {"rows": rows, "summary": summary(rows)}
        print_summary("golden fixture models", report["golden"]["summary"])
    if args.clips:
        clip_dir = args.clip_dir or Path(tempfile.gettempdir()) / "stchat_decoding_clips"
        clip_dir.mkdir(parents=True, exist_ok=True)
        rows = run_clips(args.model, args.clips, args.device, args.dtype, args.max_new_tokens, clip_dir)
        report["clips"] = {"model": args.model, "rows": rows, "summary": summary(rows)}
        print_summary(f"STVG on {args.clips} demo clips", report["clips"]["summary"])
    if args.replay or args.synthetic_replay:
        from transformers import AutoTokenizer

        from stchat.model.choice import choose_model
        from stchat.model.loading import resolve_checkpoint_dir

        tok = AutoTokenizer.from_pretrained(str(resolve_checkpoint_dir(choose_model(args.model))))
        vocab = tok.convert_tokens_to_ids("<TEMP-000>")  # V: the first coordinate id (reference §2)
        records: list[Any] = [r for p in args.replay for r in read_records(p)]
        if records:
            rows = run_replay(replay_ids(records, tok), vocab)
            report["replay"] = {"rows": rows, "summary": summary(rows)}
            print_summary("replay of the given answers", report["replay"]["summary"])
        if args.synthetic_replay:
            rng = random.Random(0)
            answers = [released_grammar_answer(rng) for _ in range(args.synthetic_replay)]
            rows = run_replay(replay_ids(answers, tok), vocab)
            report["synthetic_replay"] = {"rows": rows, "summary": summary(rows)}
            print_summary("replay of released-grammar STVG answers (60-100 entries)",
                          report["synthetic_replay"]["summary"])
    if not report:
        ap.error("nothing to do: give --golden, --clips N, --replay FILE or --synthetic-replay N")
    if args.json:
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
