"""CPU timing of every model stage, for the golden tiny checkpoint and a mid-size random one.

    .venv/bin/python benchmarks/model_cpu.py [--threads 2] [--repeats 3] [--decode-tokens 16]

Stages: frame sampling (probe + official indices + decode of 100 frames), preprocessing, SigLIP tower,
projector + LAPE, packer, LLM prefill, per-token decode. Ratios compare against baselines measured in
the same run: the packer with the (discarded, Q1) fast stream vs without it, eager vs sdpa prefill, and a
KV-cached decode step vs recomputing the whole sequence for that step. Peak RSS is the process maximum.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from stchat.model.configuration_llava_st import LlavaSTConfig  # noqa: E402
from stchat.model.loading import load_model  # noqa: E402
from stchat.model.modeling_llava_st import LlavaSTForCausalLM  # noqa: E402

GOLDEN_MODEL = REPO / "tests" / "fixtures" / "golden" / "model"
CLIP = REPO / "tests" / "fixtures" / "synthetic" / "syn_a_640x360_25fps_tone.mp4"
QUERY = "Please describe where the red square is and when it moves."


def timed(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Median wall seconds over ``repeats`` runs (after one warm-up), and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def make_midsize_checkpoint(dst: Path) -> Path:
    """A random checkpoint in the official format: LLM hidden 512 x 4 layers, SigLIP hidden 256."""
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                 "vocab.json", "merges.txt", "generation_config.json"):  # fmt: skip
        shutil.copy(GOLDEN_MODEL / name, dst / name)
    tower = dst / "siglip-mid"
    tower.mkdir()
    vision = {
        "hidden_size": 256,
        "intermediate_size": 1024,
        "num_attention_heads": 4,
        "num_hidden_layers": 4,
        "image_size": 384,
        "patch_size": 14,
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    }
    (tower / "config.json").write_text(json.dumps({"model_type": "siglip", "vision_config": vision}))
    raw = json.loads((GOLDEN_MODEL / "config.json").read_text())
    raw.update(hidden_size=512, intermediate_size=1376, num_hidden_layers=4, num_attention_heads=8,
               num_key_value_heads=2, mm_hidden_size=256, mm_vision_tower="siglip-mid",
               mm_token_packer_embed_dim=256, mm_token_packer_num_heads=8)  # fmt: skip
    raw.pop("transformers_version", None)
    config = LlavaSTConfig.from_dict(raw)
    config._name_or_path = str(dst)
    torch.manual_seed(0)
    LlavaSTForCausalLM(config).save_pretrained(dst)
    # save_pretrained writes our (already resolved) config; keep the official fields the loader reads
    saved = json.loads((dst / "config.json").read_text())
    saved.update(mm_vision_tower="siglip-mid")
    (dst / "config.json").write_text(json.dumps(saved, indent=1))
    return dst


def bench_model(label: str, ckpt: Path, frames, repeats: int, decode_tokens: int) -> list[tuple[str, float]]:
    from stchat.processing.image import preprocess
    from stchat.processing.prompt import build_prompt

    rows: list[tuple[str, float]] = []
    model, tokenizer = load_model(ckpt, device="cpu", dtype=torch.float32)
    model_eager, _ = load_model(ckpt, device="cpu", dtype=torch.float32, attn_implementation="eager")
    t_pre, pixels = timed(lambda: preprocess(frames), repeats)
    rows.append(("preprocessing (100 frames)", t_pre))
    tables = model.coordinate_tables()
    packer = model.model.vision_resampler
    with torch.no_grad():
        t_tower, tower = timed(lambda: model.model.vision_tower(pixels), repeats)
        rows.append(("vision tower", t_tower))
        t_lape, lape = timed(lambda: model.project_and_lape(tower, "video", tables), repeats)
        rows.append(("projector + LAPE", t_lape))
        feats = lape["lape_features"]
        t_packer, (slow, _) = timed(lambda: packer(feats), repeats)
        t_packer_fast, _ = timed(lambda: packer(feats, with_fast=True), repeats)
        rows.append(("packer (slow only, ours)", t_packer))
        rows.append(("packer + fast stream (official)", t_packer_fast))
        rows.append(("  ratio ours / official packer", t_packer / t_packer_fast))
        prompt = build_prompt(tokenizer, QUERY, "video")
        ids = torch.tensor([prompt.input_ids])
        embeds = model.prepare_inputs_embeds(ids, slow.flatten(0, 1), prompt.variables)
        t_prefill, _ = timed(lambda: model(inputs_embeds=embeds, logits_to_keep=1), repeats)
        t_prefill_eager, _ = timed(lambda: model_eager(inputs_embeds=embeds, logits_to_keep=1), repeats)
        rows.append((f"LLM prefill sdpa ({ids.shape[1]} tokens)", t_prefill))
        rows.append(("LLM prefill eager", t_prefill_eager))
        rows.append(("  ratio sdpa / eager prefill", t_prefill / t_prefill_eager))
        from transformers.cache_utils import DynamicCache

        # Decode steps timed directly on a prefilled KV cache (subtracting two generate() runs is
        # dominated by the prefill's variance).
        cache = DynamicCache(config=model.config)
        model(inputs_embeds=embeds, past_key_values=cache, use_cache=True, logits_to_keep=1)
        step = model.embed_ids(torch.tensor([[5]]))
        t0 = time.perf_counter()
        for _ in range(decode_tokens):
            model(inputs_embeds=step, past_key_values=cache, use_cache=True, logits_to_keep=1)
        per_token = (time.perf_counter() - t0) / decode_tokens
        rows.append(("per-token decode (KV cache)", per_token))
        new = [5]
        full = torch.cat([embeds, model.embed_ids(torch.tensor([[new[0]]]))], dim=1)
        t_nocache, _ = timed(lambda: model(inputs_embeds=full, logits_to_keep=1), repeats)
        rows.append(("one decode step without cache (baseline)", t_nocache))
        rows.append(("  ratio cached / uncached step", per_token / t_nocache))
    return [(f"{label}: {name}", value) for name, value in rows]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decode-tokens", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from stchat.video.io import probe, read_frames
    from stchat.video.sampling import official_frame_indices

    def sample():
        info = probe(CLIP)
        return read_frames(CLIP, official_frame_indices(info.frame_count))

    t_sample, frames = timed(sample, args.repeats)
    rows = [(f"frame sampling ({CLIP.name}, 100 of the frames)", t_sample)]
    rows += bench_model("golden tiny", GOLDEN_MODEL, frames, args.repeats, args.decode_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_model(
            "mid-size", make_midsize_checkpoint(Path(tmp)), frames, args.repeats, args.decode_tokens
        )
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeats}")
    for name, value in rows:
        print(f"{name:<62} {value:9.4f}" + ("" if "ratio" in name else " s"))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
