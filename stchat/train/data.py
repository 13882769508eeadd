"""Training data: official ST-Align records -> token ids, labels, media and ``variables``; the collator.

Two input formats (docs/official_quirks.md#training-data):

* **official**: JSON list, JSON-lines, ``base{a,b}.json`` or a YAML ``datasets:`` list (``json_path``,
  ``sampling_strategy``, ``data_folder``); texts already hold bare placeholders (``<TEMP-INPUT>``,
  ``<WIDTH-OUTPUT>``...) and ``variables`` holds the six location lists in order of appearance;
* **stchat** (``"format": "stchat"`` on a record, or ``--format stchat``): plain normalised coordinates in
  the text -- ``{0.12,0.40}`` spans, ``[x1,y1,x2,y2]`` boxes, ``0.25: [..]`` timestamped boxes,
  ``Starts in``/``Ends in 0.5`` -- converted by ``stchat.train.friendly``.

Tokenisation and labels follow the official ``train.py: preprocess_qwen`` (Q13): every message is rendered
``<|im_start|>{role}\\n{content}<|im_end|>\\n`` and tokenised whole; system/user messages are masked, the
assistant message (its header included) is supervised, then every ``\\n`` (id 198 in Qwen2),
``<|im_start|>`` and ``<|im_end|>`` is unmasked everywhere, system and user turns included.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from stchat.processing.coords import VARIABLE_KEYS
from stchat.processing.prompt import SYSTEM_MESSAGE
from stchat.processing.prompt import expand_media as expand_media_text
from stchat.train.friendly import friendly_to_official
from stchat.train.media import load_pixels
from stchat.train.objective import IGNORE_INDEX, TrainDataError

SYSTEM_PROMPT = SYSTEM_MESSAGE  # the official training system message equals the inference one
ROLES = {"human": "user", "gpt": "assistant"}
NEWLINE_TOKEN = "Ċ"  # byte-level BPE spelling of "\n"; id 198 in Qwen2 (hard-coded officially)


@dataclass
class TrainRecord:
    """One training sample after loading: official-format texts and resolved media."""

    id: str
    conversations: list[dict[str, str]]
    modality: str  # "video" | "image"
    media: Path
    variables: dict[str, list[float]]
    split: tuple[int, int] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def media_key(self) -> tuple[str, tuple[int, int] | None]:
        """Identity of the decoded media: the same file and split give the same pixels."""
        return (str(self.media), self.split)


# ---------------------------------------------------------------------------------------------------
# Loading records


def _read_list(path: Path) -> list[dict]:
    if not path.is_file():
        raise TrainDataError(f"training data file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainDataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(data, list):
        raise TrainDataError(f"{path}: expected a JSON list of samples")
    return data


def apply_sampling(items: list[dict], strategy: str, rng: random.Random) -> list[dict]:
    """Official ``sampling_strategy``: ``all``, ``first:N``, ``end:N``, ``random:N``; N may be ``P%``."""
    if strategy in ("", "all"):
        return list(items)
    kind, _, amount = strategy.partition(":")
    if kind not in ("first", "end", "random") or not amount:
        raise TrainDataError(f"unknown sampling_strategy {strategy!r} (all, first:N, end:N, random:N)")
    try:
        n = math.ceil(float(amount[:-1]) * len(items) / 100) if amount.endswith("%") else int(amount)
    except ValueError:
        raise TrainDataError(f"bad sample count in sampling_strategy {strategy!r}") from None
    if kind == "first":
        return items[:n]
    if kind == "end":
        # Official ``items[-n:]`` kept as is: ``end:0`` (or a percentage rounding to 0) takes every item.
        return items[-n:]
    # The official code shuffles with the unseeded global RNG; we take a seeded RNG for reproducibility.
    shuffled = list(items)
    rng.shuffle(shuffled)
    return shuffled[:n]


def _resolve(base: Path, raw: str, want_dir: bool) -> Path:
    """A YAML path: absolute as is; relative to the YAML file, else (as officially) to the working directory.

    train.py opens ``json_path``/``data_folder`` relative to the directory it runs in (the repository root),
    so official YAML files hold such paths; ours may also be written relative to the YAML file itself.
    """
    p = Path(raw)
    if p.is_absolute():
        return p
    beside = base / p
    exists = beside.is_dir() if want_dir else beside.is_file()
    if not exists and (p.is_dir() if want_dir else p.is_file()):
        return p
    return beside


def load_raw(data_path: str | Path, data_folder: str | Path | None = None, seed: int = 0
             ) -> list[tuple[dict, Path]]:
    """All raw samples with their media root, from any official data-path form
    (docs/official_quirks.md#training-data)."""
    path = Path(data_path)
    rng = random.Random(seed)
    brace = re.fullmatch(r"(.*)\{(.*)\}\.json", str(path))
    if brace:  # base{a,b}.json -> basea.json, baseb.json
        out: list[tuple[dict, Path]] = []
        for part in brace.group(2).split(","):
            out += load_raw(f"{brace.group(1)}{part.strip()}.json", data_folder, seed)
        return out
    if path.suffix in (".yaml", ".yml"):
        import yaml

        if not path.is_file():
            raise TrainDataError(f"training data file not found: {path}")
        spec = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        out = []
        for i, ds in enumerate(spec.get("datasets") or []):
            if "json_path" not in ds or "data_folder" not in ds:
                raise TrainDataError(f"{path}: datasets[{i}] needs json_path and data_folder")
            jp = _resolve(path.parent, str(ds["json_path"]), want_dir=False)
            folder = _resolve(path.parent, str(ds["data_folder"]), want_dir=True)
            items = apply_sampling(_read_list(jp), str(ds.get("sampling_strategy", "all")), rng)
            out += [(it, folder) for it in items]
        if not out:
            raise TrainDataError(f"{path}: no datasets listed")
        return out
    root = Path(data_folder) if data_folder is not None else path.parent
    return [(it, root) for it in _read_list(path)]


def normalise_variables(variables: Mapping[str, Sequence[float]] | None) -> dict[str, list[float]]:
    """The six location lists; missing keys become empty lists (the official dataset inserts them)."""
    variables = variables or {}
    unknown = set(variables) - set(VARIABLE_KEYS)
    if unknown:
        raise TrainDataError(f"unknown variables key(s): {', '.join(sorted(unknown))}")
    return {k: [float(v) for v in variables.get(k) or []] for k in VARIABLE_KEYS}


def _check_media_tags(conv: list[dict[str, str]], modality: str, sid: str) -> None:
    """Exactly one tag of the sample's own kind, anywhere in the conversation.

    Officially a sample without a tag is silently replaced by the next one, a second tag adds a second
    visual block that the splice cannot fill, and the tag (not the media) decides the block kind; each of
    these trains on something else than the sample says, so we refuse them with the sample's id.
    """
    tag, other = ("<video>", "<image>") if modality == "video" else ("<image>", "<video>")
    count = sum(m["value"].count(tag) for m in conv)
    if any(other in m["value"] for m in conv):
        raise TrainDataError(f"sample {sid}: {other} tag in a {modality} sample")
    if count == 0:
        raise TrainDataError(f"sample {sid}: no {tag} tag in any turn (add one to the first human turn)")
    if count > 1:
        raise TrainDataError(f"sample {sid}: {count} {tag} tags; exactly one visual block is supported")


def to_record(raw: dict, root: Path, index: int, fmt: str = "auto") -> TrainRecord | None:
    """One raw sample -> ``TrainRecord``; ``None`` for samples without media (skipped officially)."""
    sid = str(raw.get("id", index))
    conv = raw.get("conversations")
    if not isinstance(conv, list) or not conv or not all(isinstance(m, dict) and "value" in m for m in conv):
        raise TrainDataError(f"sample {sid}: 'conversations' must be a list of {{from, value}} messages")
    # train.py tests "image" before "video": a sample with both keys is an image sample.
    if "image" in raw:
        modality, media = "image", raw["image"]
        if isinstance(media, list):
            if len(media) != 1:
                raise TrainDataError(f"sample {sid}: exactly one image per sample is supported")
            media = media[0]
    elif "video" in raw:
        modality, media = "video", raw["video"]
    else:
        return None
    conv = [{"from": m.get("from", "human"), "value": str(m["value"])} for m in conv]
    _check_media_tags(conv, modality, sid)
    if fmt == "stchat" or (fmt == "auto" and raw.get("format") == "stchat"):
        conv, variables = friendly_to_official(conv)
    else:
        variables = normalise_variables(raw.get("variables"))
    split = (raw.get("meta") or {}).get("split")
    return TrainRecord(id=sid, conversations=conv, modality=modality, media=root / str(media),
                       variables=variables, split=tuple(int(s) for s in split) if split else None,
                       meta=dict(raw.get("meta") or {}))


def load_records(data_path: str | Path, data_folder: str | Path | None = None, seed: int = 0,
                 fmt: str = "auto") -> list[TrainRecord]:
    """Load every sample of a data path (official or stchat format); samples without media are skipped."""
    out = []
    for i, (raw, root) in enumerate(load_raw(data_path, data_folder, seed)):
        rec = to_record(raw, root, i, fmt)
        if rec is not None:
            out.append(rec)
    if not out:
        raise TrainDataError(f"{data_path}: no sample with a video or an image")
    return out


def check_media(records: Sequence[TrainRecord]) -> None:
    """One-line error naming the first missing media file (and how many samples lack theirs)."""
    missing = [r for r in records if not r.media.is_file()]
    if missing:
        first = missing[0]
        more = f" ({len(missing)} of {len(records)} samples lack their media)" if len(missing) > 1 else ""
        raise TrainDataError(f"sample {first.id}: media file not found: {first.media}{more}")


# ---------------------------------------------------------------------------------------------------
# Tokenisation and labels


def expand_media(conversations: list[dict[str, str]], modality: str) -> list[dict[str, str]]:
    """``preprocess_multimodal`` on every turn: the inference prompt builder's own expansion
    (docs/official_quirks.md#prompt-layout, Q8)."""
    return [{"from": m["from"], "value": expand_media_text(m["value"], modality)} for m in conversations]


def tokenize_conversation(conversations: list[dict[str, str]], tokenizer, max_length: int | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Official ``preprocess_qwen`` ids and labels for one (media-expanded) conversation (Q13)."""
    ids: list[int] = []
    labels: list[int] = []
    if conversations and ROLES.get(conversations[0]["from"], conversations[0]["from"]) != "user":
        # Official: a conversation that does not open with a human turn loses its first message (only
        # that one); LLaVA data sometimes starts with a model greeting.
        conversations = conversations[1:]
    messages = [("system", SYSTEM_PROMPT)] + [(ROLES.get(m["from"], m["from"]), m["value"])
                                              for m in conversations]
    for role, content in messages:
        if role not in ("system", "user", "assistant"):
            raise TrainDataError(f"unknown conversation role {role!r} (expected human or gpt)")
        piece = tokenizer(f"<|im_start|>{role}\n{content}<|im_end|>\n", add_special_tokens=False).input_ids
        ids += piece
        labels += piece if role == "assistant" else [IGNORE_INDEX] * len(piece)
    unmask = {tokenizer.convert_tokens_to_ids(t) for t in (NEWLINE_TOKEN, "<|im_start|>", "<|im_end|>")}
    labels = [i if i in unmask else lab for i, lab in zip(ids, labels, strict=True)]
    if max_length is not None:
        ids, labels = ids[:max_length], labels[:max_length]
    return torch.tensor(ids, dtype=torch.long), torch.tensor(labels, dtype=torch.long)


_AXES = {"temporal": "TEMP", "spatial_height": "HEIGHT", "spatial_width": "WIDTH"}


def check_placeholders(ids: torch.Tensor, variables: Mapping[str, Sequence[float]], tokenizer,
                       sid: str) -> None:
    """Fail early (one line) when a text has more placeholders of a kind than ``variables`` values."""
    for key in VARIABLE_KEYS:
        kind = key.split("_")[-2].upper()  # input / output
        axis = _AXES[key.rsplit("_", 2)[0]]
        tid = tokenizer.convert_tokens_to_ids(f"<{axis}-{kind}>")
        n = int((ids == tid).sum())
        if n > len(variables[key]):
            raise TrainDataError(f"sample {sid}: {n} <{axis}-{kind}> placeholders but {len(variables[key])} "
                                 f"values in variables['{key}']")


@dataclass
class Example:
    """One tokenised sample ready for the collator."""

    id: str
    input_ids: torch.Tensor  # (L,)
    labels: torch.Tensor  # (L,)
    modality: str
    pixel_values: torch.Tensor | None  # (100, 3, 384, 384) video / (1, 3, 384, 384) image
    variables: dict[str, list[float]]
    frame_indices: list[int] | None = None
    media_key: tuple[str, tuple[int, int] | None] | None = None


def encode_record(rec: TrainRecord, tokenizer, max_length: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Ids and labels of one record (media expanded, placeholders checked against ``variables``)."""
    ids, labels = tokenize_conversation(expand_media(rec.conversations, rec.modality), tokenizer, max_length)
    check_placeholders(ids, rec.variables, tokenizer, rec.id)
    return ids, labels


class TrainDataset(torch.utils.data.Dataset):
    """Lazy dataset: tokenises and loads media per item (frames sampled exactly as at inference)."""

    def __init__(self, records: list[TrainRecord], tokenizer, max_length: int | None = 32768,
                 load_media: bool = True, cache_media: bool = False,
                 skip_media: Callable[[Hashable], bool] | None = None) -> None:
        self.records = records
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.load_media = load_media
        # Decoded pixel values per (media, split): worth it for small sets trained for many epochs
        # (a video is 177 MB of fp32 pixels, so not for large sets).
        self.cache_media = cache_media
        self._media: dict[tuple[str, tuple[int, int] | None], tuple] = {}
        # ``skip_media(key)`` true: the media's tower output is cached (``stchat.train.features``), so
        # decoding and preprocessing it again would be wasted.
        self.skip_media = skip_media

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Example:
        rec = self.records[i]
        ids, labels = encode_record(rec, self.tokenizer, self.max_length)
        pixels, frames = None, None
        key = rec.media_key
        if self.load_media and not (self.skip_media is not None and self.skip_media(key)):
            if key in self._media:
                pixels, frames = self._media[key]
            else:
                pixels, frames = load_pixels(rec)
                if self.cache_media:
                    self._media[key] = (pixels, frames)
        return Example(id=rec.id, input_ids=ids, labels=labels, modality=rec.modality, pixel_values=pixels,
                       variables=rec.variables, frame_indices=frames, media_key=key)


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L) bool
    examples: list[Example]

    @property
    def variables(self) -> list[dict[str, list[float]]]:
        return [e.variables for e in self.examples]


def collate(examples: Sequence[Example], pad_id: int, max_length: int | None = None) -> Batch:
    """Official collator: right padding (ids with ``pad_id``, labels with -100), mask = ``ids != pad_id``."""
    length = max(len(e.input_ids) for e in examples)
    if max_length is not None:
        length = min(length, max_length)
    ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), length), IGNORE_INDEX, dtype=torch.long)
    for b, e in enumerate(examples):
        n = min(len(e.input_ids), length)
        ids[b, :n] = e.input_ids[:n]
        labels[b, :n] = e.labels[:n]
    # Officially the mask is ``ids != pad_id``, so a real <|endoftext|> inside a text is masked too.
    return Batch(input_ids=ids, labels=labels, attention_mask=ids != pad_id, examples=list(examples))
