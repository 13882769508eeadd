"""Benchmark annotations → official prompts, variables and ground truth
(docs/official_quirks.md#task-questions, #benchmark-layout)."""

from __future__ import annotations

import json
import random

import pytest

from stchat.eval import datasets as ds
from stchat.processing import templates

ELC_ANN = {
    "video_path": "vid/4240545211.mp4",
    "meta": {
        "width": 640,
        "height": 480,
        "split": [0, 257],
        "spatial_token": {
            "<region>": [225.28, 212.16, 97.92, 184.8],  # xywh px -> xyxy [0.352, 0.442, 0.505, 0.827]
            "<bboxes>": {"0": [10, 10, 100, 50], "1": [11, 10, 100, 50], "3": [12, 10, 100, 50]},
        },
        "time_token": {"<s>": 152, "<e>": 200},
    },
    "conversations": [
        {"from": "human", "value": "<video>\nStarts in <s>, what happened within the region <region>?"},
        {"from": "gpt", "value": "Ends in <e>, a man walks away. Object bounding box: <bboxes>"},
    ],
}
STVG_ANN = {
    "video_path": "vid/8665030691.mp4",
    "meta": {
        "width": 640,
        "height": 480,
        "split": [901, 1221],
        "spatial_token": {"<bboxes>": {"901": [0, 0, 10, 10], "902": [0, 0, 10, 10], "904": [1, 2, 3, 4]}},
        "time_token": {"<s>": 904, "<e>": 1221},
    },
    "conversations": [
        {"from": "human", "value": "<video>\nFrom <s> to <e>, where is the child?"},
        {"from": "gpt", "value": "<bboxes>"},
    ],
}


def test_elc_item_prompt_variables_gt():
    item = ds.st_align_item(ELC_ANN, "/data/sources", "elc", 0, seed=1)
    rec = item.record
    s = round(152 / 257, 3)
    assert rec["prompt"] == (
        f"<video>\nStarts in {s}, what happened within the region [0.352, 0.442, 0.505, 0.827]?"
        + templates.ELC_SUFFIX
    )
    human = rec["conversations"][0]["value"]
    # benchmark front-end: box with a leading space and no commas, "Starts in" padded with spaces
    assert human.startswith(
        "<video>\n Starts in <TEMP-INPUT> , what happened within the region  [<WIDTH-INPUT>"
    )
    assert rec["variables"]["temporal_input_locations"] == [s]
    assert rec["variables"]["spatial_width_input_locations"] == [0.352, 0.505]
    assert rec["variables"]["spatial_height_input_locations"] == [0.442, 0.827]
    # GT: frames in original ids; the track converted to xyxy and filtered to sampled ids (0, 3, ... for 258)
    assert rec["gt"]["tvg"] == [152, 200]
    assert rec["gt"]["svg"] == {"0": [10, 10, 110, 60], "3": [12, 10, 112, 60]}
    assert rec["gt"]["caption"] == "a man walks away."
    assert (
        rec["split"] == [0, 257]
        and rec["frame_num"] == 100
        and item.media_path == "/data/sources/vid/4240545211.mp4"
    )
    # the annotation itself is untouched (the official class mutates it)
    assert ELC_ANN["meta"]["spatial_token"]["<region>"] == [225.28, 212.16, 97.92, 184.8]


def test_stvg_span_phrase_seeded_and_unseeded():
    a = ds.st_align_item(STVG_ANN, "", "stvg", 5, seed=3).record
    b = ds.st_align_item(STVG_ANN, "", "stvg", 5, seed=3).record
    assert a == b
    phrase = random.Random("3:5").choice(ds.TVG_TEP)
    e = round((1221 - 901) / 320, 3)
    assert (
        a["prompt"]
        == f"<video>\n{phrase} {{{round(3 / 320, 3)},{e}}}, where is the child?" + templates.STVG_SUFFIX
    )
    assert a["variables"]["temporal_input_locations"] == [round(3 / 320, 3), e]
    assert "{<TEMP-INPUT><TEMP-INPUT>}" in a["conversations"][0]["value"]
    # unseeded: the official module-level draws, twice per item
    random.seed(11)
    c = ds.st_align_item(STVG_ANN, "", "stvg", 5, seed=None).record
    after_item = random.random()
    random.seed(11)
    expected = random.choice(ds.TVG_TEP)
    random.choice(ds.TVG_TEP)  # the second apply_tokens call draws too
    assert c["prompt"].startswith(f"<video>\n{expected} {{")
    assert random.random() == after_item  # exactly two draws were consumed
    assert set(c["gt"]["svg"]) == {"901", "904"}  # 902 is not a sampled frame of [901, 1221]


def test_charades_and_refcoco(tmp_path):
    ann = {"image_id": "v_AB12.mp4", "caption": " Person opens a door.", "timestamp": [0.1, 0.4]}
    ch = ds.charades_item(ann, "charades/sources", 0, seed=0)
    assert ch.media_path == "charades/sources/AB12.mp4"
    assert ch.record["prompt"] == "<video>\n" + ds.TVG_PROMPTS[0].replace("<event>", "person opens a door")
    assert ch.record["gt"] == [0.1, 0.4]
    act = ds.charades_item({"image_id": "v_x", "caption": "a", "timestamp": [0, 1]}, "ActivityNet/v", 0, 0)
    assert act.media_path.endswith("v_x")
    data = {
        "images": [{"file_name": "a.jpg", "height": 200, "width": 100, "caption": "the dog", "id": 7}],
        "annotations": [{"bbox": [10, 20, 95, 300], "id": 7}],
    }
    (tmp_path / "r.json").write_text(json.dumps(data))
    [it] = ds.load_benchmark("rec", tmp_path / "r.json", "imgs", seed=4)
    assert it.record["gt_bbox"] == [0.1, 0.1, 1, 1]  # rounded to 3 decimals then clipped
    assert it.record["prompt"] == "<image>\n" + random.Random("4:0").choice(ds.REF_PROMPTS).replace(
        "<event>", "the dog"
    )
    bad = {"images": data["images"], "annotations": [{"bbox": [0, 0, 1, 1], "id": 8}]}
    (tmp_path / "b.json").write_text(json.dumps(bad))
    with pytest.raises(ds.DatasetError, match="id"):
        ds.load_benchmark("rec", tmp_path / "b.json", "imgs")


def test_subsets_and_limits(tmp_path):
    anns = [json.loads(json.dumps(STVG_ANN)) for _ in range(2100)]
    (tmp_path / "stvg.json").write_text(json.dumps(anns))
    assert len(ds.load_benchmark("stvg", tmp_path / "stvg.json", "", seed=0)) == ds.ST_ALIGN_LIMIT
    assert [i.index for i in ds.load_benchmark("svg", tmp_path / "stvg.json", "", first=3)] == [0, 1, 2]
    r1 = ds.select_indices(2000, random_n=5, seed=9)
    assert r1 == ds.select_indices(2000, random_n=5, seed=9) and r1 == sorted(set(r1)) and len(r1) == 5
    assert r1 != ds.select_indices(2000, random_n=5, seed=10)
    with pytest.raises(ds.DatasetError):
        ds.select_indices(10, first=2, random_n=2)


@pytest.mark.parametrize(
    ("content", "task", "needle"),
    [
        ("not json", "tvg", "not valid JSON"),
        ("{}", "stvg", "JSON list"),
        ("[{}]", "tvg", "missing field"),
        ("[]", "dgc", "unknown benchmark task"),
    ],
)
def test_bad_annotation_files(tmp_path, content, task, needle):
    p = tmp_path / "a.json"
    p.write_text(content)
    with pytest.raises(ds.DatasetError, match=needle):
        ds.load_benchmark(task, p, "")


def test_single_frame_split_refused():
    ann = json.loads(json.dumps(STVG_ANN))
    ann["meta"]["split"] = [5, 5]
    with pytest.raises(ds.DatasetError, match="fewer than 2 frames"):
        ds.st_align_item(ann, "", "stvg", 0, seed=0)
