"""Training data path against the official ``train.py`` behaviour the goldens do not exercise.

The goldens cover single-turn human-first samples. Expected ids/labels below were produced once by the
official ``preprocess_qwen`` (train.py, HF 4.40 ``apply_chat_template`` semantics) on the golden tokenizer,
run outside this repository; only inputs and outputs are stored.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from stchat.train.data import apply_sampling, load_raw, to_record, tokenize_conversation


@pytest.fixture(scope="module")
def tokenizer(golden_model_dir):
    return AutoTokenizer.from_pretrained(str(golden_model_dir))


# A multi-turn sample whose first turn is the model's: officially dropped before tokenisation.
GPT_FIRST = [
    {"from": "gpt", "value": "Hello there."},
    {"from": "human", "value": "When does the red square move?"},
    {"from": "gpt", "value": "{<TEMP-OUTPUT><TEMP-OUTPUT>}"},
    {"from": "human", "value": "\nand then?"},
    {"from": "gpt", "value": "It stops."},
]
OFFICIAL_IDS = [
    884, 822, 198, 587, 507, 260, 828, 800, 13, 885, 198, 884, 642, 198, 343, 77, 407, 258, 403, 567, 500,
    291, 30, 885, 198, 884, 820, 198, 90, 895, 895, 92, 885, 198, 884, 642, 198, 198, 593, 396, 30, 885, 198,
    884, 820, 198, 40, 83, 841, 13, 885, 198,
]  # fmt: skip
OFFICIAL_LABELS = [
    884, -100, 198, -100, -100, -100, -100, -100, -100, 885, 198, 884, -100, 198, -100, -100, -100, -100,
    -100, -100, -100, -100, -100, 885, 198, 884, 820, 198, 90, 895, 895, 92, 885, 198, 884, -100, 198, 198,
    -100, -100, -100, 885, 198, 884, 820, 198, 40, 83, 841, 13, 885, 198,
]  # fmt: skip


def test_multi_turn_with_leading_model_turn_matches_official_ids_and_labels(tokenizer):
    ids, labels = tokenize_conversation(GPT_FIRST, tokenizer)
    assert ids.tolist() == OFFICIAL_IDS
    assert labels.tolist() == OFFICIAL_LABELS


def test_leading_model_turn_is_dropped_but_a_later_one_is_kept(tokenizer):
    full, _ = tokenize_conversation(GPT_FIRST, tokenizer)
    rest, _ = tokenize_conversation(GPT_FIRST[1:], tokenizer)
    assert full.tolist() == rest.tolist()
    # The third message (a model turn) is still supervised: its placeholders carry labels.
    assert tokenizer.convert_tokens_to_ids("<TEMP-OUTPUT>") in full.tolist()


def test_a_sample_with_both_image_and_video_is_an_image_sample(tmp_path):
    # train.py checks "image" before "video".
    raw = {"image": "a.png", "video": "b.mp4", "conversations": [{"from": "human", "value": "<image>\nhi"},
                                                                 {"from": "gpt", "value": "ok"}]}
    rec = to_record(raw, tmp_path, 0)
    assert rec is not None and rec.modality == "image" and rec.media == tmp_path / "a.png"


def test_end_zero_takes_every_item_as_officially():
    items = [{"i": i} for i in range(7)]
    # Officially ``items[-0:]``: the whole list (a Python slicing quirk), not an empty one.
    assert apply_sampling(items, "end:0", random.Random(0)) == items
    assert apply_sampling(items, "first:0", random.Random(0)) == []
    assert apply_sampling(items, "end:0%", random.Random(0)) == items


def test_yaml_paths_relative_to_the_working_directory_still_load(tmp_path, monkeypatch):
    # The official loader opens json_path / data_folder relative to the working directory (train.py is run
    # from the repository root with --data_path data/stage3_data.yaml); official YAML files are written so.
    (tmp_path / "data" / "anns").mkdir(parents=True)
    (tmp_path / "media").mkdir()
    sample = {"video": "v.mp4", "conversations": [{"from": "human", "value": "<video>\nq"},
                                                  {"from": "gpt", "value": "a"}]}
    (tmp_path / "data" / "anns" / "a.json").write_text(json.dumps([sample]))
    (tmp_path / "data" / "mix.yaml").write_text(
        "datasets:\n"
        "  - {json_path: data/anns/a.json, sampling_strategy: all, data_folder: media, source: s}\n"
    )
    monkeypatch.chdir(tmp_path)
    out = load_raw(Path("data") / "mix.yaml")
    assert len(out) == 1
    assert Path(os.path.abspath(out[0][1])) == tmp_path / "media"


def test_yaml_paths_relative_to_the_yaml_file_are_preferred(tmp_path, monkeypatch):
    (tmp_path / "cfg" / "media").mkdir(parents=True)
    sample = {"image": "x.png", "conversations": [{"from": "human", "value": "<image>\nq"},
                                                  {"from": "gpt", "value": "a"}]}
    (tmp_path / "cfg" / "a.json").write_text(json.dumps([sample, sample]))
    (tmp_path / "cfg" / "mix.yaml").write_text(
        "datasets:\n  - {json_path: a.json, sampling_strategy: 'first:1', data_folder: media}\n"
    )
    monkeypatch.chdir(tmp_path)
    out = load_raw(tmp_path / "cfg" / "mix.yaml")
    assert len(out) == 1 and out[0][1] == tmp_path / "cfg" / "media"


@pytest.mark.parametrize(
    ("key", "turns", "message"),
    [
        # Officially skipped silently (preprocess_multimodal finds no tag and the next sample is used).
        ("video", ["What happens?", "x"], "no <video> tag"),
        # Officially expanded twice; only one visual block can be spliced.
        ("video", ["<video>\nWhat happens?", "x", "<video> again?", "y"], "2 <video> tags"),
        # Officially the tag decides the block kind, so a video sample would get an image block.
        ("video", ["<video>\nWhat is in <image>?", "x"], "<image> tag in a video sample"),
        ("image", ["<image>\nWhat is in <video>?", "x"], "<video> tag in a image sample"),
    ],
)
def test_media_tags_that_officially_misbehave_are_refused_at_load(tmp_path, key, turns, message):
    from stchat.train.objective import TrainDataError

    conv = [{"from": "human" if i % 2 == 0 else "gpt", "value": v} for i, v in enumerate(turns)]
    with pytest.raises(TrainDataError, match=message):
        to_record({key: "m.bin", "conversations": conv, "id": "s1"}, tmp_path, 0)


def test_media_tag_in_a_later_human_turn_is_accepted(tmp_path):
    conv = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"},
            {"from": "human", "value": "<video>\nWhat happens?"}, {"from": "gpt", "value": "x"}]
    rec = to_record({"video": "v.mp4", "conversations": conv}, tmp_path, 0)
    assert rec is not None and rec.modality == "video"
