"""Training data path: official record formats, preprocess_qwen labels, collator, media sampling."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer

from stchat.errors import VideoError
from stchat.train.data import (
    TrainDataError,
    TrainDataset,
    apply_sampling,
    collate,
    load_records,
)
from stchat.train.media import load_pixels

CASES = ["train_stvg_video", "train_elc_video_inputs", "train_batch2", "train_text_only_labels",
         "train_batch2_mixed"]


@pytest.fixture(scope="module")
def tokenizer(golden_model_dir):
    return AutoTokenizer.from_pretrained(str(golden_model_dir))


@pytest.fixture(scope="module")
def golden_records(golden_dir):
    recs = load_records(golden_dir / "train" / "train_data.json", golden_dir / "media")
    return {r.id: r for r in recs}


@pytest.mark.parametrize("name", CASES)
def test_collated_batch_equals_official_collator(golden_dir, tokenizer, golden_records, name):
    meta = json.loads((golden_dir / "train" / f"{name}.json").read_text())
    t = load_file(str(golden_dir / "train" / f"{name}.safetensors"))
    ds = TrainDataset([golden_records[s] for s in meta["sample_ids"]], tokenizer, load_media=False)
    batch = collate([ds[i] for i in range(len(ds))], pad_id=tokenizer.pad_token_id)
    assert torch.equal(batch.input_ids, t["input_ids"])
    assert torch.equal(batch.labels, t["labels"])
    assert torch.equal(batch.attention_mask, t["attention_mask"])
    assert batch.variables == meta["variables_as_passed_to_forward"]


def test_q13_newlines_and_chat_markers_supervised_in_user_turn(tokenizer, golden_records):
    ds = TrainDataset([golden_records["golden-train-stvg-0"]], tokenizer, load_media=False)
    ex = ds[0]
    sup = torch.nonzero(ex.labels != -100).flatten().tolist()
    # system/user prefix: <|im_start|> (0), "\n" (2), <|im_end|> (9), "\n" (10), <|im_start|> (11), "\n" (13)
    assert sup[:6] == [0, 2, 9, 10, 11, 13]
    assert 2534 in sup  # the "\n" right after the 2520-token media block
    assert 14 not in sup and 1000 not in sup  # media block masked


def test_media_sampling_matches_inference_preprocessing(golden_dir, golden_records):
    video = json.loads((golden_dir / "vision" / "video.json").read_text())
    px, idx = load_pixels(golden_records["golden-train-stvg-0"])
    assert idx == video["frame_indices"]
    hashes = video["per_frame"]["pixel_values"]["sha256_fp32"]
    for k in (0, 37, 99):
        assert hashlib.sha256(px[k].numpy().tobytes()).hexdigest() == hashes[k]
    img, _ = load_pixels(golden_records["golden-train-text-0"])
    assert torch.equal(img, load_file(str(golden_dir / "vision" / "image.safetensors"))["pixel_values"])


def test_split_is_honoured(tmp_path):
    frames = np.zeros((300, 8, 8, 3), np.uint8)
    frames[:, 0, 0, 0] = np.arange(300) % 256
    np.save(tmp_path / "v.npy", frames)
    (tmp_path / "d.json").write_text(json.dumps([{"video": "v.npy", "meta": {"split": [100, 250]},
                                                  "conversations": [{"from": "human", "value": "<video>\nq"},
                                                                    {"from": "gpt", "value": "a"}]}]))
    rec = load_records(tmp_path / "d.json")[0]
    _, idx = load_pixels(rec)
    assert idx[0] == 100 and idx[-1] == 250 and len(idx) == 100


def _write(path, items):
    path.write_text(json.dumps(items))


def _sample(i, media="v.npy"):
    return {"id": f"s{i}", "video": media,
            "conversations": [{"from": "human", "value": "<video>\nq"}, {"from": "gpt", "value": "a"}]}


def test_yaml_jsonl_brace_and_sampling_strategies(tmp_path):
    items = [_sample(i) for i in range(10)]
    _write(tmp_path / "a.json", items)
    (tmp_path / "b.jsonl").write_text("\n".join(json.dumps(s) for s in items[:4]) + "\n")
    (tmp_path / "mix.yaml").write_text(
        "datasets:\n"
        "  - {json_path: a.json, sampling_strategy: 'first:3', data_folder: media_a}\n"
        "  - {json_path: b.jsonl, sampling_strategy: 'end:50%', data_folder: /abs/media_b}\n"
        "  - {json_path: a.json, sampling_strategy: 'random:2', data_folder: media_a}\n")
    recs = load_records(tmp_path / "mix.yaml")
    assert [r.id for r in recs[:5]] == ["s0", "s1", "s2", "s2", "s3"]
    assert len(recs) == 7
    assert recs[0].media == tmp_path / "media_a" / "v.npy" and str(recs[3].media) == "/abs/media_b/v.npy"
    _write(tmp_path / "partx.json", items[:2])
    _write(tmp_path / "party.json", items[5:6])
    assert [r.id for r in load_records(tmp_path / "part{x,y}.json")] == ["s0", "s1", "s5"]
    # seeded random sampling: reproducible, different seeds usually differ
    import random

    a = apply_sampling(items, "random:5", random.Random(1))
    assert a == apply_sampling(items, "random:5", random.Random(1)) and len(a) == 5
    assert len(apply_sampling(items, "first:25%", random.Random(0))) == 3  # ceil(2.5)


def test_text_only_samples_are_skipped_and_errors_are_one_line(tmp_path, tokenizer):
    _write(tmp_path / "d.json", [{"conversations": [{"from": "human", "value": "hi"}]}, _sample(1)])
    assert [r.id for r in load_records(tmp_path / "d.json")] == ["s1"]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TrainDataError, match="not valid JSON"):
        load_records(tmp_path / "bad.json")
    (tmp_path / "bad.yaml").write_text("datasets:\n  - {json_path: d.json}\n")
    with pytest.raises(TrainDataError, match="data_folder"):
        load_records(tmp_path / "bad.yaml")
    with pytest.raises(TrainDataError, match="sampling_strategy"):
        apply_sampling([], "every:3", None)
    s = _sample(2)
    s["conversations"][1]["value"] = "{<TEMP-OUTPUT><TEMP-OUTPUT>}"
    s["variables"] = {"temporal_output_locations": [0.5]}
    _write(tmp_path / "p.json", [s])
    with pytest.raises(TrainDataError, match="2 <TEMP-OUTPUT> placeholders but 1"):
        TrainDataset(load_records(tmp_path / "p.json"), tokenizer, load_media=False)[0]
    with pytest.raises(VideoError, match="not found"):
        TrainDataset(load_records(tmp_path / "d.json"), tokenizer)[0]


def test_collator_truncates_and_pads(tokenizer, golden_records):
    ds = TrainDataset([golden_records["golden-train-text-0"], golden_records["golden-train-batch-0"]],
                      tokenizer, load_media=False)
    batch = collate([ds[0], ds[1]], pad_id=tokenizer.pad_token_id, max_length=1000)
    assert batch.input_ids.shape == (2, 1000)
    n0 = len(ds[0].input_ids)
    assert (batch.labels[0, n0:] == -100).all() and not batch.attention_mask[0, n0:].any()
    assert batch.attention_mask[1].all()


def test_friendly_question_span_must_start_before_it_ends():
    """``{t, t}`` would reach the model as the literal ``{<error>}`` (Q16): refused with the span named."""
    from stchat.train.friendly import friendly_to_official

    answer = {"from": "gpt", "value": "0.3: [0.1,0.2,0.3,0.4], 0.31: [0.1,0.2,0.3,0.4]"}
    official, variables = friendly_to_official(
        [{"from": "human", "value": "<video>\nBetween {0.3, 0.31}, where is it?"}, answer])
    assert variables["temporal_input_locations"] == [0.3, 0.31] and "<error>" not in official[0]["value"]
    for span in ("{0.3, 0.3}", "{0.5,0.2}"):
        with pytest.raises(TrainDataError, match=r"span \{0\.[35], ?0\.[32]\} in a question must start") as e:
            friendly_to_official([{"from": "human", "value": f"<video>\nAt {span}, where is it?"}, answer])
        assert "\n" not in str(e.value)
