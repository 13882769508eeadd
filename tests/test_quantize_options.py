"""--quantize / --adapter reach the model loader from the app and from `stchat ground`; on a machine
without CUDA or bitsandbytes the user gets one clear line, not a traceback."""

from __future__ import annotations

import time
from pathlib import Path

from stchat.cli import main
from stchat.ui.config import parse_config
from stchat.ui.model_holder import ModelHolder


def test_app_options_become_load_kwargs(tmp_path):
    cfg = parse_config(["--quantize", "4bit", "--adapter", str(tmp_path)])
    assert cfg.load_kwargs() == {"load_in_4bit": True, "adapter": tmp_path}
    assert parse_config([]).load_kwargs() == {}


def test_app_reports_quantised_load_failure_as_status(golden_model_dir):
    holder = ModelHolder(str(golden_model_dir), load_in_8bit=True)
    holder.start()
    deadline = time.monotonic() + 120
    while not holder.status().settled and time.monotonic() < deadline:
        time.sleep(0.1)
    status = holder.status()
    assert status.state == "failed"
    assert "bitsandbytes" in status.message or "CUDA" in status.message
    assert "\n" not in status.message


def test_ground_quantize_on_cpu_is_one_line_error(golden_model_dir, synthetic_dir, tmp_path, capsys):
    video = Path(synthetic_dir) / "syn_c_640x360_30fps_noaudio_longgop.mp4"
    code = main(["ground", str(video), "the yellow square", "--model", str(golden_model_dir),
                 "--quantize", "8bit", "--device", "cpu", "--out", str(tmp_path / "out")])
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("stchat")]
    assert code == 2
    assert len(err) == 1 and ("bitsandbytes" in err[0] or "CUDA" in err[0]), err
