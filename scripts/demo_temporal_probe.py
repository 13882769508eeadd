"""Does a model know the next time of a box list? A teacher-forced look at STVG training records.

For each record, one forward pass with the answer given (as in training) and, at every ``<TEMP-k>`` row
of the answer: the bin the model's own output table prefers against the target bin, and the row's loss.
Then a ridge probe: is the next per-box time linearly readable from the last hidden state at all (fit on
three quarters of the clips, tested on the rest)? Session 8 (issue #9) found the shipped v2 model reads it
(99 % exact) and the REC-first lineage of ``checkpoints/demo_rec`` does not (2 %, loss ~ uniform).
Last, the same teacher-forced look at the span's two times, the only ones an STVG answer has to read from
the video: session 12 found a model that counts the box times (81 % exact on unseen clips) and opens every
answer with one constant span. Run it on clips never trained on (train-data with another --seed-base).

    python scripts/demo_temporal_probe.py MODEL_DIR runs/demo/stage4/train.json --clips 12
"""

from __future__ import annotations

import argparse
import math

import torch

from stchat.model.loading import load_model
from stchat.train.data import TrainDataset, collate, load_records
from stchat.train.forward import training_loss, unwrap
from stchat.train.objective import NUM_BINS, CoordVocab

STVG_MARK = "firstly give the timestamps"  # the official STVG question's tail (stchat.demo.text)


def teacher_forced(model, tok, records):
    """One forward pass per record with its answers given, as in training (the loss output, hidden states
    included)."""
    vocab = CoordVocab.from_tokenizer(tok)
    dataset = TrainDataset(records, tok, max_length=4096)
    with torch.no_grad():
        for i in range(len(dataset)):
            yield training_loss(model, collate([dataset[i]], tok.pad_token_id), vocab, return_hidden=True)


def per_box_rows(model, tok, records, spans: list | None = None
                 ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Per record: (hidden states, target bins, own-table argmax, loss) of the TEMP rows after the span.
    ``spans``, when given, receives per record the same (target, argmax, loss) of the span's two rows."""
    vocab = CoordVocab.from_tokenizer(tok)
    v = vocab.vocab_size
    out_rows = []
    for out in teacher_forced(model, tok, records):
        tg = out.targets[0]
        first = tg.cols[:, 0]
        every = torch.nonzero((first >= v) & (first < v + NUM_BINS)).flatten()
        # the target bin: the heavier of the two-hot pair
        target_all = torch.where(tg.vals[every, 0] >= 0.5, first[every], tg.cols[every, 1]) - v
        table = unwrap(model).model.temporal_output_embeddings.weight
        own_all = (out.hidden[0, tg.rows[every]] @ table.t()).argmax(-1)
        if spans is not None:  # [0:2]: the span, the only times an STVG answer reads from the video
            spans.append((target_all[:2], own_all[:2], out.token_losses[0][every[:2]]))
        rows, target, own = every[2:], target_all[2:], own_all[2:]
        hidden = out.hidden[0, tg.rows[rows]]
        out_rows.append((hidden, target, own, out.token_losses[0][rows]))
    return out_rows


def ridge_probe(train: list, test: list, lam: float = 1e-2) -> float:
    """Exact-bin accuracy on ``test`` of a ridge readout (one-hot targets) fitted on ``train``."""
    x = torch.cat([h for h, *_ in train])
    y = torch.cat([t for _, t, *_ in train])
    x1 = torch.cat([x, torch.ones(len(x), 1)], 1)
    w = torch.linalg.solve(x1.T @ x1 + lam * torch.eye(x1.shape[1]),
                           x1.T @ torch.nn.functional.one_hot(y, NUM_BINS).to(x.dtype))
    xt = torch.cat([h for h, *_ in test])
    yt = torch.cat([t for _, t, *_ in test])
    pred = (torch.cat([xt, torch.ones(len(xt), 1)], 1) @ w).argmax(-1)
    return float((pred == yt).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data", help="a train.json of python -m stchat.demo train-data")
    ap.add_argument("--clips", type=int, default=12, help="STVG records of this many clips")
    args = ap.parse_args()
    model, tok = load_model(args.model, device="cpu", dtype=torch.float32)
    model.eval()
    seen: set = set()
    records = []
    for r in load_records(args.data, None, seed=0):
        if r.modality == "video" and STVG_MARK in r.conversations[0]["value"] and r.media_key not in seen:
            seen.add(r.media_key)
            records.append(r)
        if len(records) == args.clips:
            break
    spans: list = []
    rows = per_box_rows(model, tok, records, spans)
    target = torch.cat([t for _, t, _, _ in rows])
    own = torch.cat([o for _, _, o, _ in rows])
    loss = torch.cat([lo for *_, lo in rows])
    k = max(1, len(rows) // 4)
    print(f"{len(records)} clips, {len(target)} per-box times (uniform loss {math.log(NUM_BINS):.2f})")
    print(f"own table: exact {(own == target).float().mean():.2f}, within one bin "
          f"{((own - target).abs() <= 1).float().mean():.2f}, mean loss {loss.mean():.3f}")
    print(f"ridge readout of the hidden state, held-out clips: exact {ridge_probe(rows[k:], rows[:k]):.2f}")
    st = torch.stack([t for t, _, _ in spans])
    so = torch.stack([o for _, o, _ in spans])
    sl = torch.stack([lo for *_, lo in spans])
    err = (so - st).abs().float()

    def pair(x: torch.Tensor) -> str:
        return " / ".join(f"{float(v):.2f}" for v in x)

    print(f"span start / end: within 3 bins {pair((err <= 3).float().mean(0))}, mean error "
          f"{pair(err.mean(0))} bins, loss {pair(sl.mean(0))}; "
          f"{len(set(so[:, 0].tolist()))} distinct starts predicted for {len(spans)} clips")


if __name__ == "__main__":
    main()
