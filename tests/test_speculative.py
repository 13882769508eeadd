"""Grammar drafter + exact verification (#11): the accept/crop logic, the drafter, and identity with plain
greedy decoding on the golden cases and on random-weight models of several sizes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import GenerationConfig

from stchat.golden import FixtureMedia
from stchat.model.loading import load_model
from stchat.model.modeling_llava_st import LlavaSTForCausalLM
from stchat.speculative import GrammarDrafter, accept_draft, replay, speculative_generate

V = 900  # the golden tokenizer's first coordinate id
T, H, W = V, V + 100, V + 200
COLON, BRACKET, CLOSE, COMMA, SPACE = 25, 666, 60, 11, 220  # only for hand-written id lists below


def entry(k: int, box: tuple[int, int, int, int], sep: tuple[int, ...] = (COMMA, SPACE)) -> list[int]:
    x1, y1, x2, y2 = box
    return [T + k, COLON, BRACKET, W + x1, H + y1, W + x2, H + y2, CLOSE, *sep]


# ----------------------------------------------------------------------------- accept_draft
@settings(max_examples=150, deadline=None)
@given(
    draft=st.lists(st.integers(0, 5), max_size=12),
    data=st.data(),
)
def test_accept_is_longest_matching_prefix_plus_the_models_token(draft: list[int], data) -> None:
    choices = data.draw(st.lists(st.integers(0, 5), min_size=len(draft) + 1, max_size=len(draft) + 1))
    emitted, pending = accept_draft(draft, choices)
    a = 0
    while a < len(draft) and draft[a] == choices[a]:
        a += 1
    assert not pending
    assert emitted == draft[:a] + [choices[a]]
    # Every emitted token is the greedy choice after the tokens before it.
    assert emitted == choices[: len(emitted)]


@settings(max_examples=150, deadline=None)
@given(draft=st.lists(st.integers(0, 3), min_size=1, max_size=10), data=st.data())
def test_a_near_tie_stops_emission_before_it(draft: list[int], data) -> None:
    n = len(draft) + 1
    choices = data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    margins = data.draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n))
    emitted, pending = accept_draft(draft, choices, margins, tie=0.5)
    plain, _ = accept_draft(draft, choices)
    # Never more than without the guard, always a prefix of it, and cut exactly at the first tie it reaches.
    assert plain[: len(emitted)] == emitted
    first_tie = next((i for i in range(len(plain)) if margins[i] < 0.5), None)
    if first_tie is None:
        assert (emitted, pending) == (plain, False)
    else:
        assert (emitted, pending) == (plain[:first_tie], True)


def test_without_a_draft_the_single_position_is_always_decided() -> None:
    assert accept_draft([], [7], [0.0], tie=1.0) == ([7], False)
    with pytest.raises(ValueError):
        accept_draft([1, 2], [1])


# ----------------------------------------------------------------------------- drafter
def test_drafter_proposes_the_next_entries_with_stride_and_box() -> None:
    span = [90, T + 10, T + 40, 92, SPACE]
    seq = span + entry(10, (20, 30, 50, 60)) + entry(12, (20, 30, 50, 60))
    draft = GrammarDrafter(V, max_draft=18).draft(seq)
    assert draft == entry(14, (20, 30, 50, 60)) + entry(16, (20, 30, 50, 60))[:8]


def test_drafter_continues_a_linear_drift_and_a_partial_entry() -> None:
    seq = entry(5, (10, 30, 40, 60)) + entry(6, (11, 30, 41, 60)) + entry(7, (12, 30, 42, 60))
    seq += entry(8, (13, 30, 43, 60))[:4]  # mid-entry: <TEMP-8>: [<WIDTH-13>
    draft = GrammarDrafter(V, max_draft=14).draft(seq)
    assert draft == entry(8, (13, 30, 43, 60))[4:] + entry(9, (14, 30, 44, 60))[:8]


def test_drafter_proposes_nothing_before_two_entries_or_off_grammar() -> None:
    d = GrammarDrafter(V)
    assert d.draft([90, T + 1, T + 5, 92, SPACE] + entry(1, (1, 2, 3, 4))) == []
    seq = entry(1, (1, 2, 3, 4)) + entry(2, (1, 2, 3, 4)) + [500, 501]  # text where the grammar has <TEMP>
    assert d.draft(seq) == []
    assert d.draft(entry(1, (1, 2, 3, 4)) + entry(2, (1, 2, 3, 4)), limit=0) == []
    # The last sampled frame is 99: no <TEMP-100> is ever proposed.
    end = GrammarDrafter(V, max_draft=40).draft(entry(97, (1, 2, 3, 4)) + entry(98, (1, 2, 3, 4)))
    assert T + 99 in end and all(t < V + 300 for t in end) and len(end) < 20


@settings(max_examples=200, deadline=None)
@given(seq=st.lists(st.one_of(st.integers(0, 899), st.integers(V, V + 299)), max_size=120),
       limit=st.integers(0, 40))
def test_drafter_output_is_always_valid(seq: list[int], limit: int) -> None:
    draft = GrammarDrafter(V, max_draft=32).draft(seq, limit)
    assert len(draft) <= min(limit, 32)
    assert all(0 <= t < V + 300 for t in draft)


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(1, 60), stride=st.integers(1, 3), p_move=st.floats(0, 1), seed=st.integers(0, 10**6),
    sep=st.sampled_from([(COMMA, SPACE), (COMMA,), (SPACE,), (COMMA, 198)]),
)
def test_replay_accounts_every_token_and_never_costs_more_passes(n, stride, p_move, seed, sep) -> None:
    rng = random.Random(seed)
    box = [20, 30, 50, 60]
    ids = [90, T + 0, T + min(99, n * stride), 92, SPACE]
    for i in range(n):
        if i * stride > 99:
            break
        if rng.random() < p_move:
            box[rng.randrange(4)] += rng.choice([-1, 1])
        ids += entry(i * stride, tuple(box), sep)
    ids[-len(sep):] = [885]  # the answer ends with EOS instead of a separator
    stats = replay(ids, GrammarDrafter(V))
    assert stats.generated_tokens == len(ids)
    assert stats.decoder_passes + stats.accepted_tokens == len(ids)  # each pass: accepted drafts + one
    assert stats.decoder_passes <= len(ids)


def test_replay_on_long_released_grammar_answers_needs_far_fewer_passes() -> None:
    """60-100 entries, boxes that hold or drift by one bin now and then: the STVG acceptance bar (>= 2.5x)."""
    rng = random.Random(0)
    for n in (60, 80, 100):
        box = [20, 30, 50, 60]
        ids = [90, T + 0, T + n - 1, 92, SPACE]
        for k in range(n):
            if rng.random() < 0.3:
                box[rng.randrange(4)] += rng.choice([-1, 1])
            ids += entry(k, tuple(box))
        ids[-2:] = [885]
        stats = replay(ids, GrammarDrafter(V))
        assert len(ids) / stats.decoder_passes >= 2.5, (n, stats)


# ----------------------------------------------------------------------------- identity with plain greedy
def _both(model, ids, max_new_tokens, **kw):
    plain = model.generate_ids(ids, max_new_tokens=max_new_tokens, **kw)
    spec, stats = speculative_generate(model, ids, max_new_tokens=max_new_tokens, **kw)
    return plain, spec, stats


@pytest.fixture(scope="module")
def golden_model(golden_model_dir: Path):
    model, tok = load_model(str(golden_model_dir), device="cpu", dtype=torch.float32)
    return model, tok


@pytest.mark.slow
@pytest.mark.parametrize("case", ["image_rec", "image_reg", "video_elc", "video_stvg", "video_svg"])
def test_identity_on_every_golden_case(golden_model, golden_dir: Path, case: str) -> None:
    model, _ = golden_model
    c = json.loads((golden_dir / "cases" / f"{case}.json").read_text())
    feats = FixtureMedia(golden_dir).features(model, c["modality"])
    ids = torch.tensor([c["input_ids"]])
    for mnt in (len(c["output_ids"]), 160):
        plain, spec, stats = _both(model, ids, mnt, modality=c["modality"], variables=c["variables"],
                                   visual_features=feats)
        assert spec == plain
        assert stats.generated_tokens == len(spec) and stats.decoder_passes <= len(spec)
    assert plain[: len(c["output_ids"])] == c["output_ids"]


def _random_model(hidden: int, layers: int, heads: int, kv: int, seed: int, golden_model_dir: Path):
    cfg = json.loads((golden_model_dir / "config.json").read_text())
    model, _ = load_model(str(golden_model_dir), device="cpu", dtype=torch.float32)
    config = model.config
    config.hidden_size, config.num_hidden_layers = hidden, layers
    config.num_attention_heads, config.num_key_value_heads = heads, kv
    config.intermediate_size = hidden * 3
    config.layer_types = ["full_attention"] * layers
    torch.manual_seed(seed)
    m = LlavaSTForCausalLM(config).eval()
    # Larger-than-default coordinate weights: random models then pick coordinate tokens often, so drafts
    # (and their coordinate-table embeddings) get exercised and sometimes accepted.
    with torch.no_grad():
        for k in ("temporal", "height", "width"):
            for io in ("input", "output"):
                emb = getattr(m.model, f"{k}_{io}_embeddings", None)
                if emb is not None:
                    emb.weight.normal_(0, 0.5)
    m.generation_config = GenerationConfig(eos_token_id=cfg["eos_token_id"])
    return m


class _OracleDrafter:
    """Drafts from the known plain-greedy answer, corrupted at random places: every accept length, the
    crop after a rejection, coordinate ids in drafts and drafts running past EOS all get exercised."""

    def __init__(self, answer: list[int], rng: random.Random) -> None:
        self.answer, self.rng = answer, rng

    def draft(self, seq: list[int], limit: int) -> list[int]:
        assert seq == self.answer[: len(seq)]  # verification only ever emits the greedy tokens
        k = min(limit, self.rng.randrange(0, 12))
        out = list(self.answer[len(seq) : len(seq) + k])
        out += [self.rng.randrange(V + 300) for _ in range(k - len(out))]  # past the answer's end
        if out and self.rng.random() < 0.5:
            out[self.rng.randrange(len(out))] = self.rng.randrange(V + 300)
        return out


class _Collect:
    def __init__(self) -> None:
        self.ids: list[int] = []
        self.ended = False

    def put(self, value: torch.Tensor) -> None:
        assert not self.ended
        self.ids += [int(t) for t in value.flatten().tolist()]

    def end(self) -> None:
        self.ended = True


@pytest.mark.slow
@pytest.mark.parametrize("size", [(32, 1, 2, 1), (64, 2, 4, 2), (96, 3, 4, 4)])
def test_identity_on_random_weight_models(golden_model_dir: Path, size) -> None:
    model = _random_model(*size, seed=sum(size), golden_model_dir=golden_model_dir)
    rng = random.Random(sum(size))
    accepted = 0
    for i in range(10):
        prompt = [rng.randrange(0, V + 300) for _ in range(rng.randrange(2, 40))]
        ids = torch.tensor([prompt])
        model.generation_config.repetition_penalty = 1.3 if i % 3 == 2 else None
        mnt = rng.randrange(1, 90)
        plain, spec, stats = _both(model, ids, mnt)
        assert spec == plain, (size, i)
        drafter, streamed = _OracleDrafter(plain, rng), _Collect()
        oracle, ostats = speculative_generate(model, ids, max_new_tokens=mnt, drafter=drafter,
                                              streamer=streamed)
        assert oracle == plain, (size, i)
        assert streamed.ids == plain and streamed.ended  # streaming hands out exactly the accepted tokens
        # Near-tie guard: with a large margin many drafted positions count as ties and are re-decided by a
        # one-token pass (cache cropped below the re-fed token); the answer must not change.
        for tie in (0.5, float("inf"))[i % 2 :: 2]:
            guarded, gstats = speculative_generate(model, ids, max_new_tokens=mnt, tie_margin=tie,
                                                   drafter=_OracleDrafter(plain, rng))
            assert guarded == plain, (size, i, tie)
        # Each pass emits its accepted drafts plus one token (a near tie costs an extra one-token pass).
        assert ostats.decoder_passes + ostats.accepted_tokens >= len(plain)
        accepted += ostats.accepted_tokens
    model.generation_config.repetition_penalty = None
    assert accepted > 60  # the oracle drafts were really taken, so the crop path ran many times
