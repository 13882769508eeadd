"""The engine of ``stchat eval run``: answers one benchmark sample with :class:`stchat.chat.StableChat`'s
generation.

It follows the official ``multi_task_inference.py`` path: the benchmark prompt (media tag and coordinates
as the dataset wrote them, ``front_end="benchmark"``), the official 100-frame sampling and SigLIP
preprocessing (:func:`stchat.media.load_sampled`, the one media path), generation, then
``decode_output``. Every random choice is seeded from ``(seed, sample id)``, so sharded and resumed runs
write the records an uninterrupted one writes.
"""

from __future__ import annotations

import time

from stchat.chat import StableChat
from stchat.errors import StchatError
from stchat.eval.samples import Decoding, RunError, Sample, sample_seed
from stchat.media import load_sampled
from stchat.processing.decode import decode_output
from stchat.processing.prompt import build_prompt

__all__ = ["Decoding", "Engine", "Sample"]


class Engine:
    """Loads the model once and answers one :class:`Sample` at a time (the official inference path)."""

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None,
                 decoding: Decoding | None = None, adapter: str | None = None) -> None:
        self.chat = StableChat(model, device=device, dtype=dtype, adapter=adapter)
        self.load_s = self.chat.load_s
        self.decoding = decoding or Decoding()

    def __call__(self, sample: Sample) -> dict:
        d = self.decoding
        t0 = time.perf_counter()
        prompt = build_prompt(self.chat.tokenizer, sample.query, sample.modality, front_end="benchmark")
        try:
            media = load_sampled(sample.media_path, sample.split)
        except StchatError as exc:
            raise RunError(f"sample {sample.sample_id}: {exc}") from None
        t1 = time.perf_counter()
        seed = sample_seed(d.seed, sample.sample_id) if d.do_sample else None
        gen_kwargs = {"do_sample": d.do_sample, "temperature": d.temperature, "top_p": d.top_p,
                      "top_k": d.top_k, "seed": seed}
        ids, stats = self.chat.generate(prompt, media, d.max_new_tokens, gen_kwargs,
                                        speculative=d.speculative)
        t2 = time.perf_counter()
        outputs, converted = decode_output(self.chat.tokenizer, ids)
        rec = dict(sample.record)
        rec["variables"] = prompt.variables
        rec["outputs"] = outputs
        rec["converted_outputs"] = converted
        rec["id"] = sample.sample_id
        rec["generated_tokens"] = stats.generated_tokens
        rec["decoder_passes"] = stats.decoder_passes  # < generated_tokens when speculation drafted well
        rec["timing"] = {
            "media_s": round(t1 - t0, 4),
            "generate_s": round(t2 - t1, 4),
            "new_tokens": len(ids),
            "decoding": d.as_dict(),
        }
        return rec
