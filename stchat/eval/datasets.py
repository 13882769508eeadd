"""Official benchmark annotations → prompts, ``variables`` and ground truth
(docs/official_quirks.md#task-questions, #benchmark-layout).

Reproduces the record-building of ``inference/src/datasets.py`` (``VidSTGChatDataset``,
``CharadesSTGDataset``, ``RefCOCOEvalDataset``) followed by the ``LocalDataset`` benchmark front-end
(``stchat.processing.coords.format_conversations(..., "benchmark")``), without reading any media: the
item carries the media path (and frame range) for the runner to load.

Randomness (Q17, Q18): the official classes draw prompt phrases from the unseeded module ``random``.
``seed=None`` keeps exactly that behaviour (and its RNG call pattern); an integer seed draws each item's
phrases from its own ``random.Random(f"{seed}:{index}")``, so a subset, a resumed run or a shard gets
the same prompts for the same item whatever else ran before. Each item makes the official number of draws
in the official order (ST-Align twice, Charades once, RefCOCO once), so ``random.seed(s)`` followed by the
unseeded mode replays exactly what the official classes would draw after the same ``random.seed(s)``.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stchat.errors import StchatError
from stchat.eval.official import sampled_frame_ids
from stchat.processing.coords import format_conversations
from stchat.tasks import benchmark_tasks, eval_family, get_task

#: ``VidSTGChatDataset`` keeps only the first 2000 annotations (Q17); published ST-Align numbers use them.
ST_ALIGN_LIMIT = 2000

TVG_TEP = (
    "During the span of",
    "In the time range",
    "During the period",
    "Within the time frame of",
    "In the time period",
    "During",
    "Between",
    "At",
)
TVG_PROMPTS = (
    "Give you a textual query: '<event>'. When does the described content occur in the video? "
    "Please return the start and end timestamps.",
)
REF_PROMPTS = (
    "Where can I find <event> in this image?",
    "What part of this image contains <event>?",
    "Where does <event> appear in this image?",
    "Where is <event> situated within this image?",
)


class DatasetError(StchatError):
    """A benchmark annotation file or item cannot be read or turned into a prompt."""


@dataclass
class BenchmarkItem:
    """One benchmark sample: the official record (no media) plus where its media lives."""

    index: int
    task: str  # stvg | svg | elc | tvg | rec
    media_path: str
    split: list[int] | None  # inclusive original frame range (ST-Align); None = whole video / image
    record: dict[str, Any]  # official record fields: prompt, conversations, variables, gt, ...


def _rng(seed: int | None, index: int) -> random.Random | Any:
    # ``random`` (the module) has the same ``choice`` as an instance: the unseeded official behaviour.
    return random if seed is None else random.Random(f"{seed}:{index}")


def load_annotations(path: str | os.PathLike[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise DatasetError(f"cannot read annotation file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise DatasetError(f"annotation file {path} is not valid JSON: {exc}") from None


def select_indices(
    total: int, first: int | None = None, random_n: int | None = None, seed: int = 0
) -> list[int]:
    """Indices of a subset: all, the first N, or N drawn without replacement with ``seed`` (sorted)."""
    if first is not None and random_n is not None:
        raise DatasetError("choose either the first N items or N random items, not both")
    for n in (first, random_n):
        if n is not None and n < 0:
            raise DatasetError("a subset size cannot be negative")
    if first is not None:
        return list(range(min(first, total)))
    if random_n is not None:
        return sorted(random.Random(seed).sample(range(total), min(random_n, total)))
    return list(range(total))


def _record(kind: str, path: str, prompt: str, before: dict[str, Any], after: dict[str, Any]) -> dict:
    """An official result record, keys in the official order: ``data_type``, the media path, ``before``,
    the prompt and its conversation, ``after``, then ``variables``.

    The conversation is ``LocalDataset.__getitem``'s: the prompt as the human turn (box/span/``Starts in``
    formatting of the benchmark front-end, then ``get_variables``) and an empty model turn.
    """
    convs, variables = format_conversations(
        [{"from": "human", "value": prompt}, {"from": "gpt", "value": None}], front_end="benchmark"
    )
    return {"data_type": kind, f"{kind}_path": path, **before, "prompt": prompt, "conversations": convs,
            **after, "variables": variables}


# ------------------------------------------------------------------------------------------ ST-Align
def _xywh_to_xyxy(box: Sequence[float]) -> list[float]:
    return [box[0], box[1], box[2] + box[0], box[3] + box[1]]


def _apply_tokens(text: str, tokens: Mapping[str, Any], rng: Any) -> str:
    # Official ``apply_tokens``: the phrase is drawn on *every* call, even when "From <s> to <e>" is gone.
    text = text.replace("From <s> to <e>", rng.choice(TVG_TEP) + " {<s>,<e>}")
    for k, v in tokens.items():
        if k in text:
            text = text.replace(k, str(v))
    return text


def st_align_item(
    ann: Mapping[str, Any], data_folder: str, task: str, index: int, seed: int | None
) -> BenchmarkItem:
    """One ``VidSTGChatDataset`` item (task ``stvg``/``svg``/``elc``)."""
    if eval_family(task) != "st-align":
        raise DatasetError(f"unknown ST-Align task {task!r}")
    try:
        meta = ann["meta"]
        width, height = meta["width"], meta["height"]
        split = list(meta["split"])
        spatial = copy.deepcopy(meta["spatial_token"])
        time_tokens = dict(meta["time_token"])
        conversations = ann["conversations"]
        question, answer = conversations[0]["value"], conversations[1]["value"]
        video_path = os.path.join(data_folder, ann["video_path"])
    except (KeyError, IndexError, TypeError) as exc:
        raise DatasetError(f"ST-Align item {index}: missing field {exc}") from None
    if split[1] <= split[0]:
        # Official: ZeroDivisionError in the time normalisation, then LocalDataset silently takes the next
        # item (Q19). We refuse the item instead of substituting another one.
        raise DatasetError(f"ST-Align item {index}: frame range {split} has fewer than 2 frames")
    rng = _rng(seed, index)
    frame_id = sampled_frame_ids(split)
    frame_set = set(frame_id)

    spatial = {k: (_xywh_to_xyxy(v) if isinstance(v, list) else {t: _xywh_to_xyxy(b) for t, b in v.items()})
               for k, v in spatial.items()}  # fmt: skip
    time_float = {k: round((v - split[0]) / (split[1] - split[0] + 1 - 1), 3) for k, v in time_tokens.items()}
    spatial_float = {
        k: [round(x, 3) for x in (v[0] / width, v[1] / height, v[2] / width, v[3] / height)]
        for k, v in spatial.items()
        if isinstance(v, list)
    }
    # ``filter_svg_bboxes_according_to_frame_id``: keep track frames that are among the sampled ids.
    spatial = {
        k: ({t: b for t, b in v.items() if int(t) in frame_set} if isinstance(v, dict) else v)
        for k, v in spatial.items()
    }
    prompt = _apply_tokens(question, spatial_float, rng)
    prompt = _apply_tokens(prompt, time_float, rng)
    # The task's official instruction sentence, appended with no separator (Q17).
    prompt += get_task(task).markers[0]

    try:
        if task == "svg":
            gt: dict[str, Any] = {"svg": spatial["<bboxes>"]}
        else:
            gt = {"tvg": [time_tokens["<s>"], time_tokens["<e>"]], "svg": spatial["<bboxes>"]}
            if task == "elc":
                gt["caption"] = answer.replace("Ends in <e>, ", "").replace(
                    " Object bounding box: <bboxes>", ""
                )
    except KeyError as exc:
        raise DatasetError(f"ST-Align item {index}: missing {exc} for task {task}") from None

    record = _record("video", video_path, prompt, {}, {"gt": gt, "width": width, "height": height,
                                                       "frame_num": len(frame_id), "split": split})
    return BenchmarkItem(index=index, task=task, media_path=video_path, split=split, record=record)


# --------------------------------------------------------------------------------------- Charades-STA
def charades_item(ann: Mapping[str, Any], data_folder: str, index: int, seed: int | None) -> BenchmarkItem:
    """One ``CharadesSTGDataset`` item (TVG); ``timestamp`` must already be normalised to [0, 1]."""
    try:
        image_id = str(ann["image_id"])
        caption = str(ann["caption"]).strip(".").strip(" ").lower()
        gt = ann["timestamp"]
    except KeyError as exc:
        raise DatasetError(f"Charades-STA item {index}: missing field {exc}") from None
    if "activitynet" not in data_folder.lower():
        image_id = image_id.replace("v_", "")
    video_path = os.path.join(data_folder, image_id)
    prompt = "<video>\n" + _rng(seed, index).choice(TVG_PROMPTS).replace("<event>", caption)
    record = _record("video", video_path, prompt, {"caption": caption}, {"file_name": image_id, "gt": gt})
    return BenchmarkItem(index=index, task="tvg", media_path=video_path, split=None, record=record)


# -------------------------------------------------------------------------------------------- RefCOCO
def _clip01(x: float) -> float:
    return x if 0 <= x <= 1 else (0 if x < 0 else 1)


def refcoco_entries(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``RefCOCOEvalDataset.process``: images and annotations aligned by position, ids must agree."""
    try:
        images, anns = data["images"], data["annotations"]
    except (KeyError, TypeError):
        raise DatasetError("RefCOCO file needs 'images' and 'annotations' lists") from None
    out = []
    for i, (image, ann) in enumerate(zip(images, anns, strict=False)):
        if ann.get("id") != image.get("id"):
            raise DatasetError(
                f"RefCOCO item {i}: annotation id {ann.get('id')} != image id {image.get('id')}"
            )
        out.append(
            {
                "file_name": image["file_name"],
                "height": image["height"],
                "width": image["width"],
                "sents": image["caption"],
                "bbox": ann["bbox"],
                "id": image["id"],
            }
        )
    return out


def refcoco_item(
    entry: Mapping[str, Any], image_folder: str, index: int, seed: int | None, sample_prompt: int = -1
) -> BenchmarkItem:
    """One ``RefCOCOEvalDataset`` item (REC). ``sample_prompt`` ≥ 0 fixes the phrase, as officially."""
    sent = entry["sents"]
    if "<image>" in sent:
        prompt = sent
    else:
        template = (
            _rng(seed, index).choice(REF_PROMPTS) if sample_prompt == -1 else REF_PROMPTS[sample_prompt]
        )
        prompt = "<image>\n" + template.replace("<event>", sent)
    x, y, w, h = entry["bbox"]
    width, height = entry["width"], entry["height"]
    box = [x, y, x + w, y + h]
    gt_box = [
        _clip01(round(v, 3)) for v in (box[0] / width, box[1] / height, box[2] / width, box[3] / height)
    ]
    image_path = os.path.join(image_folder, entry["file_name"])
    record = _record("image", image_path, prompt, {"event": sent},
                     {"image_id": entry["file_name"], "gt_bbox": gt_box, "width": width, "height": height})
    return BenchmarkItem(index=index, task="rec", media_path=image_path, split=None, record=record)


# ------------------------------------------------------------------------------------------- loading
def load_benchmark(
    task: str,
    ann_path: str | os.PathLike[str],
    data_folder: str,
    seed: int | None = None,
    first: int | None = None,
    random_n: int | None = None,
    subset_seed: int = 0,
) -> list[BenchmarkItem]:
    """All (or a subset of the) items of one benchmark file; the reader is the task's eval family's."""
    family = eval_family(task)
    if family is None:
        raise DatasetError(f"unknown benchmark task {task!r}: use {', '.join(benchmark_tasks())}")
    data = load_annotations(ann_path)
    if family == "st-align":
        if not isinstance(data, list):
            raise DatasetError(f"{ann_path}: an ST-Align file is a JSON list")
        data = data[:ST_ALIGN_LIMIT]
        idx = select_indices(len(data), first, random_n, subset_seed)
        return [st_align_item(data[i], data_folder, task, i, seed) for i in idx]
    if family == "tvg":
        if not isinstance(data, list):
            raise DatasetError(f"{ann_path}: a Charades-STA file is a JSON list")
        idx = select_indices(len(data), first, random_n, subset_seed)
        return [charades_item(data[i], data_folder, i, seed) for i in idx]
    entries = refcoco_entries(data)  # family "rec"
    idx = select_indices(len(entries), first, random_n, subset_seed)
    return [refcoco_item(entries[i], data_folder, i, seed) for i in idx]
