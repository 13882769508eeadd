"""What a checkpoint directory holds, read from config.json, the shard index and safetensors headers only.

No tensor is loaded here: a safetensors file starts with an 8-byte length and a JSON header that lists
every tensor's dtype and shape, which is all we need to learn the vocabulary size, the LLM and tower
geometry, the parameter count and the shard layout. ``load_model`` uses this to reconcile the config
with the weights and the tokenizer before it allocates anything; ``stchat inspect-model`` prints it.

Layouts accepted (the released checkpoint uses the second and third):
* LLM fields at the top level of config.json (the official ``LlavaQwenConfig``) or under ``text_config``
  (a composite config);
* ``model.safetensors`` or shards listed in ``model.safetensors.index.json``;
* ``mm_vision_tower`` a directory (its config.json) or a hub id, whose tower is then built from the
  checkpoint's own ``model.vision_tower.*`` tensors without any download.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stchat.errors import ModelLoadError

# google/siglip-so400m-patch14-384, the tower of every released LLaVA-ST checkpoint. Used when
# ``mm_vision_tower`` is a hub id: we never download the tower, because its weights come from the
# checkpoint's own ``model.vision_tower.vision_tower.vision_model.*`` keys anyway
# (docs/official_quirks.md#visual-pipeline).
SO400M_VISION: dict[str, Any] = {
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,  # in the tower repo; the official loader drops the last one (Q9)
    "num_attention_heads": 16,
    "image_size": 384,
    "patch_size": 14,
    "layer_norm_eps": 1e-6,
    "hidden_act": "gelu_pytorch_tanh",
    "num_channels": 3,
}

# <TEMP-k>, <HEIGHT-k>, <WIDTH-k>, k = 0..99: ids V .. V+299 (docs/official_quirks.md#token-ids)
NUM_COORD_TOKENS = 300
INDEX_FILE = "model.safetensors.index.json"
TOWER_PREFIX = "model.vision_tower.vision_tower.vision_model."
EMBED_KEY = "model.embed_tokens.weight"
LM_HEAD_KEY = "lm_head.weight"
_MAX_HEADER = 100 * 1024 * 1024  # a header larger than this is a corrupt file, not a checkpoint
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}  # fmt: skip
# Composite-config keys that describe the sub-config itself, not the LLM.
_NOT_LIFTED = {"model_type", "architectures", "_name_or_path", "transformers_version", "torch_dtype", "dtype"}
# LLM fields whose two config places must agree (a disagreement changes tensor shapes or numerics).
LLM_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "rms_norm_eps", "rope_theta", "max_position_embeddings")  # fmt: skip
# Released SigLIP towers by width: the head count is the one architecture number tensor shapes cannot
# tell (q_proj is width x width for any head count). so400m 1152/16, large 1024/16, base 768/12.
SIGLIP_HEADS_BY_WIDTH = {1152: 16, 1024: 16, 768: 12}
SIGLIP_DEFAULTS = {"layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"}  # every SigLIP release


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    file: str

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_safetensors_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor name -> dtype/shape from the JSON header of one safetensors file (reads only the header)."""
    try:
        with open(path, "rb") as f:
            raw_len = f.read(8)
            if len(raw_len) != 8:
                raise ValueError("file shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", raw_len)
            if n > _MAX_HEADER:
                raise ValueError(f"header length {n} is not plausible")
            header = json.loads(f.read(n))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read the safetensors header of {path}: {exc}") from exc
    return {
        k: TensorInfo(str(v["dtype"]), tuple(int(s) for s in v["shape"]), path.name)
        for k, v in header.items()
        if k != "__metadata__"
    }


def weight_files(ckpt: Path) -> tuple[list[Path], bool]:
    """The safetensors files holding the model weights, and whether an index lists them (sharded)."""
    index = ckpt / INDEX_FILE
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"cannot read {index}: {exc}") from exc
        names = sorted(set(weight_map.values()))
        missing = [n for n in names if not (ckpt / n).is_file()]
        if missing:
            shown = ", ".join(missing[:3]) + (" ..." if len(missing) > 3 else "")
            raise ModelLoadError(
                f"{ckpt}: {len(missing)} of the {len(names)} shards listed in {INDEX_FILE} are missing "
                f"({shown})"
            )
        return [ckpt / n for n in names], True
    return sorted(ckpt.glob("*.safetensors")), False


def read_tensor_infos(ckpt: Path) -> tuple[dict[str, TensorInfo], list[Path], bool]:
    """Every weight's dtype/shape across all shards (headers only), the files, and whether sharded."""
    files, sharded = weight_files(ckpt)
    tensors: dict[str, TensorInfo] = {}
    for path in files:
        tensors.update(read_safetensors_header(path))
    return tensors, files, sharded


def flatten_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A composite config -> the flat ``llava_qwen`` layout: ``text_config`` fields lifted to the top level.

    A field present in both places with different values is an error (the loader reports vocabulary
    disagreements first, with every source). ``vision_config`` moves to ``mm_vision_config``: it
    would otherwise shadow ``LlavaSTConfig.vision_config()``.
    """
    flat = {k: v for k, v in raw.items() if k != "text_config"}
    text = raw.get("text_config") or {}
    if not isinstance(text, Mapping):
        raise ModelLoadError("config.json: text_config must be an object")
    conflicts = []
    for key, value in text.items():
        if key in _NOT_LIFTED:
            continue
        if key in flat and key in LLM_FIELDS and flat[key] != value:
            conflicts.append(f"{key}: top level {flat[key]!r}, text_config {value!r}")
        flat.setdefault(key, value)
    if conflicts:
        raise ModelLoadError("config.json disagrees with its own text_config: " + "; ".join(conflicts))
    if isinstance(flat.get("vision_config"), Mapping):
        flat["mm_vision_config"] = dict(flat.pop("vision_config"))
    return flat


def tokenizer_length(ckpt: Path) -> int | None:
    """``len(tokenizer)`` from the tokenizer files without building the tokenizer (None if absent)."""
    try:
        if (ckpt / "tokenizer.json").is_file():
            tok = json.loads((ckpt / "tokenizer.json").read_text(encoding="utf-8"))
            ids = set((tok.get("model") or {}).get("vocab", {}).values())
            ids.update(int(t["id"]) for t in tok.get("added_tokens") or [])
            return len(ids)
        if (ckpt / "vocab.json").is_file():
            ids = set(json.loads((ckpt / "vocab.json").read_text(encoding="utf-8")).values())
            added = ckpt / "added_tokens.json"
            if added.is_file():
                ids.update(json.loads(added.read_text(encoding="utf-8")).values())
            return len(ids)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot read the tokenizer files of {ckpt}: {exc}") from exc
    return None


def _disagreement(what: str, sources: Mapping[str, int | float | None]) -> str | None:
    """None if every known source agrees, else ``what: 151660 (a, b) vs 151936 (c)``."""
    groups: dict[Any, list[str]] = {}
    for name, value in sources.items():
        if value is not None:
            groups.setdefault(value, []).append(name)
    if len(groups) <= 1:
        return None
    return f"{what}: " + " vs ".join(f"{v} ({', '.join(names)})" for v, names in groups.items())


# ---------------------------------------------------------------------------------------------- tower
@dataclass(frozen=True)
class TowerSpec:
    """The SigLIP tower as the model builds it: kept layers only, no pooling head (Q6)."""

    name: str
    source: str  # human-readable: where the architecture came from
    fields: dict[str, Any]  # SiglipVisionConfig kwargs, num_hidden_layers = layers actually kept
    num_tensors: int  # tower tensors in the checkpoint (421 for the released so400m tower)


def tower_dir(name: str, ckpt: Path | None) -> Path | None:
    """``mm_vision_tower`` as a local directory (absolute, or relative to the checkpoint), if it is one."""
    candidates = [Path(name)]
    if ckpt is not None and not Path(name).is_absolute():
        candidates.append(ckpt / name)
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    return None


def _tower_dir_fields(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read vision tower config {path / 'config.json'}: {exc}") from exc
    vc = raw.get("vision_config", raw)
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "image_size",
            "patch_size", "layer_norm_eps", "hidden_act", "num_channels")  # fmt: skip
    return {k: vc[k] for k in keys if k in vc}


def tower_fields_from_tensors(tensors: Mapping[str, TensorInfo]) -> dict[str, Any] | None:
    """Widths and depth of the tower the checkpoint's own tensors describe (None if it has none)."""
    patch = tensors.get(TOWER_PREFIX + "embeddings.patch_embedding.weight")
    pos = tensors.get(TOWER_PREFIX + "embeddings.position_embedding.weight")
    fc1 = tensors.get(TOWER_PREFIX + "encoder.layers.0.mlp.fc1.weight")
    if patch is None or pos is None or fc1 is None:
        return None
    layers = {
        int(k[len(TOWER_PREFIX + "encoder.layers.") :].split(".")[0])
        for k in tensors
        if k.startswith(TOWER_PREFIX + "encoder.layers.")
    }
    grid = math.isqrt(pos.shape[0])
    return {
        "hidden_size": patch.shape[0],
        "num_channels": patch.shape[1],
        "patch_size": patch.shape[2],
        # 729 positions = 27x27 patches of 14 px: the input is 384 px (27*14 = 378 plus a cropped border),
        # so the image size itself is not in the shapes; resolve_tower checks 384 // 14 == 27.
        "image_size": grid * patch.shape[2],
        "intermediate_size": fc1.shape[0],
        "num_hidden_layers": len(layers),
    }


def resolve_tower(
    name: str,
    ckpt: Path | None,
    tensors: Mapping[str, TensorInfo] | None,
    vision_config: Mapping[str, Any] | None = None,
) -> TowerSpec:
    """The tower architecture: widths/depth from the checkpoint tensors when present, the rest (heads,
    eps, activation) from the tower directory, the config's ``vision_config``, or the released SigLIP
    family. A tower directory that disagrees with the tensors is an error naming both."""
    if "siglip" not in name.lower():
        # The official builder only knows SigLIP towers for this model; anything else would crash there.
        raise ModelLoadError(f"unsupported vision tower {name!r}: LLaVA-ST needs a SigLIP tower")
    from_tensors = tower_fields_from_tensors(tensors) if tensors else None
    n_tensors = sum(1 for k in (tensors or {}) if k.startswith("model.vision_tower."))
    local = tower_dir(name, ckpt)
    extra = {
        k: v
        for k, v in (vision_config or {}).items()
        if k in ("num_attention_heads", "image_size", *SIGLIP_DEFAULTS)
    }
    if from_tensors is not None:
        size = int({**SO400M_VISION, **extra}.get("image_size", 384))
        if local is not None:
            size = int(_tower_dir_fields(local).get("image_size", size))
        if size // from_tensors["patch_size"] == from_tensors["image_size"] // from_tensors["patch_size"]:
            from_tensors["image_size"] = size
    if local is not None:
        fields = {**SO400M_VISION, **_tower_dir_fields(local)}
        if fields["num_hidden_layers"] < 2:
            raise ModelLoadError(
                f"vision tower {name!r} has fewer than 2 layers; LLaVA-ST drops the last one"
            )
        fields["num_hidden_layers"] -= 1  # Q6: the official loader deletes the last encoder layer
        source = f"directory {local}"
        if from_tensors is not None:
            bad = [
                f"{k} {fields[k]} (tower config, kept layers) vs {v} (checkpoint tensors)"
                for k, v in from_tensors.items()
                if fields.get(k) != v
            ]
            if bad:
                raise ModelLoadError(f"vision tower {local} disagrees with the checkpoint: " + "; ".join(bad))
            source += f"; weights from the checkpoint ({n_tensors} tensors)"
        return TowerSpec(name, source, fields, n_tensors)
    if from_tensors is None:
        # No local directory and no tensors to read (a config-only check): the released architecture.
        fields = dict(SO400M_VISION)
        fields.update(extra)
        fields["num_hidden_layers"] -= 1
        return TowerSpec(name, f"hub id {name} (not downloaded; so400m architecture assumed)", fields, 0)
    heads = extra.get("num_attention_heads") or SIGLIP_HEADS_BY_WIDTH.get(from_tensors["hidden_size"])
    if heads is None:
        raise ModelLoadError(
            f"vision tower {name!r}: the checkpoint's tower is {from_tensors['hidden_size']} wide, which "
            "is no released SigLIP width, so its head count is unknown; add "
            "vision_config.num_attention_heads to config.json or name the tower directory"
        )
    fields = {**SIGLIP_DEFAULTS, **extra, **from_tensors, "num_attention_heads": int(heads)}
    source = f"checkpoint tensors ({n_tensors}; hub id {name} not downloaded)"
    return TowerSpec(name, source, fields, n_tensors)


# ---------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class CheckpointLayout:
    """Everything ``load_model`` and ``inspect-model`` need, from the files' metadata only."""

    path: Path
    config: dict[str, Any]  # flattened (text_config lifted), vocab_size set to the reconciled value
    tensors: dict[str, TensorInfo]
    files: list[Path]
    sharded: bool
    vocab_size: int
    tokenizer_len: int | None
    tower: TowerSpec
    notes: list[str] = field(default_factory=list)

    @property
    def num_parameters(self) -> int:
        return sum(t.numel for t in self.tensors.values())

    @property
    def dtypes(self) -> dict[str, int]:
        """Parameter count per stored dtype."""
        out: dict[str, int] = {}
        for t in self.tensors.values():
            out[t.dtype] = out.get(t.dtype, 0) + t.numel
        return out

    @property
    def size_bytes(self) -> int:
        return sum(t.numel * DTYPE_BYTES.get(t.dtype, 4) for t in self.tensors.values())


def _count_layers(tensors: Mapping[str, TensorInfo], prefix: str) -> int | None:
    found = {int(k[len(prefix) :].split(".")[0]) for k in tensors if k.startswith(prefix)}
    return len(found) if found else None


def _rows(tensors: Mapping[str, TensorInfo], key: str, dim: int = 0) -> int | None:
    t = tensors.get(key)
    return t.shape[dim] if t is not None and len(t.shape) > dim else None


def inspect_checkpoint(
    ckpt: Path,
    tensors_required: bool = True,
    tensor_source: tuple[dict[str, TensorInfo], list[Path], bool] | None = None,
) -> CheckpointLayout:
    """Read and reconcile config.json, the shard index, the safetensors headers and the tokenizer files.

    Raises one ``ModelLoadError`` line naming every source that disagrees on the vocabulary size or the
    LLM geometry. ``tensors_required=False`` allows a checkpoint with pickle weights only (no headers).
    """
    try:
        raw = json.loads((ckpt / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {ckpt / 'config.json'}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{ckpt / 'config.json'} is not a JSON object")
    # tensor_source: headers read elsewhere (a hub repo's, over HTTP range requests)
    tensors, files, sharded = tensor_source if tensor_source is not None else read_tensor_infos(ckpt)
    if not tensors and tensors_required:
        raise ModelLoadError(f"{ckpt} has no model weights (*.safetensors)")
    tok_len = tokenizer_length(ckpt)
    text = raw.get("text_config") if isinstance(raw.get("text_config"), dict) else {}
    vocab_sources = {
        "embed_tokens rows": _rows(tensors, EMBED_KEY),
        "lm_head rows": _rows(tensors, LM_HEAD_KEY),
        "config.json vocab_size": raw.get("vocab_size"),
        "config.json text_config.vocab_size": text.get("vocab_size"),
        f"tokenizer length {tok_len} - {NUM_COORD_TOKENS}": (
            None if tok_len is None else tok_len - NUM_COORD_TOKENS
        ),
    }
    problems = [_disagreement("vocabulary size", vocab_sources)]
    known = [v for v in vocab_sources.values() if v is not None]
    if not known:
        raise ModelLoadError(
            f"{ckpt}: cannot tell the vocabulary size (no config value, weights or tokenizer)"
        )
    vocab = int(known[0])
    flat_raw = {**raw, "vocab_size": vocab}
    if "text_config" in flat_raw:
        flat_raw["text_config"] = {**text, "vocab_size": vocab}
    for key, tensor_value in (
        ("hidden_size", _rows(tensors, EMBED_KEY, 1)),
        ("num_hidden_layers", _count_layers(tensors, "model.layers.")),
        ("intermediate_size", _rows(tensors, "model.layers.0.mlp.gate_proj.weight")),
    ):
        problems.append(
            _disagreement(
                key,
                {
                    f"config.json {key}": raw.get(key),
                    f"config.json text_config.{key}": text.get(key),
                    "checkpoint tensors": tensor_value,
                },
            )
        )
    bad = [p for p in problems if p]
    if bad:
        raise ModelLoadError(f"{ckpt} is inconsistent: " + "; ".join(bad))
    flat = flatten_config(flat_raw)
    tower = resolve_tower(
        str(flat.get("mm_vision_tower", "google/siglip-so400m-patch14-384")),
        ckpt,
        tensors,
        flat.get("mm_vision_config"),
    )
    return CheckpointLayout(ckpt, flat, tensors, files, sharded, vocab, tok_len, tower)
