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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from stchat.answer import GroundingResult
from stchat.errors import ModelLoadError, PromptError
from stchat.media import LoadedMedia, Media, check_media_type, is_image_input, load_sampled
from stchat.model.loading import default_model_source, load_model
from stchat.parse import parse_answer
from stchat.processing.decode import decode_output
from stchat.processing.prompt import Prompt, build_prompt
from stchat.request import OFFICIAL_SAMPLING, GroundingRequest, check_decoding, media_context
from stchat.speculative import DecodeStats, speculative_generate

TokenCallback = Callable[[str], None]


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
        # A speculative pass accepts several tokens at once; they are still handed out one callback per
        # token, so progress counters that count callbacks (the app's) keep counting tokens.
        for token in value.flatten().tolist():
            self.ids.append(int(token))
            text = self.tokenizer.decode(self.ids, skip_special_tokens=False).replace("<|im_end|>", "")
            if text.endswith("\ufffd"):
                continue
            if len(text) > self.sent:
                self.on_token(text[self.sent :])
                self.sent = len(text)

    def end(self) -> None:
        text = self.tokenizer.decode(self.ids, skip_special_tokens=False).replace("<|im_end|>", "")
        if len(text) > self.sent:
            self.on_token(text[self.sent :])
            self.sent = len(text)


def _decoding_kwargs(decoding: str, seed: int | None) -> dict[str, Any]:
    check_decoding(decoding, seed)
    if decoding == "greedy":
        return {"do_sample": False, "seed": seed}
    return {**OFFICIAL_SAMPLING, "seed": seed}


class StableChat:
    """A loaded LLaVA-ST model with a question-answering API (see module doc)."""

    def __init__(
        self,
        model: str | Path | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | str | None = None,
        adapter: str | Path | None = None,
        **load_kwargs: Any,
    ) -> None:
        # None / "demo" / a path or hub id -> the one model choice (stchat.model.choice)
        self.model_name = default_model_source(model)
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
        speculative: bool = True,
    ) -> GroundingResult:
        """Ask one grounding question; ``query`` is a full question or a description the task template wraps.

        See :func:`stchat.processing.tasks.compose_query` for when the template is applied; the question
        actually sent is ``result.query``. ``fps`` gives frame times for raw frame arrays. ``span`` and
        ``start`` are fractions of the range, or ``"2s"``-style seconds; ``region`` fractions or ``"64px"``
        pixels (see :mod:`stchat.request`).
        """
        request = GroundingRequest(
            video, task, query, span=span, start=start, region=region, split=split,
            max_new_tokens=max_new_tokens, decoding=decoding, seed=seed, fps=fps, speculative=speculative,
        )
        return self.answer(request, on_token=on_token, front_end=front_end)

    def answer(
        self, request: GroundingRequest, on_token: TokenCallback | None = None, front_end: str = "demo"
    ) -> GroundingResult:
        """Answer a validated :class:`~stchat.request.GroundingRequest` (what ``ground`` builds)."""
        gen_kwargs = _decoding_kwargs(request.decoding, request.seed)
        t_start = time.perf_counter()
        check_media_type(request.media)
        context = None
        if request.needs_context:  # seconds or pixels given: read the media's header to convert them
            context = media_context(request.media, request.split, request.fps)
        timeline = context.timeline if context is not None else None
        question = request.question(timeline, context.size if context is not None else None)
        modality = "image" if is_image_input(request.media) else "video"
        need = request.spec.modality
        if need is not None and need != modality:
            what = "a video" if need == "video" else "an image"
            raise PromptError(f"task {request.task!r} works on {what}")
        # The prompt first: a bad query fails before any frame is decoded.
        prompt = build_prompt(self.tokenizer, question, modality, front_end)
        prompt_s = time.perf_counter() - t_start
        media = load_sampled(request.media, request.split, request.fps)
        timings = dict(media.timings)
        timings["prompt_s"] = prompt_s
        output_ids, stats = self._generate(
            prompt, media, request.max_new_tokens, gen_kwargs, on_token, request.speculative
        )
        timings["generate_s"] = stats.seconds
        raw, normalized = decode_output(self.tokenizer, output_ids)
        parsed = parse_answer(raw, request.task)
        timings["total_s"] = time.perf_counter() - t_start
        timings["new_tokens"] = float(len(output_ids))
        return GroundingResult(
            task=request.task, query=question, raw_text=raw, normalized_text=normalized, parsed=parsed,
            output_ids=output_ids, modality=media.modality, frame_indices=media.frame_indices,
            frame_times_s=media.frame_times_s, video_info=media.video_info, media_size=media.size,
            split=media.split, variables=prompt.variables, decoding=request.decoding, seed=request.seed,
            timings=timings, asked_span=request.asked_span(timeline),
            media=str(request.media) if isinstance(request.media, (str, Path)) else None,
            generated_tokens=stats.generated_tokens, decoder_passes=stats.decoder_passes,
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

    def generate(
        self,
        prompt: Prompt,
        media: LoadedMedia,
        max_new_tokens: int,
        gen_kwargs: dict[str, Any],
        on_token: TokenCallback | None = None,
        speculative: bool = True,
    ) -> tuple[list[int], DecodeStats]:
        """One generation for a built prompt and loaded media: ``(new token ids, what they cost)``.

        The benchmark engine (:mod:`stchat.eval.engine`) answers through here, so evaluation and chat
        share one generation path (locking, dtype, speculative decoding when enabled).
        """
        return self._generate(prompt, media, max_new_tokens, gen_kwargs, on_token, speculative)

    # ------------------------------------------------------------------ internals
    def _generate(
        self,
        prompt: Prompt,
        media: LoadedMedia,
        max_new_tokens: int,
        gen_kwargs: dict[str, Any],
        on_token: TokenCallback | None,
        speculative: bool = True,
    ) -> tuple[list[int], DecodeStats]:
        """The answer ids and what they cost (tokens, decoder passes, seconds).

        Greedy decoding goes through the grammar drafter with exact verification (:mod:`stchat.speculative`):
        the same ids as the plain loop in fewer decoder passes. Sampling (``decoding="official"``) always
        runs the plain loop -- speculation is switched off there, so a seeded official run keeps its sample.
        """
        streamer = _CallbackStreamer(self.tokenizer, on_token) if on_token is not None else None
        input_ids = torch.tensor([prompt.input_ids], dtype=torch.long)
        pixels = media.pixel_values.to(dtype=self._pixel_dtype())
        with self._lock:
            t0 = time.perf_counter()
            if speculative and not gen_kwargs.get("do_sample"):
                ids, stats = speculative_generate(
                    self.model, input_ids, pixel_values=pixels, modality=media.modality,
                    variables=prompt.variables, max_new_tokens=max_new_tokens, streamer=streamer,
                )
                return ids, stats
            ids = self.model.generate_ids(
                input_ids, pixel_values=pixels, modality=media.modality, variables=prompt.variables,
                max_new_tokens=max_new_tokens, streamer=streamer, **gen_kwargs,
            )
            ids = [int(i) for i in ids]
            # The plain loop runs one decoder pass per token (the prefill pass yields the first).
            return ids, DecodeStats(len(ids), len(ids), seconds=time.perf_counter() - t0)
