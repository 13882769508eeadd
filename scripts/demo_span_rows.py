"""What happens at a span row? Teacher-forced span answers of TVG records, and where the span row looks.

1. Every ``{<TEMP-s><TEMP-e>}`` of the records (e.g. ``spans.json`` of ``scripts/demo_tvg_records.py
   --all-objects``: one span per object shown): the model's own-table argmax against the truth and against
   the best constant (the median), and how many distinct values it predicts.
2. ``--attention N``: on the first N STVG records of ``--stvg`` data, per layer and head, the attention the
   row that predicts the span start pays to the slow frames where the target shows, over the rest (ratio
   of per-frame means; 1 = blind to the target), and the attention mass on the 1,620 slow tokens.
3. ``--transport N``: on the first N records of the data, per layer and head, whether the head's value/output
   path carries a slow frame's time into the TEMP logits: the head's output of each slow frame's tokens
   (averaged over the frame), through the final norm's weight onto the TEMP output rows, centred over the
   frames; the argmax against the frame's time (chance ~33 bins).

Session 14 (issue #9): a model that gives one span for every clip has layer-1 heads that look at the
target's frames twice as much as at the others, yet its span row's hidden state does not vary with the
clip enough to read the span.

    python scripts/demo_span_rows.py MODEL runs/demo/heldout/spans.json --attention 12 \
        --stvg runs/demo/heldout/train.json
"""

from __future__ import annotations

import argparse

import torch
from demo_temporal_probe import STVG_MARK, teacher_forced

from stchat.model.loading import load_model
from stchat.train.data import TrainDataset, collate, load_records
from stchat.train.forward import batch_inputs_embeds, unwrap
from stchat.train.objective import NUM_BINS, CoordVocab

SLOW, PER, TOKENS = 20, 5, 81  # slow frames; sampled frames per slow frame (query at 5j + 2, Q11); tokens


def span_answers(model, tok, records) -> None:
    v = CoordVocab.from_tokenizer(tok).vocab_size
    table = unwrap(model).model.temporal_output_embeddings.weight
    truth, own = [], []
    for out in teacher_forced(model, tok, records):
        tg = out.targets[0]
        first = tg.cols[:, 0]
        every = torch.nonzero((first >= v) & (first < v + NUM_BINS)).flatten()
        truth.append(torch.where(tg.vals[every, 0] >= 0.5, first[every], tg.cols[every, 1]) - v)
        own.append((out.hidden[0, tg.rows[every]] @ table.t()).argmax(-1))
    t, p = torch.cat(truth).view(-1, 2), torch.cat(own).view(-1, 2)
    for i, name in ((0, "start"), (1, "end")):
        err = (t[:, i] - p[:, i]).abs().float()
        const = (t[:, i] - t[:, i].float().median()).abs().float()
        print(f"span {name}: {len(t)} spans, within 3 bins {float((err <= 3).float().mean()):.2f} "
              f"(best constant {float((const <= 3).float().mean()):.2f}), mean error {err.mean():.1f} bins "
              f"(constant {const.mean():.1f}), {len(set(p[:, i].tolist()))} distinct")


def span_attention(model, tok, records) -> None:
    base = unwrap(model)
    start_id = tok.convert_tokens_to_ids("<slow_vid_start>")
    temp_out = tok.convert_tokens_to_ids("<TEMP-OUTPUT>")
    dataset = TrainDataset(records, tok, max_length=4096)
    ratios: dict[tuple[int, int], list[float]] = {}
    mass: dict[tuple[int, int], list[float]] = {}
    for i, rec in enumerate(records):
        s, e = rec.variables["temporal_output_locations"][:2]
        shown = torch.tensor([s <= (PER * j + PER // 2) / 99 <= e for j in range(SLOW)])
        if shown.all() or not shown.any():
            continue
        batch = collate([dataset[i]], tok.pad_token_id)
        ids = batch.input_ids[0]
        video = int((ids == start_id).nonzero()[0]) + 1
        row = int((ids == temp_out).nonzero()[0]) - 1  # predicts the span start
        with torch.no_grad():
            out = base.model(inputs_embeds=batch_inputs_embeds(model, batch), output_attentions=True)
        for layer, att in enumerate(out.attentions):
            for head in range(att.shape[1]):
                per_frame = att[0, head, row, video:video + SLOW * TOKENS].reshape(SLOW, TOKENS).sum(1)
                ratio = per_frame[shown].mean() / per_frame[~shown].mean()
                ratios.setdefault((layer, head), []).append(float(ratio))
                mass.setdefault((layer, head), []).append(float(per_frame.sum()))
    for (layer, head), r in sorted(ratios.items()):
        print(f"layer {layer} head {head}: target frames / other frames {torch.tensor(r).median():.2f} "
              f"(median of {len(r)} clips), on the video {torch.tensor(mass[(layer, head)]).mean():.2f}")


def span_transport(model, tok, records) -> None:
    lm = unwrap(model).model
    cfg = unwrap(model).config
    heads, groups = cfg.num_attention_heads, cfg.num_key_value_heads
    dim = cfg.hidden_size // heads
    start_id = tok.convert_tokens_to_ids("<slow_vid_start>")
    rows = lm.norm.weight[:, None] * lm.temporal_output_embeddings.weight.t()  # (C, 100)
    times = torch.arange(SLOW) * PER + PER // 2
    dataset = TrainDataset(records, tok, max_length=4096)
    err: dict[tuple[int, int], list[float]] = {}
    for i in range(len(records)):
        batch = collate([dataset[i]], tok.pad_token_id)
        video = int((batch.input_ids[0] == start_id).nonzero()[0]) + 1
        with torch.no_grad():
            out = lm(inputs_embeds=batch_inputs_embeds(model, batch), output_hidden_states=True)
            for layer, block in enumerate(lm.layers):
                x = block.input_layernorm(out.hidden_states[layer][0, video:video + SLOW * TOKENS])
                v = block.self_attn.v_proj(x)
                for head in range(heads):
                    g = head // (heads // groups)
                    w_o = block.self_attn.o_proj.weight[:, head * dim:(head + 1) * dim]
                    o = v[:, g * dim:(g + 1) * dim] @ w_o.t()
                    logits = o.reshape(SLOW, TOKENS, -1).mean(1) @ rows
                    logits = logits - logits.mean(0)
                    off = (logits.argmax(1) - times).abs().float().mean()
                    err.setdefault((layer, head), []).append(float(off))
    for (layer, head), e in sorted(err.items()):
        print(f"layer {layer} head {head}: a slow frame's time through the head's value/output path: "
              f"{sum(e) / len(e):.1f} bins off (chance ~33)")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data", help="TVG records (every coordinate a span time), e.g. spans.json")
    ap.add_argument("--attention", type=int, default=0, help="also the attention of this many STVG records")
    ap.add_argument("--stvg", help="STVG records for --attention (default: data)")
    ap.add_argument("--transport", type=int, default=0, help="also the time transport of this many records")
    a = ap.parse_args()
    attn = "eager" if a.attention else None  # attention weights need the eager kernel
    model, tok = load_model(a.model, dtype=torch.float32, attn_implementation=attn)
    span_answers(model, tok, load_records(a.data, None, seed=0))
    if a.attention:
        stvg = [r for r in load_records(a.stvg or a.data, None, seed=0)
                if STVG_MARK in r.conversations[0]["value"]][: a.attention]
        span_attention(model, tok, stvg)
    if a.transport:
        span_transport(model, tok, load_records(a.data, None, seed=0)[: a.transport])


if __name__ == "__main__":
    main()
