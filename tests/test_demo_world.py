"""The demo world generator (stchat.demo): seeded scenes, their documented ranges, pixel-exact truth,
answers in the released grammar, and the shipped tokenizer's official layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from stchat.demo.text import caption, sampled_track, stvg_answer, turns_for
from stchat.demo.world import COLOURS, SHAPES, render_frame, sample_scene, target_box, write_clip
from stchat.model.choice import demo_model_dir


def test_scene_is_a_pure_function_of_the_seed():
    assert sample_scene(5).to_json() == sample_scene(5).to_json()
    assert sample_scene(5).to_json() != sample_scene(6).to_json()


@pytest.mark.parametrize("seed", range(40))
def test_scene_ranges(seed):
    s = sample_scene(seed)
    assert 240 <= min(s.width, s.height) <= 1080 and 12 <= s.fps <= 30
    assert 3 <= s.n_frames / s.fps <= 30.1
    assert 1 <= len(s.objects) <= 4
    t = s.target
    assert all(o.colour != t.colour for o in s.objects[1:])
    assert t.colour in COLOURS and t.shape in SHAPES
    visible = (t.end - t.start + 1) / s.n_frames
    assert 0.18 <= visible <= 0.82
    assert 0.079 <= t.size / min(s.width, s.height) <= 0.251
    for f in (t.start, t.end):
        x1, y1, x2, y2 = t.box_px(f)
        assert -1e-6 <= x1 and x2 <= s.width + 1e-6 and -1e-6 <= y1 and y2 <= s.height + 1e-6


@pytest.mark.parametrize("seed", range(12))
def test_larger_objects_for_a_curriculum_keep_every_other_choice_of_the_seed(seed):
    """``sizes`` (scripts/demo_big_spans.py) changes only the objects' sizes (and so their paths); the large
    ones still stay inside the frame over their whole visible span, drawn at the asked size."""
    small, big = sample_scene(seed), sample_scene(seed, sizes=(0.45, 0.8))
    def choices(s):
        return (s.width, s.height, s.fps, s.n_frames, s.background,
                [(o.colour, o.shape, o.motion, o.start, o.end) for o in s.objects])

    assert choices(small) == choices(big)
    short = min(big.width, big.height)
    for o in big.objects:
        assert 0.45 <= o.size / short <= 0.8
        for f in (o.start, o.end):
            x1, y1, x2, y2 = o.box_px(f)
            assert -1e-6 <= x1 and x2 <= big.width + 1e-6 and -1e-6 <= y1 and y2 <= big.height + 1e-6
    with pytest.raises(ValueError, match="object sizes"):
        sample_scene(seed, sizes=(0.5, 0.95))


def test_truth_box_matches_the_drawn_pixels():
    s = sample_scene(11, height=240)
    f = (s.target.start + s.target.end) // 2
    img = render_frame(s, f).astype(int)
    mask = np.abs(img - np.array(s.target.rgb)).sum(-1) == 0
    ys, xs = np.nonzero(mask)
    x1, y1, x2, y2 = target_box(s, f)
    assert abs(xs.min() / s.width - x1) < 0.02 and abs((xs.max() + 1) / s.width - x2) < 0.02
    assert abs(ys.min() / s.height - y1) < 0.02 and abs((ys.max() + 1) / s.height - y2) < 0.02
    assert target_box(s, s.target.end + 1) is None


def test_clip_is_h264_with_every_frame(tmp_path):
    from stchat.video.io import probe

    s = sample_scene(3, height=240, seconds=3.0)
    path = write_clip(s, tmp_path / "c.mp4")
    info = probe(path)
    assert info.frame_count == s.n_frames and (info.width, info.height) == (s.width, s.height)


def test_stvg_answer_has_a_box_for_every_sampled_frame_in_the_span():
    from stchat.parse import parse_answer

    s = sample_scene(21)
    idx, vis = sampled_track(s)
    text = stvg_answer(s)
    parsed = parse_answer(text, "stvg")
    assert parsed.span == pytest.approx((vis[0] / 99, vis[-1] / 99), abs=1e-4)
    assert len(parsed.boxes) == len(vis) == vis[-1] - vis[0] + 1
    k = vis[len(vis) // 2]
    assert parsed.boxes[min(parsed.boxes, key=lambda t: abs(t - k / 99))] == pytest.approx(
        target_box(s, idx[k]), abs=1e-4)


def test_caption_names_every_object_and_turns_become_official_placeholders():
    import random

    from stchat.train.friendly import friendly_to_official

    s = sample_scene(8, n_distractors=2)
    text = caption(s).lower()
    for o in s.objects:
        assert f"{o.colour} {o.shape}" in text
    conv = turns_for(s, random.Random(0), ["stvg", "tvg", "caption"])
    official, variables = friendly_to_official(conv)
    _, vis = sampled_track(s)
    assert official[0]["value"].startswith("<video>\n")
    assert len(variables["temporal_output_locations"]) == 2 + len(vis) + 2


def test_image_records_ask_for_every_visible_object_and_its_drawn_box(tmp_path):
    import random

    from PIL import Image

    from stchat.demo.data import make_train_set
    from stchat.train.friendly import friendly_to_official

    path = make_train_set(tmp_path, 2, seed_base=77, workers=1, records_per_clip=1, images_per_clip=2)
    records = json.loads(path.read_text())
    images = [r for r in records if "image" in r]
    assert len(records) == 6 and len(images) == 4
    for r in images:
        seed, frame = (int(v) for v in Path(r["image"]).stem.split("_")[1:])
        height = random.Random(seed).choice([180, 216, 240, 288])  # as the generator draws it
        scene = sample_scene(seed, height=height, max_seconds=12.0)
        img = np.asarray(Image.open(tmp_path / r["image"]).convert("RGB")).astype(int)
        conv = r["conversations"]
        assert conv[0]["value"].startswith("<image>\n") and scene.target.start <= frame <= scene.target.end
        visible = [o for o in scene.objects if o.box_px(frame) is not None]
        assert len(conv) == 2 * len(visible)  # one question per visible object, the target among them
        for q, a in zip(conv[::2], conv[1::2], strict=True):
            obj = next(o for o in visible if f"{o.colour} {o.shape}" in q["value"])
            x1, y1, x2, y2 = (float(v) for v in a["value"].strip("[]").split(","))
            ys, xs = np.nonzero(np.abs(img - np.array(obj.rgb)).sum(-1) == 0)  # its pixels in the PNG
            u, v = (xs + 0.5) / scene.width, (ys + 0.5) / scene.height
            assert len(xs) and (u >= x1 - 0.01).all() and (u <= x2 + 0.01).all()  # every pixel inside
            assert (v >= y1 - 0.01).all() and (v <= y2 + 0.01).all()
            if obj is scene.target:  # drawn last: never hidden, so its pixels span its box
                assert abs(xs.min() / scene.width - x1) < 0.02
                assert abs((xs.max() + 1) / scene.width - x2) < 0.02
                assert abs((ys.max() + 1) / scene.height - y2) < 0.02
        official, variables = friendly_to_official(conv)
        assert len(variables["spatial_width_output_locations"]) == 2 * len(visible)


def _drawn_box(rgb: np.ndarray, colour: tuple[int, int, int]) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(np.abs(rgb.astype(int) - np.array(colour)).sum(-1) == 0)
    h, w = rgb.shape[:2]
    return xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h


@pytest.mark.parametrize("seed", [5, 31, 64])
def test_lesson_records_box_the_named_object_at_the_asked_time_and_give_the_target_span(seed):
    import random

    from stchat.demo.text import lesson_turns
    from stchat.parse import parse_answer
    from stchat.train.friendly import friendly_to_official

    s = sample_scene(seed, n_distractors=2)
    idx, vis = sampled_track(s)
    conv = lesson_turns(s, random.Random(seed))
    assert conv[0]["value"].startswith("<video>\n")
    spans = 0
    for q, a in zip(conv[::2], conv[1::2], strict=True):
        if "start and end timestamps" in q["value"]:  # TVG: the target's sampled-frame span
            assert q["value"].lower().count(f"{s.target.colour} {s.target.shape}") == 1
            span = parse_answer(a["value"], "tvg").span
            assert span == pytest.approx((vis[0] / 99, vis[-1] / 99), abs=1e-4)
            spans += 1
            continue
        obj = next(o for o in s.objects if f"{o.colour} {o.shape}" in q["value"])
        (q_off, _), variables = friendly_to_official([{"from": "human", "value": q["value"]}, a])
        # The asked moment reaches the model as two TEMP inputs (a one-frame span would be ``{<error>}``)
        k0, k1 = (round(t * 99) for t in variables["temporal_input_locations"])
        assert k1 == k0 + 1 and "<error>" not in q_off["value"]
        boxes = parse_answer(a["value"], "svg").boxes
        assert sorted(boxes) == pytest.approx([k0 / 99, k1 / 99], abs=1e-4)
        for t_a, box in boxes.items():
            assert box == pytest.approx(_drawn_box(render_frame(s, idx[round(t_a * 99)]), obj.rgb), abs=0.02)
    assert spans == 1 and len(conv) == 2 * 4  # two target questions, one distractor question, the span
    _, variables = friendly_to_official(conv)
    assert len(variables["spatial_width_output_locations"]) == 2 * 3 * 2


@pytest.mark.parametrize("seed", [5, 31, 64])
def test_span_records_ask_every_shown_object_and_answer_its_drawn_span(seed):
    """Independent check: the span of each named object is where its exact colour is drawn."""
    import dataclasses
    import random

    from stchat.demo.text import span_turns
    from stchat.parse import parse_answer

    s = sample_scene(seed, n_distractors=3, height=240)
    idx, _ = sampled_track(s)
    conv = span_turns(s, random.Random(seed))
    assert conv[0]["value"].startswith("<video>\n")
    asked = set()
    for q, a in zip(conv[::2], conv[1::2], strict=True):
        obj = next(o for o in s.objects if f"{o.colour} {o.shape}" in q["value"].lower())
        asked.add(obj.colour)
        alone = dataclasses.replace(s, objects=(obj,))  # another object may hide it; the span counts it
        drawn = [k for k, f in enumerate(idx) if (render_frame(alone, f) == np.array(obj.rgb)).all(-1).any()]
        span = parse_answer(a["value"], "tvg").span
        assert span == pytest.approx((drawn[0] / 99, drawn[-1] / 99), abs=1e-4)
    shown = {o.colour for o in s.objects
             if sum(o.start <= f <= o.end for f in idx) >= 2}
    assert asked == shown and len(asked) >= 2


def test_rec_set_is_one_new_scene_per_record(tmp_path):
    import random

    from PIL import Image

    from stchat.demo.__main__ import main
    from stchat.demo.data import REC_SEED_BASE

    assert main(["rec-data", str(tmp_path), "--images", "3", "--workers", "1"]) == 0
    records = json.loads((tmp_path / "rec.json").read_text())
    assert [r["id"] for r in records] == [f"rec_{REC_SEED_BASE + i}" for i in range(3)]
    for r in records:
        img = np.asarray(Image.open(tmp_path / r["image"]).convert("RGB"))
        q, a = r["conversations"][0]["value"], r["conversations"][1]["value"]
        seed = int(r["id"].split("_")[1])
        height = random.Random(seed).choice([180, 216, 240, 288])  # as the generator draws it
        scene = sample_scene(seed, height=height, max_seconds=12.0)
        obj = next(o for o in scene.objects if f"{o.colour} {o.shape}" in q)
        assert q.startswith("<image>\n")
        box = [float(v) for v in a.strip("[]").split(",")]
        assert box == pytest.approx(_drawn_box(img, obj.rgb), abs=0.02)


def test_shipped_tokenizer_has_the_official_layout():
    from stchat.model.loading import load_tokenizer

    cfg = json.loads((demo_model_dir() / "config.json").read_text())
    tok = load_tokenizer(demo_model_dir(), int(cfg["vocab_size"]))  # checks the 300 coordinate ids
    assert tok.convert_tokens_to_ids("<|im_end|>") == cfg["eos_token_id"]
    v0 = cfg["vocab_size"] - 17  # official order: <|endoftext|>, <|im_start|>, <|im_end|> at V0..V0+2
    assert [tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>")] == [
        v0, v0 + 1, v0 + 2]
    assert tok.pad_token == "<|endoftext|>" and tok.eos_token == "<|im_end|>"
    assert len(tok("a red ball moving right").input_ids) <= 6
