"""Per-media cache of the frozen SigLIP tower output, and media encoding for training from it.

The tower is frozen in every official stage and runs under ``no_grad``
(docs/official_quirks.md#training-stages), so its output for a
given media item is the same at every step. Fine-tuning on a small set for many epochs otherwise
spends most of each step decoding frames, preprocessing 100 x 384 x 384 pixels and running SigLIP
again. The cache is keyed by the record's media identity (path + ``meta.split``), not by pixel content,
so a hit also skips decoding (``TrainDataset`` asks the cache before loading pixels).

Everything after the tower -- projector, LAPE with the reparameterised tables, the packer -- is
recomputed every step through the model's public ``project_and_lape``/``vision_resampler``: those
parts are trainable (packer, tables; the projector too in full fine-tuning), so their output cannot be
reused. ``encode_from_tower`` is therefore exactly ``LlavaSTForCausalLM.encode`` with the tower call
replaced by a lookup (tests assert the equality of values and gradients).
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

import torch

from stchat.errors import VideoError

MediaKey = Hashable


def tower_fingerprint(base) -> str:
    """Hash of the tower's weights (names, shapes, values): the on-disk cache of one tower is never read
    for another (a different checkpoint, or the same one in another dtype)."""
    h = hashlib.sha256()
    for name, t in sorted(base.model.vision_tower.state_dict().items()):
        h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


class TowerCache:
    """LRU map media key -> tower output ``(T, 729, D)``, bounded in bytes; optionally backed by a
    directory (one file per media item) so restarts and later runs skip the tower too.

    Why a disk level: resuming a run otherwise recomputes every item once more (measured on the demo
    model: 800 clips, ~13 min of a 2-core CPU before training is back at full speed).
    """

    def __init__(self, max_bytes: int = 4 << 30, directory: str | Path | None = None) -> None:
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self._items: OrderedDict[MediaKey, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def _file(self, key: MediaKey) -> Path | None:
        if self.directory is None:
            return None
        return self.directory / (hashlib.sha256(repr(key).encode()).hexdigest()[:32] + ".pt")

    def __contains__(self, key: MediaKey) -> bool:
        if key in self._items:
            return True
        f = self._file(key)
        return f is not None and f.is_file()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: MediaKey) -> torch.Tensor | None:
        out = self._items.get(key)
        if out is not None:
            self._items.move_to_end(key)
            return out
        f = self._file(key)
        if f is not None and f.is_file():
            try:
                out = torch.load(f, map_location="cpu", weights_only=True)
            except Exception:  # a damaged cache file is never trusted: removed, recomputed, rewritten
                f.unlink(missing_ok=True)
                return None
            self.put(key, out, persist=False)
        return out

    def put(self, key: MediaKey, value: torch.Tensor, persist: bool = True) -> None:
        f = self._file(key) if persist else None
        if f is not None and not f.is_file():
            f.parent.mkdir(parents=True, exist_ok=True)
            tmp = f.with_suffix(f".{os.getpid()}.tmp")
            torch.save(value.detach().cpu().clone(), tmp)
            os.replace(tmp, f)  # atomic: a killed run leaves no half-written item
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return  # larger than the whole budget: never cached, recomputed each time
        if key in self._items:
            old = self._items.pop(key)
            self._bytes -= old.numel() * old.element_size()
        while self._items and self._bytes + size > self.max_bytes:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()
        self._items[key] = value.detach()
        self._bytes += size

    def tower_output(self, base, key: MediaKey | None, pixel_values: torch.Tensor | None) -> torch.Tensor:
        """The tower output for a media item: cached, or computed from ``pixel_values`` and stored."""
        tower = base.model.vision_tower
        param = tower.vision_tower.vision_model.embeddings.patch_embedding.weight
        cached = self.get(key) if key is not None else None
        if cached is not None:
            self.hits += 1
            return cached.to(param.device)  # a disk-loaded item arrives on the CPU
        if pixel_values is None:
            raise VideoError(f"media {key} is neither cached nor loaded")
        self.misses += 1
        out = tower(pixel_values.to(device=param.device, dtype=base.model.embed_tokens.weight.dtype))
        if key is not None:
            self.put(key, out)
        return out


def encode_from_tower(base, tower_out: torch.Tensor, modality: str) -> torch.Tensor:
    """Visual tokens the LLM sees, from a tower output: ``base.encode`` without the tower call."""
    if modality == "video" and tower_out.shape[0] != 100:
        raise VideoError(f"a video must be exactly 100 sampled frames; got {tower_out.shape[0]}")
    feats = base.project_and_lape(tower_out, modality, base.coordinate_tables())["lape_features"]
    if modality == "video" or getattr(base.config, "use_downsample_image", False):
        slow, _ = base.model.vision_resampler(feats)  # the fast stream never reaches the LLM (Q1)
        return slow.flatten(0, 1)
    return feats.flatten(0, 1)  # images: the 729 LAPE-added tokens, packer skipped (Q7)
