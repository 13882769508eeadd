"""``StableChat``: load LLaVA-ST once, then ask it when/where questions about videos and images.

One call does what the official ``demo/demo.py`` ``Chat.chat`` does, in the same order: sample 100
frames with the official index formula, SigLIP-preprocess them, build the prompt (``<video>\\n`` first,
coordinates -> placeholders + variables, piecewise chat template), generate, decode with
``skip_special_tokens=False``, drop ``<|im_end|>``, ``replace_and_normalize``. It then parses the answer
for the task and reports where every sampled frame sits in the source video (index and seconds).

Decoding: ``"greedy"`` (reproducible, what the golden fixture uses) or ``"official"``: the demo's
``do_sample=True, temperature=0.01`` with HF's default top-k 50 (Q22), seedable with ``seed``.

Thread safety: one generation at a time per model (a lock); frame decoding and preprocessing happen
outside the lock, so concurrent callers overlap their I/O with the other's generation.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stchat.answer import ParsedAnswer
from stchat.errors import ModelLoadError, PromptError, VideoError
from stchat.processing.decode import decode_output
from stchat.processing.image import IMAGE_SIZE, load_image, preprocess
from stchat.processing.prompt import Prompt, build_prompt
from stchat.processing.tasks import ALL_TASKS, compose_query, task_modality
from stchat.video.sampling import official_frame_indices

DECODINGS = ("greedy", "official")
OFFICIAL_TEMPERATURE = 0.01  # demo.py / multi_task_inference.py (Q22)
# The official call passes ``top_p=None``, which in HF ``generate`` overrides the checkpoint's
# generation_config and switches top-p off. ``generate_ids`` reads None as "use the config", so "off" is
# said with 1.0. top_k is not passed officially: the checkpoint's value, else HF's 50 (Q22).
OFFICIAL_SAMPLING: dict[str, Any] = {"do_sample": True, "temperature": OFFICIAL_TEMPERATURE, "top_p": 1.0}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}
_PREPROCESS_WORKERS = 4  # PIL releases the GIL while resizing: a few threads overlap decoding
_SEED_RANGE = (-(2**63), 2**64 - 1)  # what torch.Generator.manual_seed accepts

Media = str | Path | np.ndarray | Image.Image
TokenCallback = Callable[[str], None]


@dataclass
class LoadedMedia:
    """Media ready for the model (internal)."""

    modality: str
    pixel_values: torch.Tensor
    frame_indices: list[int] | None = None
    frame_times_s: list[float] | None = None
    video_info: Any = None
    size: tuple[int, int] | None = None  # (width, height) of what the model saw, before the squash
    split: tuple[int, int] | None = None
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class GroundingResult:
    """Everything one question produced: texts, the parsed answer, and where the frames came from."""

    task: str
    query: str  # the question actually sent (after the task template)
    raw_text: str  # decoded answer, coordinate tokens intact, ``<|im_end|>`` removed
    normalized_text: str  # official ``replace_and_normalize`` of raw_text (what the official demo prints)
    parsed: ParsedAnswer
    output_ids: list[int]
    modality: str | None
    frame_indices: list[int] | None  # the 100 sampled source frame indices (video)
    frame_times_s: list[float] | None  # their presentation times in seconds (video file input)
    video_info: Any  # stchat.video.io.VideoInfo for a video file, else None
    media_size: tuple[int, int] | None  # (width, height) of the source frame / image
    split: tuple[int, int] | None
    variables: dict[str, list[float]]
    decoding: str
    seed: int | None
    timings: dict[str, float]

    @property
    def text(self) -> str:
        return self.normalized_text


class _CallbackStreamer:
    """The ``put``/``end`` streamer protocol of HF generate, turned into text pieces for a callback.

    Decodes the whole generated sequence each step and emits the new suffix, holding back a trailing
    U+FFFD (a multi-byte character split across tokens) until the next token completes it.
    """

    def __init__(self, tokenizer: Any, on_token: TokenCallback) -> None:
        self.tokenizer = tokenizer
        self.on_token = on_token
        self.ids: list[int] = []
        self.sent = 0

    def put(self, value: torch.Tensor) -> None:
        new = [int(i) for i in value.flatten().tolist()]
        if not new:
            return
        self.ids.extend(new)
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False).replace("<|im_end|>", "")
        if text.endswith("\ufffd"):
            return
        if len(text) > self.sent:
            self.on_token(text[self.sent :])
            self.sent = len(text)

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False).replace("<|im_end|>", "")
        if len(text) > self.sent:
            self.on_token(text[self.sent :])
            self.sent = len(text)


def _check_media_type(media: object) -> None:
    if not isinstance(media, (str, Path, np.ndarray, Image.Image)):
        raise VideoError(
            f"unsupported media of type {type(media).__name__}: pass a file path, a PIL image, or a uint8 "
            "numpy array of shape (H, W, 3) (image) or (T, H, W, 3) (video frames)"
        )
    if isinstance(media, str) and not media.strip():
        raise VideoError("no media: the path is empty")


def _is_image_input(media: Media) -> bool:
    _check_media_type(media)
    if isinstance(media, Image.Image):
        return True
    if isinstance(media, np.ndarray):
        return media.ndim in (2, 3)  # (H, W) is a grey image: refused later with a shape message
    return Path(media).suffix.lower() in IMAGE_SUFFIXES


def _check_split(split: object) -> tuple[int, int] | None:
    """``None`` or two whole frame numbers; anything else is a clear error (never a silent ``int()``)."""
    if split is None:
        return None
    if isinstance(split, (str, bytes)) or not isinstance(split, Sequence | np.ndarray) or len(split) != 2:
        raise VideoError(f"a frame range needs two whole numbers [first, last]; got {split!r}")
    out = []
    for v in split:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer, float, np.floating)):
            raise VideoError(f"a frame range needs two whole numbers [first, last]; got {list(split)!r}")
        if isinstance(v, (float, np.floating)) and not float(v).is_integer():
            raise VideoError(f"frame numbers must be whole numbers; got {float(v):g}")
        out.append(int(v))
    return out[0], out[1]


def _indices(num_frames: int, split: Sequence[int] | None) -> list[int]:
    try:
        return official_frame_indices(num_frames, _check_split(split))
    except ValueError as exc:
        raise VideoError(str(exc)) from None


def load_media(media: Media, split: Sequence[int] | None = None, fps: float | None = None) -> LoadedMedia:
    """Read and preprocess a video (file, or (T, H, W, 3) uint8 frames / ``.npy``) or an image."""
    t0 = time.perf_counter()
    if _is_image_input(media):
        if split is not None:
            raise VideoError("a frame range only applies to videos, not images")
        image = media if isinstance(media, (Image.Image, np.ndarray)) else load_image(media)
        pixels = preprocess(image)
        size = image.size if isinstance(image, Image.Image) else (image.shape[1], image.shape[0])
        return LoadedMedia("image", pixels, size=size, timings={"preprocess_s": time.perf_counter() - t0})

    split = _check_split(split)
    if fps is not None and not (isinstance(fps, (int, float, np.number)) and 0 < float(fps) < float("inf")):
        raise VideoError(f"fps must be a positive number; got {fps!r}")
    info = None
    times: list[float] | None = None
    if isinstance(media, np.ndarray) or Path(media).suffix.lower() == ".npy":
        frames_all = media if isinstance(media, np.ndarray) else _load_npy(Path(media))
        if frames_all.ndim != 4 or frames_all.shape[0] < 1:
            raise VideoError(f"video frames must have shape (T, H, W, 3); got {tuple(frames_all.shape)}")
        if frames_all.dtype != np.uint8:
            raise VideoError(f"video frames must be uint8 RGB; got dtype {frames_all.dtype}")
        idx = _indices(frames_all.shape[0], split)
        frames: Iterable[tuple[int, np.ndarray]] = ((i, frames_all[i]) for i in sorted(set(idx)))
        if fps is not None:
            times = [i / float(fps) for i in idx]
    else:
        from stchat.video import io as vio  # PyAV: imported only when a video file is read

        path = Path(media)
        if not path.is_file():
            raise VideoError(f"video not found: {path}" if not path.exists() else f"not a file: {path}")
        info = vio.probe(path)
        idx = _indices(info.frame_count, split)
        frames = vio.iter_frames(path, idx, rotation=info.rotation)
        all_times = vio.frame_times(path)
        times = [float(all_times[i]) for i in idx]
    pixels, size, decode_s = _preprocess_sampled(frames, idx)
    first, last = (split[0], split[1]) if split is not None else (0, max(idx))
    return LoadedMedia(
        "video", pixels, idx, times, info, size=size, split=(first, last),
        timings={"decode_s": decode_s, "preprocess_s": time.perf_counter() - t0 - decode_s},
    )


def _preprocess_sampled(
    frames: Iterable[tuple[int, np.ndarray]], idx: Sequence[int]
) -> tuple[torch.Tensor, tuple[int, int], float]:
    """``pixel_values`` for the sampled indices, each distinct frame decoded and preprocessed once.

    Frames stream through: each is preprocessed (on a few threads) as soon as it is decoded and then
    dropped, so memory holds a handful of source frames, not all 100. That is what lets a 4000x3000 or
    7680x4320 clip be grounded without gigabytes of RAM, and a short clip (whose 100 samples repeat a
    few frames) costs one preprocessing per distinct frame. The per-frame arithmetic is
    :func:`stchat.processing.image.preprocess`'s, so the tensor is identical to preprocessing the stack.
    """
    slots: dict[int, list[int]] = {}
    for pos, i in enumerate(idx):
        slots.setdefault(int(i), []).append(pos)
    out = torch.empty((len(idx), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=torch.float32)
    size: tuple[int, int] | None = None
    decode_s = 0.0
    pending: deque[tuple[int, Future[torch.Tensor]]] = deque()

    def drain(keep: int) -> None:
        while len(pending) > keep:
            i, fut = pending.popleft()
            out[slots[i]] = fut.result()

    with ThreadPoolExecutor(max_workers=_PREPROCESS_WORKERS) as pool:
        it = iter(frames)
        while True:
            t = time.perf_counter()
            item = next(it, None)
            decode_s += time.perf_counter() - t
            if item is None:
                break
            i, rgb = item
            size = size or (int(rgb.shape[1]), int(rgb.shape[0]))
            pending.append((int(i), pool.submit(preprocess, rgb)))
            drain(2 * _PREPROCESS_WORKERS)  # bound the frames held in memory
        drain(0)
    if size is None:
        raise VideoError("no video frame could be read")
    return out, size, decode_s


def _load_npy(path: Path) -> np.ndarray:
    if not path.is_file():
        raise VideoError(f"video not found: {path}")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise VideoError(f"cannot read frames from {path.name}: {exc}") from None
    if arr.dtype != np.uint8:
        raise VideoError(f"{path.name}: frames must be uint8 RGB, got {arr.dtype}")
    return arr


def _decoding_kwargs(decoding: str, seed: int | None) -> dict[str, Any]:
    if seed is not None and (
        isinstance(seed, (bool, np.bool_))
        or not isinstance(seed, (int, np.integer))
        or not _SEED_RANGE[0] <= int(seed) <= _SEED_RANGE[1]
    ):
        raise PromptError(f"seed must be an integer in [-2**63, 2**64 - 1]; got {seed!r}")
    if decoding == "greedy":
        return {"do_sample": False, "seed": seed}
    if decoding == "official":
        return {**OFFICIAL_SAMPLING, "seed": seed}
    raise PromptError(f"unknown decoding {decoding!r}: choose one of {', '.join(DECODINGS)}")


class StableChat:
    """A loaded LLaVA-ST model with a question-answering API (see module doc)."""

    def __init__(
        self,
        model: str | Path | None = "appletea2333/LLaVA-ST-Qwen2-7B",
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        adapter: str | Path | None = None,
        **load_kwargs: Any,
    ) -> None:
        from stchat.model.loading import default_model_source, load_model

        self.model_name = str(model) if model is not None else default_model_source()
        if adapter is not None and not Path(adapter).is_dir():
            # Checked before the (slow) base model load.
            raise ModelLoadError(f"adapter directory not found: {adapter}")
        t0 = time.perf_counter()
        self.model, self.tokenizer = load_model(
            self.model_name, device=device, dtype=dtype, adapter=adapter, **load_kwargs
        )
        self.load_s = time.perf_counter() - t0
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _pixel_dtype(self) -> torch.dtype:
        try:
            return next(self.model.model.vision_tower.parameters()).dtype
        except (AttributeError, StopIteration):
            return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ public API
    def ground(
        self,
        video: Media,
        query: str,
        task: str = "stvg",
        split: Sequence[int] | None = None,
        max_new_tokens: int = 1024,
        decoding: str = "greedy",
        seed: int | None = None,
        on_token: TokenCallback | None = None,
        *,
        span: Sequence[float] | None = None,
        start: float | None = None,
        region: Sequence[float] | None = None,
        fps: float | None = None,
        front_end: str = "demo",
    ) -> GroundingResult:
        """Ask one grounding question; ``query`` is a full question or a description the task template wraps.

        See :func:`stchat.processing.tasks.compose_query` for when the template is applied; the question
        actually sent is ``result.query``. ``fps`` gives frame times for raw frame arrays.
        """
        task = str(task).lower()
        if task not in ALL_TASKS:
            raise PromptError(f"unknown task {task!r}: choose one of {', '.join(ALL_TASKS)}")
        if (
            isinstance(max_new_tokens, bool)
            or not isinstance(max_new_tokens, (int, np.integer))
            or not 1 <= max_new_tokens <= 8192
        ):
            raise PromptError(f"max_new_tokens must be an integer between 1 and 8192; got {max_new_tokens!r}")
        max_new_tokens = int(max_new_tokens)
        gen_kwargs = _decoding_kwargs(decoding, seed)
        question = compose_query(task, query, span=span, start=start, region=region)
        t_start = time.perf_counter()
        modality = "image" if _is_image_input(video) else "video"
        need = task_modality(task)
        if need is not None and need != modality:
            raise PromptError(f"task {task!r} works on {'a video' if need == 'video' else 'an image'}")
        # The prompt first: a bad query fails before any frame is decoded.
        prompt = build_prompt(self.tokenizer, question, modality, front_end)
        prompt_s = time.perf_counter() - t_start
        media = load_media(video, split, fps)
        timings = dict(media.timings)
        timings["prompt_s"] = prompt_s
        output_ids, gen_s = self._generate(prompt, media, max_new_tokens, gen_kwargs, on_token)
        timings["generate_s"] = gen_s
        raw, normalized = decode_output(self.tokenizer, output_ids)

        from stchat.parse import parse_answer  # the parser is only needed once there is an answer

        parsed = parse_answer(raw, task)
        timings["total_s"] = time.perf_counter() - t_start
        timings["new_tokens"] = float(len(output_ids))
        return GroundingResult(
            task=task, query=question, raw_text=raw, normalized_text=normalized, parsed=parsed,
            output_ids=output_ids, modality=media.modality, frame_indices=media.frame_indices,
            frame_times_s=media.frame_times_s, video_info=media.video_info, media_size=media.size,
            split=media.split, variables=prompt.variables, decoding=decoding, seed=seed, timings=timings,
        )

    def ask(
        self,
        media: Media,
        question: str,
        split: Sequence[int] | None = None,
        max_new_tokens: int = 1024,
        decoding: str = "greedy",
        seed: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> str:
        """A free question (captioning, "what happens?") about a video or image; returns the answer text."""
        result = self.ground(
            media, question, task="caption", split=split, max_new_tokens=max_new_tokens,
            decoding=decoding, seed=seed, on_token=on_token,
        )
        return result.normalized_text

    # ------------------------------------------------------------------ internals
    def _generate(
        self,
        prompt: Prompt,
        media: LoadedMedia,
        max_new_tokens: int,
        gen_kwargs: dict[str, Any],
        on_token: TokenCallback | None,
    ) -> tuple[list[int], float]:
        streamer = _CallbackStreamer(self.tokenizer, on_token) if on_token is not None else None
        input_ids = torch.tensor([prompt.input_ids], dtype=torch.long)
        pixels = media.pixel_values.to(dtype=self._pixel_dtype())
        with self._lock:
            t0 = time.perf_counter()
            ids = self.model.generate_ids(
                input_ids, pixel_values=pixels, modality=media.modality, variables=prompt.variables,
                max_new_tokens=max_new_tokens, streamer=streamer, **gen_kwargs,
            )
            return [int(i) for i in ids], time.perf_counter() - t0
