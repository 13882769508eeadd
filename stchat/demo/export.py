"""Training checkpoint -> the shipped demo model directory (official format, fp32 safetensors)."""

from __future__ import annotations

import shutil
from pathlib import Path


def export_checkpoint(checkpoint: str | Path, out: str | Path, base: str | Path) -> Path:
    """Fold a full-fine-tuning checkpoint (its ``adapter/`` trainables) into ``base``; write ``out``."""
    from stchat.model.adapter import merge_to_checkpoint

    ck = Path(checkpoint)
    adapter = ck / "adapter" if (ck / "adapter").is_dir() else ck
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    merge_to_checkpoint(base, adapter, tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
