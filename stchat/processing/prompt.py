"""Query -> prompt token ids, exactly as the official demo / inference builds them.

Steps (docs/official_quirks.md#prompt-layout, docs/official_quirks.md#prompt-layout):

1. the media tag (``<video>`` / ``<image>``) goes first, followed by ``"\\n"`` (``Chat.chat``);
2. coordinates become placeholders + ``variables`` (``stchat.processing.coords``);
3. ``preprocess_multimodal`` expands the tag into the visual block. The block's first and last tokens
   are delimiters that the visual features overwrite too (quirk Q8), hence 727 / 898 / 1618 patch
   tokens between delimiters for 729 / 900 / 1620 positions;
4. ``preprocess_qwen`` assembles the chat template **piecewise**: each piece is tokenised on its own and
   the ids are concatenated (quirk Q9), ending with the assistant header and no ``<|im_end|>``.

User text is untrusted: a query containing ``<|im_end|>``, ``<video>``, ``<vid_patch>``, ``<TEMP-012>``
or a raw placeholder would otherwise inject special ids, add a second visual block or feed values to
the model. Such strings are neutralised (a zero-width space after their first character, so the
tokenizer sees ordinary text) before the single media tag is added, and the final ids are checked.
"""

from __future__ import annotations

import re
import weakref
from dataclasses import dataclass, field
from typing import Any

from stchat.errors import ModelLoadError, PromptError
from stchat.processing.coords import PLACEHOLDER_KEYS, format_query
from stchat.processing.tasks import task_query

__all__ = ["Prompt", "build_prompt", "neutralize", "task_query"]

SYSTEM_MESSAGE = "You are a helpful assistant."
MAX_QUERY_CHARS = 2000
MAX_QUERY_TOKENS = 1024  # text tokens of the user turn, the visual block not counted

IMAGE_TAG = "<image>"
VIDEO_TAG = "<video>"
MEDIA_TAGS = {"image": IMAGE_TAG, "video": VIDEO_TAG}

# Visual block layout of the released model (VisionConfig: 729 image tokens; slow_token true with
# 9 x 100 fast and 81 x 20 slow tokens).
IMAGE_TOKENS = 729
FAST_VIDEO_TOKENS = 900
SLOW_VIDEO_TOKENS = 1620

ZWSP = "\u200b"
# Always neutralised, whatever the tokenizer: media tags are replaced by string matching, and any
# ``<TEMP-...>``/``<HEIGHT-...>``/``<WIDTH-...>`` would be read by get_variables or decode as a coordinate.
_FIXED_UNSAFE = (IMAGE_TAG, VIDEO_TAG)
_UNSAFE_PREFIX = r"<(?:TEMP|HEIGHT|WIDTH)-"


def image_block() -> str:
    return "<im_start>" + "<im_patch>" * (IMAGE_TOKENS - 2) + "<im_end>"


def video_block() -> str:
    return (
        "<vid_start>" + "<vid_patch>" * (FAST_VIDEO_TOKENS - 2) + "<vid_end>"
        + "<slow_vid_start>" + "<vid_patch>" * (SLOW_VIDEO_TOKENS - 2) + "<slow_vid_end>"
    )


@dataclass(frozen=True)
class Prompt:
    """A ready prompt: ids for the model, the coordinate values, and the text the ids spell."""

    input_ids: list[int]
    variables: dict[str, list[float]]
    text: str
    modality: str | None = None
    user_value: str = ""  # the human turn after formatting, before the visual block expansion
    media_span: tuple[int, int] | None = field(default=None)  # [start, end) of the visual block in ids


class _TokenizerInfo:
    """Per-tokenizer facts the builder needs, computed once."""

    def __init__(self, tokenizer: Any) -> None:
        vocab: dict[str, int] = dict(tokenizer.get_added_vocab())
        for name in ("<|im_start|>", "<|im_end|>", "<im_start>", "<vid_start>", "<slow_vid_start>"):
            if name not in vocab:
                raise ModelLoadError(f"the tokenizer lacks the token {name}: not a LLaVA-ST tokenizer")
        self.im_start = vocab["<|im_start|>"]
        self.im_end = vocab["<|im_end|>"]
        self.added_ids = frozenset(vocab.values())
        self.placeholder_ids = {key: vocab[f"<{key}>"] for key, _ in PLACEHOLDER_KEYS if f"<{key}>" in vocab}
        strings = sorted(set(vocab) | set(_FIXED_UNSAFE), key=len, reverse=True)
        self.unsafe = re.compile("|".join([_UNSAFE_PREFIX] + [re.escape(s) for s in strings]))
        self.nl = _encode(tokenizer, "\n")
        self.system_ids = (
            [self.im_start] + _encode(tokenizer, "system") + self.nl + _encode(tokenizer, SYSTEM_MESSAGE)
            + [self.im_end] + self.nl
        )
        self.user_head = _encode(tokenizer, "<|im_start|>user") + self.nl
        self.assistant_head = _encode(tokenizer, "<|im_start|>assistant") + self.nl
        self.blocks = {"image": _encode(tokenizer, image_block()), "video": _encode(tokenizer, video_block())}


_INFO: weakref.WeakKeyDictionary[Any, _TokenizerInfo] = weakref.WeakKeyDictionary()


def _info(tokenizer: Any) -> _TokenizerInfo:
    try:
        info = _INFO.get(tokenizer)
    except TypeError:  # not weak-referenceable: compute every time
        return _TokenizerInfo(tokenizer)
    if info is None:
        info = _TokenizerInfo(tokenizer)
        _INFO[tokenizer] = info
    return info


def _encode(tokenizer: Any, text: str) -> list[int]:
    # ``tokenizer(text).input_ids`` is the official call; Qwen2 adds no BOS/EOS, so nothing is added.
    return list(tokenizer(text).input_ids)


def neutralize(text: str, tokenizer: Any | None = None) -> str:
    """Break every model special string in user text so it tokenises as plain characters.

    A zero-width space goes after the first character of each match: ``<|im_end|>`` -> ``<\\u200b|im_end|>``.
    Without a tokenizer only the fixed set (media tags, coordinate tokens and placeholders) is covered.
    """
    pattern = _info(tokenizer).unsafe if tokenizer is not None else _FALLBACK_UNSAFE
    return pattern.sub(lambda m: m.group(0)[0] + ZWSP + m.group(0)[1:], text)


_FALLBACK_UNSAFE = re.compile(
    "|".join(
        [_UNSAFE_PREFIX, r"<\|[a-z_]+\|>", r"<(?:slow_)?vid_(?:start|end|patch)>"]
        + [r"<im_(?:start|end|patch)>"]
        + [re.escape(s) for s in _FIXED_UNSAFE]
    )
)


def place_media_tag(value: str, tag: str) -> str:
    """Official ``preprocess_multimodal`` placement: a single tag not at the start moves there + ``\\n``."""
    if value.count(tag) == 1 and not value.startswith(tag):
        value = tag + "\n" + value.replace(tag, "").strip()
        value = value.strip()
    return value


def expand_media(value: str, modality: str) -> str:
    """Official ``preprocess_multimodal`` expansion of the (already placed) media tag."""
    if modality == "image":
        value = place_media_tag(value, IMAGE_TAG).replace(IMAGE_TAG, image_block())
        # Official quirk: image turns also lose this literal string (a leftover LLaVA data-cleaning
        # step). Reproduced so that image prompts tokenise as the official code tokenises them.
        return value.replace("QA_GT_caption_based_noisy", "")
    return place_media_tag(value, VIDEO_TAG).replace(VIDEO_TAG, video_block())


def _check_query(query: Any, max_chars: int) -> str:
    if not isinstance(query, str):
        raise PromptError(f"the query must be text, got {type(query).__name__}")
    if len(query) > max_chars:
        raise PromptError(f"the query is too long ({len(query)} characters; the limit is {max_chars})")
    if "\x00" in query:
        raise PromptError("the query contains a NUL character")
    return query


def _media_prefixed(query: str, tokenizer: Any, modality: str | None, front_end: str) -> str:
    """Neutralise user special strings, then add the one media tag (if any) at the start."""
    tag = MEDIA_TAGS.get(modality or "")
    if front_end == "benchmark" and tag is not None and tag in query:
        # Benchmark questions carry their own ``<video>\n``/``<image>\n``: keep exactly one, placed as
        # preprocess_multimodal would place it, and neutralise everything else.
        if query.count(tag) > 1:
            raise PromptError(f"the query contains {query.count(tag)} {tag} tags; at most one is allowed")
        head, _, tail = query.partition(tag)
        return neutralize(head, tokenizer) + tag + neutralize(tail, tokenizer)
    safe = neutralize(query, tokenizer)
    return safe if tag is None else tag + "\n" + safe  # demo Chat.chat: "<video>\n" + query


def build_prompt(
    tokenizer: Any,
    query: str,
    modality: str | None = "video",
    front_end: str = "demo",
    *,
    max_query_chars: int = MAX_QUERY_CHARS,
    max_query_tokens: int = MAX_QUERY_TOKENS,
) -> Prompt:
    """Build the official inference prompt for one question about one video / image (or none)."""
    if modality not in (None, "video", "image"):
        raise PromptError(f"unknown modality {modality!r}: use 'video', 'image' or None")
    if front_end not in ("demo", "benchmark"):
        raise PromptError(f"unknown coordinate front-end {front_end!r}: use 'demo' or 'benchmark'")
    query = _check_query(query, max_query_chars)
    info = _info(tokenizer)

    value, variables = format_query(_media_prefixed(query, tokenizer, modality, front_end), front_end)
    user_value = value
    if modality is not None:
        value = expand_media(value, modality)

    user_ids = _encode(tokenizer, value)
    input_ids = (
        info.system_ids + info.user_head + user_ids + [info.im_end] + info.nl + info.assistant_head
    )
    offset = len(info.system_ids) + len(info.user_head)
    media_span = _check_ids(info, user_ids, variables, modality, offset=offset)
    text_tokens = len(user_ids) - (0 if media_span is None else media_span[1] - media_span[0])
    if text_tokens > max_query_tokens:
        raise PromptError(f"the query is too long ({text_tokens} tokens; the limit is {max_query_tokens})")
    text = (
        f"<|im_start|>system\n{SYSTEM_MESSAGE}<|im_end|>\n<|im_start|>user\n{value}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    return Prompt(input_ids, variables, text, modality, user_value, media_span)


def _check_ids(
    info: _TokenizerInfo,
    user_ids: list[int],
    variables: dict[str, list[float]],
    modality: str | None,
    offset: int,
) -> tuple[int, int] | None:
    """Guard: exactly one visual block, and no special ids but the expected placeholders."""
    span: tuple[int, int] | None = None
    rest = user_ids
    if modality is not None:
        block = info.blocks[modality]
        first = user_ids.index(block[0]) if block[0] in user_ids else -1
        if first < 0 or user_ids[first : first + len(block)] != block:
            raise PromptError("internal error: the visual block did not tokenise as expected")
        span = (offset + first, offset + first + len(block))
        rest = user_ids[:first] + user_ids[first + len(block) :]
    counts: dict[int, int] = {}
    for i in rest:
        if i in info.added_ids:
            counts[i] = counts.get(i, 0) + 1
    for key, name in PLACEHOLDER_KEYS:
        pid = info.placeholder_ids.get(key)
        if pid is not None and counts.pop(pid, 0) != len(variables[name]):
            raise PromptError(f"internal error: <{key}> placeholders and their values do not match")
    if counts:
        raise PromptError("the query contains text that the tokenizer reads as special tokens")
    return span
