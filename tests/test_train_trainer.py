"""Fine-tuning loop on the tiny golden model: learning, exact resume, adapter reload, merge."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from stchat.model.adapter import apply_adapter
from stchat.model.loading import load_model, merge_to_checkpoint
from stchat.train.data import TrainDataset, load_records
from stchat.train.trainer import TrainConfig, train

QUESTIONS = ["Where is the red square in this image?", "Please describe the location of the red square.",
             "What part of this image contains the red square?", "Where can I find the red square?"]


@pytest.fixture(scope="module")
def image_data(tmp_path_factory, golden_dir):
    d = tmp_path_factory.mktemp("imgdata")
    shutil.copy(golden_dir / "media" / "image.png", d / "image.png")
    samples = [{"id": f"rec{i}", "image": "image.png", "format": "stchat",
                "conversations": [{"from": "human", "value": "<image>\n" + q},
                                  {"from": "gpt", "value": "[0.4321,0.3579,0.6172,0.7531]"}]}
               for i, q in enumerate(QUESTIONS)]
    (d / "data.json").write_text(json.dumps(samples))
    return d / "data.json"


def _cfg(golden_model_dir, data, out, **kw) -> TrainConfig:
    base = dict(model=str(golden_model_dir), data=str(data), output_dir=str(out), per_device_batch_size=1,
                gradient_accumulation_steps=2, max_steps=6, learning_rate=5e-3, mm_vision_resampler_lr=5e-3,
                lora_r=8, lora_alpha=16, warmup_ratio=0.2, cache_media=True, attn_implementation="sdpa",
                save_steps=3, progress=False)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory, golden_model_dir, image_data):
    out = tmp_path_factory.mktemp("run_full")
    return train(_cfg(golden_model_dir, image_data, out)), out


def test_loss_goes_down_and_outputs_exist(full_run):
    summary, out = full_run
    losses = summary["losses"]
    assert len(losses) == 6 and losses[-1] < 0.85 * losses[0]
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 7))
    assert (out / "loss_curve.png").stat().st_size > 1000
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "non_lora_trainables.safetensors").is_file()
    assert {p.name for p in out.glob("checkpoint-*")} == {"checkpoint-3", "checkpoint-6"}


def test_kill_and_resume_gives_the_same_loss_curve(full_run, tmp_path, golden_model_dir, image_data):
    summary, _ = full_run
    first = train(_cfg(golden_model_dir, image_data, tmp_path, stop_after_steps=3))
    assert first["steps"] == 3 and "adapter" not in first
    second = train(_cfg(golden_model_dir, image_data, tmp_path, resume="auto"))
    curve = first["losses"] + second["losses"]
    assert curve == pytest.approx(summary["losses"], abs=1e-6, rel=0)
    log = [json.loads(x)["loss"] for x in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert log == pytest.approx(summary["losses"], abs=1e-6, rel=0)


def _logits(model, tok, data):
    ex = TrainDataset(load_records(data), tok)[0]
    with torch.no_grad():
        return model(input_ids=ex.input_ids[None], pixel_values=ex.pixel_values, modality="image",
                     variables=ex.variables).logits


def test_adapter_reload_changes_answers_and_merge_matches(full_run, tmp_path, golden_model_dir, image_data):
    _, out = full_run
    base, tok = load_model(golden_model_dir, device="cpu", dtype=torch.float32, attn_implementation="sdpa")
    before = _logits(base, tok, image_data)
    tuned = apply_adapter(base, out / "adapter")
    after = _logits(tuned, tok, image_data)
    assert float((after - before).abs().max()) > 1e-2
    # Answers change: greedy argmax differs at some supervised position.
    assert not torch.equal(after.argmax(-1), before.argmax(-1))
    merged_dir = merge_to_checkpoint(golden_model_dir, out / "adapter", tmp_path / "merged")
    merged, tok2 = load_model(merged_dir, device="cpu", dtype=torch.float32, attn_implementation="sdpa")
    assert len(tok2) == len(tok)
    diff = float((_logits(merged, tok2, image_data) - after).abs().max())
    assert diff <= 1e-4


@pytest.mark.parametrize("max_norm", [1e-3, None])
def test_gradient_norm_is_clipped_before_the_step(tmp_path, golden_model_dir, image_data, max_norm):
    # The HF Trainer the official scripts use clips at 1.0 by default. After one AdamW step the first
    # moment is (1 - beta1) * g, so its global norm shows the norm of the gradient the step really used.
    from stchat.train.trainer import _optimizer_step, setup

    run = setup(_cfg(golden_model_dir, image_data, tmp_path, mode="full", max_grad_norm=max_norm,
                     gradient_accumulation_steps=1))
    _optimizer_step(run)
    moments = [s["exp_avg"] for s in run.optimizer.state.values() if "exp_avg" in s]
    used = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(m) for m in moments]))) / 0.1
    if max_norm is None:
        assert used > 10 * 1e-3  # the raw gradient of this sample is far larger than the clip below
    else:
        assert used == pytest.approx(max_norm, rel=1e-3)
