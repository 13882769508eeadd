"""Speculative decoding through the user paths (#11): ``StableChat.ground`` (default on, ``speculative=False``
off, off in official sampling), streaming, ``answer.json`` fields and ``stchat ground --no-speculative``."""

from __future__ import annotations

import json

import pytest
import torch

from stchat.chat import StableChat
from stchat.cli import main

pytestmark = pytest.mark.slow
CLIP = "syn_a_640x360_25fps_tone.mp4"


@pytest.fixture(scope="module")
def chat(golden_model_dir) -> StableChat:
    return StableChat(str(golden_model_dir), device="cpu", dtype=torch.float32)


def test_ground_speculative_matches_plain_and_streams_every_token(chat, golden_dir) -> None:
    frames = str(golden_dir / "media" / "video_frames.npy")
    pieces: list[str] = []
    on = chat.ground(frames, "the ball", task="stvg", max_new_tokens=60, on_token=pieces.append)
    off = chat.ground(frames, "the ball", task="stvg", max_new_tokens=60, speculative=False)
    assert on.output_ids == off.output_ids and on.raw_text == off.raw_text
    assert "".join(pieces) == on.raw_text
    assert on.generated_tokens == off.generated_tokens == len(on.output_ids)
    assert off.decoder_passes == off.generated_tokens  # plain: one pass per token
    assert 1 <= on.decoder_passes <= on.generated_tokens
    record = on.to_dict()
    assert (record["generated_tokens"], record["decoder_passes"]) == (on.generated_tokens, on.decoder_passes)
    assert type(on).from_dict(json.loads(json.dumps(record))) == on


def test_official_sampling_runs_the_plain_loop(chat, golden_dir) -> None:
    frames = str(golden_dir / "media" / "video_frames.npy")
    a = chat.ground(frames, "the ball", max_new_tokens=20, decoding="official", seed=3)
    b = chat.ground(frames, "the ball", max_new_tokens=20, decoding="official", seed=3, speculative=False)
    assert a.output_ids == b.output_ids
    assert a.decoder_passes == a.generated_tokens  # speculation is off in sampling mode


def test_speculative_must_be_a_bool(chat, golden_dir) -> None:
    from stchat.errors import PromptError

    with pytest.raises(PromptError, match="speculative"):
        chat.ground(str(golden_dir / "media" / "video_frames.npy"), "x", speculative="no")


def test_cli_no_speculative_writes_the_counts(synthetic_dir, golden_model_dir, tmp_path, capsys) -> None:
    counts = {}
    for flag in ([], ["--no-speculative"]):
        out = tmp_path / (flag[0][2:] if flag else "default")
        code = main([
            "ground", str(synthetic_dir / CLIP), "a red square", "--model", str(golden_model_dir),
            "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "40", "--out", str(out),
            "--no-render", *flag,
        ])
        capsys.readouterr()
        assert code == 0
        record = json.loads((out / "answer.json").read_text())
        counts[bool(flag)] = (record["output_ids"], record["generated_tokens"], record["decoder_passes"])
    assert counts[True][0] == counts[False][0]
    assert counts[True][1] == counts[True][2] == len(counts[True][0])  # --no-speculative: a pass per token
