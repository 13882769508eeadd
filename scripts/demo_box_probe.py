"""Does a model read a box from the video at a given moment? Teacher-forced lesson records (issue #9).

A lesson record (``python -m stchat.demo train-data ... --lessons-per-clip N``) asks for an object's box at
two given moments ("Between {k/99, (k+1)/99}, where can we see the red ball?"): the times are in the
question, so every box coordinate has to be read from that moment's packed tokens. One forward pass per
record with the answers given, as in training; at every ``<HEIGHT-k>``/``<WIDTH-k>`` row, the bin the model's
own output table prefers against the target bin, for each turn's first box (the second mostly repeats
it; ``--all-boxes`` counts it too). The prior (these rows' mean bin of each kind) is
printed alongside: a model that does not look scores about that.

    python scripts/demo_box_probe.py MODEL_DIR runs/demo/heldout_lessons/train.json --records 24
"""

from __future__ import annotations

import argparse

import torch
from demo_temporal_probe import teacher_forced  # scripts/ is on the path when run as a script

from stchat.model.loading import load_model
from stchat.train.data import load_records
from stchat.train.forward import unwrap
from stchat.train.objective import NUM_BINS, CoordVocab

BOX_MARK = "Between  {<TEMP-INPUT>"  # a lesson's box question once loaded (stchat.demo.text.boxes_at_turn)


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data", help="a train.json with lesson records")
    ap.add_argument("--records", type=int, default=24)
    ap.add_argument("--all-boxes", action="store_true", help="also each turn's second box")
    args = ap.parse_args()
    model, tok = load_model(args.model, device="cpu", dtype=torch.float32)
    model.eval()
    records = [r for r in load_records(args.data, None, seed=0)
               if any(BOX_MARK in m["value"] for m in r.conversations)][: args.records]
    vocab = CoordVocab.from_tokenizer(tok)
    v = vocab.vocab_size
    base = unwrap(model).model
    tables = {1: base.spatial_height_output_embeddings.weight, 2: base.spatial_width_output_embeddings.weight}
    targets, owns, kinds = [], [], []
    for out in teacher_forced(model, tok, records):
        tg = out.targets[0]
        first = tg.cols[:, 0]
        kind = torch.div(first - v, NUM_BINS, rounding_mode="floor")  # 0 T, 1 H, 2 W; else text
        rows = torch.nonzero((kind >= 0) & (kind <= 2)).flatten()  # coordinate rows, in answer order
        group = -1
        for j, r in enumerate(rows.tolist()):
            kr = int(kind[r])
            if kr == 0:
                # a time followed by a box opens a box; a lesson turn gives exactly two boxes, so the
                # even-numbered ones are each turn's first (the second mostly repeats it)
                if j + 1 < len(rows) and int(kind[rows[j + 1]]) != 0:
                    group += 1
                continue
            if group % 2 == 1 and not args.all_boxes:
                continue
            target = int(first[r] if tg.vals[r, 0] >= 0.5 else tg.cols[r, 1]) - v - kr * NUM_BINS
            own = int((out.hidden[0, tg.rows[r]] @ tables[kr].t()).argmax())
            targets.append(target)
            owns.append(own)
            kinds.append(kr)
    t, o, k = torch.tensor(targets), torch.tensor(owns), torch.tensor(kinds)
    prior = torch.zeros_like(t)
    for kd in tables:  # the mean bin of each kind (height, width) over these rows
        prior[k == kd] = int(t[k == kd].float().mean().round())
    err, perr = (o - t).abs().float(), (prior - t).abs().float()
    print(f"{len(records)} records, {len(t)} box coordinates: model within 3 bins "
          f"{(err <= 3).float().mean():.2f}, mean error {err.mean():.1f} bins; "
          f"prior within 3 bins {(perr <= 3).float().mean():.2f}, mean error {perr.mean():.1f} bins")


if __name__ == "__main__":
    main()
