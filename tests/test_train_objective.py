"""The training objective: sparse two-hot loss == official dense definition == golden numbers."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from stchat.model.modeling_llava_st import ntp_matrix, reparam
from stchat.train.objective import (
    IGNORE_INDEX,
    CoordVocab,
    TrainDataError,
    build_targets,
    coordinate_loss,
    dense_reference_loss,
    dense_targets,
    output_head_weight,
    position_transfer,
)

CASES = ["train_stvg_video", "train_elc_video_inputs", "train_batch2", "train_text_only_labels",
         "train_batch2_mixed"]
GOLDEN_VOCAB = CoordVocab(vocab_size=900, temp_output_id=895, height_output_id=897, width_output_id=899)
TABLES = ("temporal", "spatial_height", "spatial_width")


@pytest.fixture(scope="module")
def weights(golden_model_dir):
    return load_file(str(golden_model_dir / "model.safetensors"))


def _case(golden_dir, name):
    meta = json.loads((golden_dir / "train" / f"{name}.json").read_text())
    return meta, load_file(str(golden_dir / "train" / f"{name}.safetensors"))


def test_position_transfer_edges():
    assert position_transfer(1.0) == (99, 99, 1.0, 0.0)
    assert position_transfer(1.7) == (99, 99, 1.0, 0.0)  # clipped
    assert position_transfer(-0.2) == (0, 0, 1.0, 0.0)
    f, c, wf, wc = position_transfer(0.5)
    assert (f, c) == (49, 50) and wf == pytest.approx(0.5) and wc == pytest.approx(0.5)


@pytest.mark.parametrize("name", CASES)
def test_targets_match_golden_exactly(golden_dir, name):
    meta, t = _case(golden_dir, name)
    for b, var in enumerate(meta["variables_as_passed_to_forward"]):
        tg = build_targets(t["labels"][b], var, GOLDEN_VOCAB)
        assert torch.equal(tg.rows, t[f"s{b}_supervised_rows"])
        assert tg.soft == meta["samples"][b]["loss_branch"].startswith("soft")
        if tg.soft:
            r, c, v = tg.nonzeros()
            assert torch.equal(r, t[f"s{b}_target_rows"])
            assert torch.equal(c, t[f"s{b}_target_cols"])
            assert torch.equal(v, t[f"s{b}_target_vals"])  # bit-exact fp32 weights


@pytest.mark.parametrize("name", CASES)
def test_losses_from_golden_hidden_states(golden_dir, weights, name):
    """Our loss on the official hidden rows reproduces the official per-token and per-sample losses."""
    meta, t = _case(golden_dir, name)
    head = output_head_weight(weights["lm_head.weight"],
                              [weights[f"model.{k}_output_embeddings.weight"] for k in TABLES])
    per_sample = []
    for b, var in enumerate(meta["variables_as_passed_to_forward"]):
        # Scatter the stored hidden rows back into a (1, L, C) tensor: other rows are never read.
        hid = torch.full((1, t["labels"].shape[1], head.shape[1]), float("nan"))
        hid[0, t[f"s{b}_supervised_rows"]] = t[f"s{b}_hidden_supervised"]
        out = coordinate_loss(hid, t["labels"][b:b + 1], [var], head, GOLDEN_VOCAB)
        torch.testing.assert_close(out.token_losses[0], t[f"s{b}_token_loss"], atol=1e-5, rtol=0)
        per_sample.append(out.per_sample[0])
    torch.testing.assert_close(torch.stack(per_sample), t["per_sample_loss"], atol=1e-5, rtol=0)
    assert abs(float(torch.stack(per_sample).sum()) - float(t["loss"])) < 1e-4


def _random_batch(seed: int, length: int = 40, width_v: int = 30):
    g = torch.Generator().manual_seed(seed)
    vocab = CoordVocab(vocab_size=width_v, temp_output_id=width_v - 5, height_output_id=width_v - 3,
                       width_output_id=width_v - 1)
    labels = torch.randint(0, width_v - 6, (2, length), generator=g)
    labels[:, :10] = IGNORE_INDEX
    labels[1, -7:] = IGNORE_INDEX  # padding
    variables = []
    for b in range(2):
        var = {k: [] for k in ("temporal_output_locations", "spatial_height_output_locations",
                                "spatial_width_output_locations")}
        if b == 0:  # sample 1 stays hard-label
            for pos, key, pid in ((12, "temporal_output_locations", vocab.temp_output_id),
                                  (15, "spatial_width_output_locations", vocab.width_output_id),
                                  (16, "spatial_height_output_locations", vocab.height_output_id),
                                  (20, "temporal_output_locations", vocab.temp_output_id)):
                labels[b, pos] = pid
                var[key].append(float(torch.rand(1, generator=g)))
            var["temporal_output_locations"][-1] = 1.0  # one-hot edge case
        variables.append(var)
    return vocab, labels, variables, g


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_sparse_loss_and_gradient_equal_dense_definition(reduction):
    vocab, labels, variables, g = _random_batch(0)
    hidden = torch.randn(2, labels.shape[1], 8, generator=g, dtype=torch.float64, requires_grad=True)
    head = torch.randn(vocab.width, 8, generator=g, dtype=torch.float64, requires_grad=True)
    out = coordinate_loss(hidden, labels, variables, head, vocab, reduction=reduction)
    assert [t.soft for t in out.targets] == [True, False]
    ref = dense_reference_loss(hidden @ head.t(), labels, variables, vocab)
    if reduction == "mean":
        ref = ref / 2
    torch.testing.assert_close(out.loss, ref, atol=1e-12, rtol=0)
    g1 = torch.autograd.grad(out.loss, (hidden, head))
    g2 = torch.autograd.grad(ref, (hidden, head))
    for a, b in zip(g1, g2, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_dense_targets_rows_sum_to_one_and_zero_placeholder_column():
    vocab, labels, variables, _ = _random_batch(1)
    y = dense_targets(labels[0], variables[0], vocab)
    sup = labels[0] != IGNORE_INDEX
    torch.testing.assert_close(y[sup].sum(-1), torch.ones(int(sup.sum())), atol=1e-6, rtol=0)
    assert float(y[~sup].abs().sum()) == 0.0
    assert float(y[:, list(vocab.output_ids)].sum()) == 0.0


def test_more_placeholders_than_locations_is_a_clear_error():
    vocab, labels, variables, _ = _random_batch(2)
    variables[0]["temporal_output_locations"] = variables[0]["temporal_output_locations"][:1]
    with pytest.raises(TrainDataError, match="TEMP-OUTPUT"):
        build_targets(labels[0], variables[0], vocab)


def test_reparam_value_and_ntp_gradient():
    w = torch.randn(100, 6, dtype=torch.float64, requires_grad=True)
    r = reparam(w)
    torch.testing.assert_close(r, w, atol=1e-12, rtol=0)
    gout = torch.randn(100, 6, dtype=torch.float64)
    (grad,) = torch.autograd.grad(r, w, gout)
    m = ntp_matrix(100, torch.float64, "cpu")
    torch.testing.assert_close(grad, gout + m.t() @ gout)
    assert m[3, 5] == 0.25 and m[7, 7] == 1.0


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=-0.5, max_value=1.5, allow_nan=False))
def test_two_hot_weights_reconstruct_location(p):
    f, c, wf, wc = position_transfer(p)
    assert 0 <= f <= c <= 99 and c - f <= 1
    assert wf + wc == pytest.approx(1.0)
    assert (f * wf + c * wc) / 99 == pytest.approx(min(max(p, 0.0), 1.0), abs=1e-12)


def test_temporal_weight_one_is_the_official_loss_and_other_weights_reweigh_only_temp_rows():
    """``temporal_weight`` (stchat's knob, off by default): 1 gives the official loss bit for bit; w gives
    each sample's weighted mean, with w on exactly the rows whose target is a <TEMP-k> bin, computed here
    independently from the dense official targets."""
    vocab, labels, variables, g = _random_batch(2)
    hidden = torch.randn(2, labels.shape[1], 8, generator=g, dtype=torch.float64)
    head = torch.randn(vocab.width, 8, generator=g, dtype=torch.float64)
    base = coordinate_loss(hidden, labels, variables, head, vocab, reduction="mean")
    same = coordinate_loss(hidden, labels, variables, head, vocab, reduction="mean", temporal_weight=1.0)
    assert torch.equal(base.loss, same.loss)
    w = 7.0
    out = coordinate_loss(hidden, labels, variables, head, vocab, reduction="mean", temporal_weight=w)
    expected = []
    logits = hidden @ head.t()
    for b in range(2):
        lab = labels[b]
        y = dense_targets(lab, variables[b], vocab)[1:] if out.targets[b].soft else \
            torch.nn.functional.one_hot(lab[1:].clamp(min=0), vocab.width).double()
        sup = lab[1:] != IGNORE_INDEX
        tok = -(y[sup] * torch.log_softmax(logits[b, :-1][sup], -1)).sum(-1)
        temp_mass = y[sup][:, vocab.vocab_size:vocab.vocab_size + 100].sum(-1)
        weights = torch.where(temp_mass > 0, w, 1.0).double()
        assert 0 < int((temp_mass > 0).sum()) < len(tok) or not out.targets[b].soft
        expected.append((weights * tok).sum() / weights.sum())
    torch.testing.assert_close(out.loss, torch.stack(expected).mean(), atol=1e-12, rtol=0)
    assert not torch.isclose(out.loss, base.loss)
    with pytest.raises(ValueError, match="temporal_weight"):
        coordinate_loss(hidden, labels, variables, head, vocab, temporal_weight=0.0)
