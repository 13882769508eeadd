"""The released checkpoint's layout, imitated on the golden checkpoint: composite config (vocabulary under
``text_config``), sharded weights with an index, a hub-id tower built from the checkpoint's own tensors,
and a golden whose video is a longer source with a split. Each variant is built generically from the
shipped fixture in a tmp dir; none is special-cased by the loader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from stchat.errors import ModelLoadError
from stchat.golden import verify_fixture
from stchat.model.checkpoint import INDEX_FILE, inspect_checkpoint
from stchat.model.loading import load_model
from stchat.video.sampling import official_frame_indices

LLM_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "rms_norm_eps", "rope_theta", "max_position_embeddings", "hidden_act",
            "tie_word_embeddings", "bos_token_id", "eos_token_id")  # fmt: skip
HUB_TOWER = "google/siglip-so400m-patch14-384"


def copy_model(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def make_composite(ckpt: Path) -> None:
    """LLM fields (the vocabulary included) only under text_config, as a composite config keeps them."""
    raw = json.loads((ckpt / "config.json").read_text())
    raw["text_config"] = {"model_type": "qwen2", **{k: raw.pop(k) for k in LLM_KEYS if k in raw}}
    (ckpt / "config.json").write_text(json.dumps(raw, indent=1))


def make_sharded(ckpt: Path, n: int = 4) -> None:
    """model.safetensors -> n shards plus model.safetensors.index.json (the hub's naming)."""
    weights = load_file(ckpt / "model.safetensors")
    (ckpt / "model.safetensors").unlink()
    keys = sorted(weights)
    weight_map = {}
    for i in range(n):
        name = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        part = {k: weights[k] for k in keys[i::n]}
        save_file(part, ckpt / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(part, name))
    total = sum(t.numel() * t.element_size() for t in weights.values())
    (ckpt / INDEX_FILE).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))


def make_hub_tower(ckpt: Path, heads: int | None) -> None:
    """mm_vision_tower becomes the hub id and the tower directory goes: the tower must come from tensors."""
    raw = json.loads((ckpt / "config.json").read_text())
    shutil.rmtree(ckpt / raw["mm_vision_tower"])
    raw["mm_vision_tower"] = raw["vision_tower"] = HUB_TOWER
    if heads is not None:
        raw["vision_config"] = {"model_type": "siglip_vision_model", "num_attention_heads": heads}
    (ckpt / "config.json").write_text(json.dumps(raw, indent=1))


def released_layout(golden_model_dir: Path, dst: Path) -> Path:
    ckpt = copy_model(golden_model_dir, dst)
    make_composite(ckpt)
    make_sharded(ckpt)
    make_hub_tower(ckpt, heads=2)  # 32 wide is no released SigLIP width: the config names the heads
    return ckpt


@pytest.fixture(scope="module")
def released(golden_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return released_layout(golden_model_dir, tmp_path_factory.mktemp("released") / "model")


def test_released_layout_is_read_from_headers(released: Path, golden_model_dir: Path) -> None:
    layout = inspect_checkpoint(released)
    golden = inspect_checkpoint(golden_model_dir)
    assert layout.sharded and len(layout.files) == 4
    assert layout.vocab_size == 900 and layout.tokenizer_len == 1200
    assert "vocab_size" not in json.loads((released / "config.json").read_text())
    assert layout.num_parameters == golden.num_parameters
    assert layout.tower.num_tensors == golden.tower.num_tensors
    assert "checkpoint tensors" in layout.tower.source
    # widths/depth from tensor shapes equal what the golden's tower directory says (minus the last layer)
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "patch_size", "image_size"):
        assert layout.tower.fields[key] == golden.tower.fields[key], key


def test_released_layout_loads_the_same_model(released: Path, golden_model_dir: Path) -> None:
    ours, tok = load_model(released, device="cpu", dtype=torch.float32)
    ref, _ = load_model(golden_model_dir, device="cpu", dtype=torch.float32)
    assert ours.config.vocab_size == 900 and len(tok) == 1200
    assert ours.model.vision_tower.config.num_attention_heads == 2
    a, b = ours.state_dict(), ref.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_released_layout_with_a_longer_split_video_passes_verify_golden(
    golden_dir: Path, released: Path, tmp_path: Path
) -> None:
    """The golden video re-laid as a 250-frame source sampled over split [30, 229]: frames the official
    formula picks carry the golden frames, every other frame is noise that must never be read."""
    fixture = tmp_path / "fixture"
    fixture.mkdir()
    (fixture / "model").symlink_to(released)
    shutil.copytree(golden_dir / "vision", fixture / "vision")
    shutil.copytree(golden_dir / "cases", fixture / "cases")
    (fixture / "media").mkdir()
    shutil.copy(golden_dir / "media" / "image.npy", fixture / "media" / "image.npy")
    frames = np.load(golden_dir / "media" / "video_frames.npy")
    split = (30, 229)
    idx = official_frame_indices(250, split)
    assert len(set(idx)) == 100
    source = np.random.default_rng(0).integers(0, 256, (250, *frames.shape[1:]), dtype=np.uint8)
    source[idx] = frames
    np.save(fixture / "media" / "video_frames.npy", source)
    meta = json.loads((fixture / "vision" / "video.json").read_text())
    meta["frame_indices"] = idx
    (fixture / "vision" / "video.json").write_text(json.dumps(meta))
    for path in (fixture / "cases").glob("video_*.json"):
        case = json.loads(path.read_text())
        case["split"] = list(split)
        path.write_text(json.dumps(case))
    report = verify_fixture(fixture, cases=["video_svg", "image_reg"], include_train=False)
    assert report.ok, [c.line() for r in report.cases for c in r.checks if not c.ok]
    video = next(r for r in report.cases if r.name == "vision/video")
    assert video.facts["frame indices == official formula"] and video.facts["all frame pixel hashes equal"]
    # recorded indices that contradict the official formula are reported, not trusted silently
    meta["frame_indices"] = [i + 1 for i in idx]
    (fixture / "vision" / "video.json").write_text(json.dumps(meta))
    report = verify_fixture(fixture, cases=[], include_train=False)
    video = next(r for r in report.cases if r.name == "vision/video")
    assert video.facts["frame indices == official formula"] is False and not report.ok


def _write_config(ckpt: Path, **changes: object) -> None:
    raw = json.loads((ckpt / "config.json").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key].update(value)
        else:
            raw[key] = value
    (ckpt / "config.json").write_text(json.dumps(raw))


def test_vocabulary_disagreement_names_every_source(released: Path, tmp_path: Path) -> None:
    ckpt = copy_model(released, tmp_path / "m")
    # a plain Qwen2-style default at the top level, the right value under text_config
    _write_config(ckpt, vocab_size=151936)
    with pytest.raises(ModelLoadError) as err:
        load_model(ckpt, device="cpu")
    msg = str(err.value)
    assert "\n" not in msg
    assert "151936 (config.json vocab_size)" in msg
    sources = ("embed_tokens rows", "lm_head rows", "text_config.vocab_size", "tokenizer length 1200 - 300")
    assert all(s in msg for s in sources), msg
    assert msg.index("900 (") < msg.index("151936 (")


def test_tokenizer_that_disagrees_with_the_weights_is_named(released: Path, tmp_path: Path) -> None:
    ckpt = copy_model(released, tmp_path / "m")
    tok = json.loads((ckpt / "tokenizer.json").read_text())
    tok["added_tokens"] = [t for t in tok["added_tokens"] if t["content"] != "<WIDTH-099>"]
    (ckpt / "tokenizer.json").write_text(json.dumps(tok))
    with pytest.raises(ModelLoadError, match=r"899 \(tokenizer length 1199 - 300\)"):
        inspect_checkpoint(ckpt)


def test_geometry_disagreement_with_the_tensors(released: Path, tmp_path: Path) -> None:
    ckpt = copy_model(released, tmp_path / "m")
    _write_config(ckpt, text_config={"num_hidden_layers": 3})
    with pytest.raises(ModelLoadError, match=r"num_hidden_layers: 3 \(config.json text_config.*2 \(check"):
        load_model(ckpt, device="cpu")


def test_missing_shard_is_one_line(released: Path, tmp_path: Path) -> None:
    ckpt = copy_model(released, tmp_path / "m")
    (ckpt / "model-00003-of-00004.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="1 of the 4 shards .* missing .*model-00003-of-00004"):
        load_model(ckpt, device="cpu")


def test_hub_tower_of_unknown_width_without_heads_is_a_clear_error(
    golden_model_dir: Path, tmp_path: Path
) -> None:
    ckpt = copy_model(golden_model_dir, tmp_path / "m")
    make_hub_tower(ckpt, heads=None)
    with pytest.raises(ModelLoadError, match="32 wide.*num_attention_heads"):
        load_model(ckpt, device="cpu")


def test_tower_directory_that_disagrees_with_the_tensors(golden_model_dir: Path, tmp_path: Path) -> None:
    ckpt = copy_model(golden_model_dir, tmp_path / "m")
    tower = ckpt / "siglip-tiny-so400m-patch14-384" / "config.json"
    raw = json.loads(tower.read_text())
    raw["vision_config"]["num_hidden_layers"] = 5
    tower.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match=r"num_hidden_layers 4 \(tower config, kept layers\) vs 2"):
        load_model(ckpt, device="cpu")
