"""The VidOR model scorer on the tiny golden model: finite scores, argmax choice, recorded metadata, and
a candidate carrying the model's own preferred coordinate ranks first.

Construction that makes the expected ranking exact: the candidates (same category, same predicate, same
interval: one ambiguous query) have identical tubes except the box of the last sampled timestamp,
whose bottom edge ``y2`` is the answer's *last* coordinate. Every coordinate row before it sees the same
prefix, and no coordinate row follows it, so score differences come from one logits row only:
``score_i - score_j = (loss_j - loss_i) / n_coord`` with the two-hot loss
``-(1-λ) log p[f] - λ log p[c]`` of that row. The bin the model prefers is the argmax of that row
(over valid bins, y2 >= y1): the model's own greedy coordinate output under teacher forcing.
"""

from __future__ import annotations

import math
import shutil

import pytest
import torch

from stchat.model.loading import load_model
from stchat.train.data import TrainDataset, to_record
from stchat.train.objective import NUM_BINS, CoordVocab, position_transfer
from stchat.train.vidor import heuristic_score, model_scorer, samples_from_annotation

SIDE = 99  # frame width/height in pixels: integer pixel y = bin k gives the location k/99
BEGIN, END = 10, 70  # relation interval; sampled frames 0..99, picks at frames 10, 40, 69
LAST_PICK = 69
Y1 = 5


def _annotation(last_y2: list[int]) -> dict:
    """One 'adult that watch the dog' query with one candidate subject per ``last_y2`` value."""
    n = 100
    objects = [{"tid": 0, "category": "dog"}] + [{"tid": i + 1, "category": "adult"}
                                                for i in range(len(last_y2))]
    frames: list[list[dict]] = [[] for _ in range(n)]
    for i, y2 in enumerate(last_y2):
        for f in range(n):
            x1, y1, x2, yb = (30, Y1, 80, y2) if f == LAST_PICK else (10, 20, 60, 70)
            frames[f].append({"tid": i + 1, "bbox": {"xmin": x1, "ymin": y1, "xmax": x2, "ymax": yb}})
    rels = [{"subject_tid": i + 1, "object_tid": 0, "predicate": "watch", "begin_fid": BEGIN, "end_fid": END}
            for i in range(len(last_y2))]
    return {"video_id": "clip", "video_path": "video_frames.npy", "frame_count": n, "fps": 25,
            "width": SIDE, "height": SIDE, "subject/objects": objects, "trajectories": frames,
            "relation_instances": rels}


@pytest.fixture(scope="module")
def tiny(golden_model_dir):
    return load_model(golden_model_dir, device="cpu", dtype=torch.float32, attn_implementation="sdpa")


@pytest.fixture(scope="module")
def video_root(tmp_path_factory, golden_dir):
    d = tmp_path_factory.mktemp("vidor_video")
    shutil.copy(golden_dir / "media" / "video_frames.npy", d / "video_frames.npy")
    return d


def _last_row_logprobs(model, tok, sample: dict, root) -> tuple[torch.Tensor, int]:
    """log-softmax of the row predicting the last coordinate, and the number of coordinate rows."""
    rec = to_record(sample, root, 0, "stchat")
    ex = TrainDataset([rec], tok)[0]
    vocab = CoordVocab.from_tokenizer(tok)
    h_out = vocab.height_output_id
    pos = int((ex.input_ids == h_out).nonzero().flatten()[-1])
    with torch.no_grad():
        logits = model(input_ids=ex.input_ids[None], pixel_values=ex.pixel_values, modality="video",
                       variables=ex.variables).logits[0, pos - 1]
    n_coord = sum(int((ex.input_ids == t).sum()) for t in vocab.output_ids)
    return torch.log_softmax(logits.double(), -1), n_coord


def _two_hot_loss(logp: torch.Tensor, location: float, vocab_size: int) -> float:
    f, c, wf, wc = position_transfer(location)
    off = vocab_size + NUM_BINS  # the height table
    return -(wf * float(logp[off + f]) + wc * float(logp[off + c]))


@pytest.mark.slow
def test_model_scorer_ranks_the_models_preferred_box_first(tiny, video_root):
    model, tok = tiny
    v = CoordVocab.from_tokenizer(tok).vocab_size
    # 1. The model's preferred last coordinate, read off a reference candidate's teacher-forced logits.
    ref = samples_from_annotation(_annotation([50]), video_root, heuristic_score, "heuristic")[0]
    logp, n_coord = _last_row_logprobs(model, tok, ref, video_root)
    assert n_coord == 17  # span (2) + 3 timestamps + 3 boxes x 4
    bins = logp[v + NUM_BINS:v + 2 * NUM_BINS]
    valid = torch.arange(NUM_BINS) >= Y1
    order = [int(k) for k in torch.argsort(torch.where(valid, bins, -math.inf), descending=True)]
    best, second, mid, worst = order[0], order[1], order[len(order) // 2], order[NUM_BINS - Y1 - 1]
    assert len({best, second, mid, worst}) == 4
    # 2. Four candidates; the preferred one is neither first nor last (the choice is not positional).
    ys = [mid, worst, best, second]
    samples = samples_from_annotation(_annotation(ys), video_root, model_scorer(model, tok), "model")
    assert len(samples) == 1
    sel = samples[0]["meta"]["target_selection"]
    assert sel["scorer"] == "model" and sel["candidates"] == [1, 2, 3, 4]
    scores = sel["scores"]
    assert len(scores) == 4 and all(math.isfinite(s) and s < 0 for s in scores)
    assert sel["chosen_tid"] == 1 + max(range(4), key=lambda i: scores[i])  # the choice is the argmax
    assert sel["chosen_tid"] == 3  # ... and it is the candidate with the model's preferred bin
    assert samples[0]["meta"]["subject_tid"] == 3
    # 3. Quantitatively: score differences are the last row's two-hot loss differences / 17.
    losses = [_two_hot_loss(logp, round(y / SIDE, 4), v) for y in ys]
    for i in range(4):
        for j in range(4):
            assert scores[i] - scores[j] == pytest.approx((losses[j] - losses[i]) / n_coord, abs=1e-4)
    assert scores[2] > scores[3] > scores[0] > scores[1]  # ranking follows the model's bin preference


def test_single_candidate_is_not_scored(tiny, video_root):
    model, tok = tiny
    calls = []

    def scorer(sample):
        calls.append(sample["id"])
        return model_scorer(model, tok)(sample)

    out = samples_from_annotation(_annotation([40]), video_root, scorer, "model")
    assert len(out) == 1 and calls == []
    assert out[0]["meta"]["target_selection"]["scorer"] == "unique"
