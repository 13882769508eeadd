"""How many training steps does the span's retrieval take? A learnability measurement (issue #9).

The STVG span start is "the first slow frame in which the asked colour shows". The demo language model
(Qwen2, 128 wide, 3 layers, 4 heads / 2 KV heads) never learnt it in 15 sessions of 2-core training
(`checkpoints/demo_mix/README.md`). This script asks how long the same network takes to learn that
retrieval in an idealised form, as a function of the tokens each slow frame gives it, so the cost can be
set against the CPU budget:

* a video is 20 slow frames of ``--tokens-per-frame`` tokens (81 for the released layout, 9 if the packer
  kept 3 x 3 per frame): background noise (rms 0.3 per channel) plus the frame's time code (a fixed random
  vector of norm ``--time-norm``, like LAPE's temporal row); an object adds its colour's vector (norm 2)
  to ``tokens // 40`` (at least 1) neighbouring tokens of every frame of its span (at least 4 frames);
* 1-4 objects of distinct colours, the first is the target; 9 text tokens follow, one of them the target's
  colour word (learned embeddings, started at the colour vectors);
* the last row predicts the target's first frame (20 classes) through a linear head (``--aligned-head``
  starts it at the time codes, as a language-aligned output table would be). Batch 16, AdamW lr 1e-3,
  weight decay 0.1, gradient clipping 1.0: stage 3's optimiser.

Clean colour and time codes make this easier than the real model's job (no tower, no packer to learn),
so the steps it needs are a lower bound. It prints, every 50 steps, the training loss and the share of the
last 50 batches' predictions within one frame of the truth (a constant answer gets ~0.18).

    python scripts/demo_retrieval_toy.py --tokens-per-frame 9 --steps 3000
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers import Qwen2Config, Qwen2Model

FRAMES, WIDTH, BATCH, COLOURS, WORDS = 20, 128, 16, 8, 40


def make_codes(gen: torch.Generator, time_norm: float = 1.0) -> dict[str, torch.Tensor]:
    """The colours' vectors (norm 2) and the frames' time codes (norm ``time_norm``), drawn in that order."""
    colour, time_ = torch.randn(COLOURS, WIDTH, generator=gen), torch.randn(FRAMES, WIDTH, generator=gen)
    return {"colour": colour / colour.norm(dim=1, keepdim=True) * 2,
            "time": time_ / time_.norm(dim=1, keepdim=True) * time_norm}


def sample(codes: dict[str, torch.Tensor], colour_words: torch.Tensor, words: torch.Tensor,
           tokens: int, gen: torch.Generator) -> tuple[torch.Tensor, int]:
    """One video + question as input embeddings, and the target's first frame."""
    video = torch.randn(FRAMES, tokens, WIDTH, generator=gen) * 0.3 + codes["time"][:, None, :]
    n_objects = 1 + int(torch.randint(0, 4, (1,), generator=gen))
    colours = torch.randperm(COLOURS, generator=gen)[:n_objects].tolist()
    starts = []
    for c in colours:
        start = int(torch.randint(0, FRAMES - 3, (1,), generator=gen))
        length = int(torch.randint(4, FRAMES - start + 1, (1,), generator=gen))
        width = max(1, tokens // 40)
        at = int(torch.randint(0, tokens - width + 1, (1,), generator=gen))
        video[start:start + length, at:at + width] += codes["colour"][c]
        starts.append(start)
    text = [words[i] for i in torch.randint(0, WORDS, (8,), generator=gen).tolist()]
    text.insert(int(torch.randint(2, 7, (1,), generator=gen)), colour_words[colours[0]])
    return torch.cat([video.reshape(FRAMES * tokens, WIDTH), torch.stack(text)]), starts[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens-per-frame", type=int, default=81)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--time-norm", type=float, default=1.0)
    ap.add_argument("--aligned-head", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    if a.tokens_per_frame < 1 or a.steps < 1:
        ap.error("--tokens-per-frame and --steps must be positive")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    codes = make_codes(gen, a.time_norm)
    colour_words = torch.nn.Parameter(codes["colour"].clone())
    words = torch.nn.Parameter(torch.randn(WORDS, WIDTH, generator=gen) * 0.5)
    cfg = Qwen2Config(hidden_size=WIDTH, intermediate_size=4 * WIDTH, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, vocab_size=8,
                      max_position_embeddings=4096, rope_theta=1e6)
    lm, head = Qwen2Model(cfg), torch.nn.Linear(WIDTH, FRAMES)
    if a.aligned_head:  # the output rows start as the time codes, as LAPE's aligned table would
        head.weight.data = codes["time"].clone() * 3
        head.bias.data.zero_()
    params = [*lm.parameters(), *head.parameters(), colour_words, words]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.1)
    t0, hits = time.perf_counter(), []
    for step in range(1, a.steps + 1):
        batch = [sample(codes, colour_words, words, a.tokens_per_frame, gen) for _ in range(BATCH)]
        xs, ys = [x for x, _ in batch], [y for _, y in batch]
        logits = head(lm(inputs_embeds=torch.stack(xs)).last_hidden_state[:, -1])
        y = torch.tensor(ys)
        loss = torch.nn.functional.cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        hits.append(((logits.argmax(1) - y).abs() <= 1).float().mean().item())
        if step % 50 == 0:
            share = sum(hits[-50:]) / 50
            print(f"tokens/frame {a.tokens_per_frame} step {step} loss {loss.item():.3f} "
                  f"within one frame {share:.2f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
