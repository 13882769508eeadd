"""``stchat ground VIDEO QUERY``: ask LLaVA-ST when/where, then render the clip, the annotated video and
the timing table. Cheap checks (file, frame range, query, coordinates) run before the model loads, so
bad input fails in a second with one line, not after minutes of loading weights.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from stchat.errors import PromptError, VideoError
from stchat.processing.coords import format_query
from stchat.processing.prompt import MAX_QUERY_CHARS, neutralize
from stchat.processing.tasks import ALL_TASKS, compose_query, task_modality

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ground",
        help="find when and where something happens in a video (or an image)",
        description="Run LLaVA-ST on a video (100 frames sampled the official way) or an image, print the "
        "answer, and for videos write clip.mp4, annotated.mp4, timing.csv and timing.json to --out.",
    )
    p.add_argument("video", metavar="VIDEO", type=Path, help="video file (or image file for rec/reg/dgc)")
    p.add_argument("query", metavar="QUERY", help="a full question, or a description the task template wraps")
    p.add_argument("--task", default="stvg", choices=ALL_TASKS, help="what to ask (default: stvg)")
    p.add_argument("--split", nargs=2, type=int, metavar=("FIRST", "LAST"), help="inclusive frame range")
    p.add_argument("--model", default=None, help="checkpoint directory or hub id (default: $STCHAT_MODEL or "
                   "appletea2333/LLaVA-ST-Qwen2-7B)")
    p.add_argument("--adapter", type=Path, default=None, help="PEFT/LoRA adapter directory to merge")
    p.add_argument("--out", type=Path, default=Path("stchat-out"), help="output directory")
    p.add_argument("--decoding", default="greedy", choices=("greedy", "official"),
                   help="greedy (reproducible) or official (temperature 0.01 sampling, as the demo)")
    p.add_argument("--seed", type=int, default=None, help="seed for --decoding official")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="generation budget (default 1024)")
    p.add_argument("--span", nargs=2, type=float, metavar=("START", "END"),
                   help="time span as clip fractions (svg, tr)")
    p.add_argument("--start", type=float, default=None, help="event start as a clip fraction (elc)")
    p.add_argument("--region", nargs=4, type=float, metavar=("X1", "Y1", "X2", "Y2"),
                   help="box as frame fractions (elc, reg)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: best available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: per device)")
    p.add_argument("--quantize", choices=("8bit", "4bit"), default=None,
                   help="load the weights quantised with bitsandbytes (CUDA only)")
    p.add_argument("--no-render", action="store_true", help="only print the answer")
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated (stderr)")
    p.set_defaults(handler=run)


def _precheck(args: argparse.Namespace) -> tuple[str, bool]:
    """Everything that can be checked without the model; returns (question, is_image)."""
    if not args.video.is_file():
        raise VideoError(f"not found: {args.video}")
    if not 1 <= args.max_new_tokens <= 8192:
        raise PromptError(f"--max-new-tokens must be between 1 and 8192; got {args.max_new_tokens}")
    if len(args.query) > MAX_QUERY_CHARS:
        # The prompt builder refuses it too, but only after the model has loaded (minutes for 7B).
        raise PromptError(
            f"the query is too long ({len(args.query)} characters; the limit is {MAX_QUERY_CHARS})"
        )
    question = compose_query(args.task, args.query, span=args.span, start=args.start, region=args.region)
    format_query(neutralize(question), "demo")  # coordinate syntax and values, before any loading
    is_image = args.video.suffix.lower() in _IMAGE_SUFFIXES
    need = task_modality(args.task)
    if need == "video" and is_image:
        raise PromptError(f"task {args.task!r} needs a video; {args.video.name} is an image")
    if need == "image" and not is_image:
        raise PromptError(f"task {args.task!r} needs an image; {args.video.name} is not one")
    if is_image:
        if args.split is not None:
            raise PromptError("--split only applies to videos")
        from stchat.processing.image import load_image

        load_image(args.video)
    else:
        from stchat.video.io import probe
        from stchat.video.sampling import official_frame_indices

        info = probe(args.video)
        try:
            official_frame_indices(info.frame_count, args.split)
        except ValueError as exc:
            raise VideoError(str(exc)) from None
    from stchat.pipeline import FILES, prepare_out_dir

    # A bad --out fails here, in a second, not after the model has loaded and answered.
    prepare_out_dir(args.out, ("answer.json",) if args.no_render else (*FILES, "answer.json"))
    return question, is_image


def _answer_record(result: Any) -> dict[str, Any]:
    p = result.parsed
    return {
        "task": result.task,
        "query": result.query,
        "raw_text": result.raw_text,
        "normalized_text": result.normalized_text,
        "parsed": {
            "span": p.span, "boxes": {str(k): v for k, v in p.boxes.items()}, "box": p.box,
            "end_time": p.end_time, "caption": p.caption,
            "phrases": [{"text": ph.text, "box": ph.box} for ph in p.phrases], "warnings": p.warnings,
        },
        "frame_indices": result.frame_indices,
        "frame_times_s": result.frame_times_s,
        "split": result.split,
        "variables": result.variables,
        "decoding": result.decoding,
        "seed": result.seed,
        "timings": result.timings,
    }


def run(args: argparse.Namespace) -> int:
    question, is_image = _precheck(args)
    from stchat.chat import StableChat

    quant = {f"load_in_{args.quantize}": True} if args.quantize else {}
    chat = StableChat(args.model, device=args.device, dtype=args.dtype, adapter=args.adapter, **quant)

    def _echo(piece: str) -> None:
        print(piece, end="", file=sys.stderr, flush=True)

    result = chat.ground(
        args.video, question, task=args.task, split=args.split, max_new_tokens=args.max_new_tokens,
        decoding=args.decoding, seed=args.seed, on_token=_echo if args.stream else None,
    )
    if args.stream:
        print(file=sys.stderr)
    print(f"question: {result.query}")
    print(f"answer: {result.normalized_text}")
    for w in result.parsed.warnings:
        print(f"stchat: warning: {w}", file=sys.stderr)
    from stchat.pipeline import prepare_out_dir, write_text_atomic

    answer_json = prepare_out_dir(args.out, ("answer.json",)) / "answer.json"
    write_text_atomic(answer_json, json.dumps(_answer_record(result), indent=1))
    print(f"answer.json: {answer_json}")
    if args.no_render or is_image or args.task == "caption":
        return 0
    if not result.parsed.ok:
        print(f"stchat: the answer has nothing to draw for task {args.task}", file=sys.stderr)
        return 1
    from stchat.pipeline import render_answer

    outs = render_answer(args.video, result.parsed, args.task, args.split, args.out, query=question)
    print(f"clip: {outs.clip}")
    if outs.annotated is not None:
        print(f"annotated: {outs.annotated}")
    print(f"timing: {outs.timing_csv} {outs.timing_json}")
    return 0
