"""``stchat ground VIDEO QUERY``: ask LLaVA-ST when/where, then render the clip, the annotated video and
the timing table. Cheap checks (file, frame range, query, coordinates) run before the model loads, so
bad input fails in a second with one line, not after minutes of loading weights.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stchat.answer import GroundingResult
from stchat.batch import RESULTS, SUMMARY, BatchItem, is_batch_source, read_items, run_batch
from stchat.errors import PromptError
from stchat.eval import distributed as dist_mod
from stchat.pipeline import FILES, RenderOutputs, prepare_out_dir, render_answer, write_text_atomic
from stchat.processing.coords import format_query
from stchat.processing.prompt import neutralize
from stchat.request import LIMITS, GroundingRequest, MediaContext, is_image_path, media_context
from stchat.tasks import all_tasks, get_task, task_names


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "ground",
        help="find when and where something happens in a video (or an image)",
        description="Run LLaVA-ST on a video (100 frames sampled the official way) or an image, print the "
        "answer, and for videos write clip.mp4, timing.csv, timing.json (annotated.mp4 with --full) and "
        "answer.json to --out. Given a folder or a manifest, do that for every item into --out/<id>/ and "
        "write --out/summary.csv; re-running resumes, and torchrun/accelerate launch shard the items.",
    )
    p.add_argument("video", metavar="VIDEO", type=Path,
                   help="video file (or image file for rec/reg/dgc); for a batch, a folder of videos or a "
                   "CSV/JSONL manifest with columns video, query[, task]")
    p.add_argument("query", metavar="QUERY", nargs="?", default=None,
                   help="a full question, or a description the task template wraps (in a batch: for the "
                   "rows that give none)")
    tasks = "; ".join(f"{t.name}: {t.title}" for t in all_tasks())
    p.add_argument("--task", default="stvg", choices=task_names(), metavar="TASK",
                   help=f"what to ask (default: stvg) -- {tasks}")
    p.add_argument("--split", nargs=2, type=int, metavar=("FIRST", "LAST"), help="inclusive frame range")
    p.add_argument("--model", default=None, help="checkpoint directory, hub id or 'demo' (default: "
                   "$STCHAT_MODEL, else appletea2333/LLaVA-ST-Qwen2-7B on a big enough GPU, else the "
                   "embedded demo model)")
    p.add_argument("--adapter", type=Path, default=None, help="PEFT/LoRA adapter directory to merge")
    p.add_argument("--out", type=Path, default=Path("stchat-out"), help="output directory")
    p.add_argument("--decoding", default="greedy", choices=("greedy", "official"),
                   help="greedy (reproducible) or official (temperature 0.01 sampling, as the demo)")
    p.add_argument("--seed", type=int, default=None, help="seed for --decoding official")
    p.add_argument("--max-new-tokens", type=int, default=LIMITS.default_max_new_tokens,
                   help=f"generation budget (default {LIMITS.default_max_new_tokens}, at most "
                   f"{LIMITS.max_new_tokens})")
    p.add_argument("--span", nargs=2, metavar=("START", "END"),
                   help="time span (svg, tr): seconds with an s (--span 2s 6s) or fractions of the frame "
                   "range (--span 0.25 0.75)")
    p.add_argument("--start", default=None, help="event start (elc): seconds (2s) or a fraction (0.25)")
    p.add_argument("--region", nargs=4, metavar=("X1", "Y1", "X2", "Y2"),
                   help="box (elc, reg): fractions of the frame (0.1 0.2 0.5 0.6) or pixels (64px ...)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: best available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, float16 (default: per device)")
    p.add_argument("--quantize", choices=("8bit", "4bit"), default=None,
                   help="load the weights quantised with bitsandbytes (CUDA only)")
    p.add_argument("--no-render", action="store_true", help="only print the answer")
    p.add_argument("--full", action="store_true",
                   help="also write annotated.mp4, the whole video drawn (made in the same decode pass)")
    p.add_argument("--no-progress", action="store_true", help="batch: no progress bar")
    p.add_argument("--stream", action="store_true", help="print the answer as it is generated (stderr)")
    p.add_argument("--no-speculative", action="store_true",
                   help="plain one-token-per-pass greedy decoding (the default drafts box lists and verifies "
                   "them exactly: same answer, fewer decoder passes)")
    p.set_defaults(handler=run)


def build_request(args: argparse.Namespace, media: object = None, task: str | None = None,
                  query: str | None = None) -> GroundingRequest:
    """The request of the command line (or of one batch item: its media, task and query)."""
    return GroundingRequest(
        args.video if media is None else media, task or args.task,
        (args.query if query is None else query) or "", span=args.span, start=args.start, region=args.region,
        split=tuple(args.split) if args.split else None, max_new_tokens=args.max_new_tokens,
        decoding=args.decoding, seed=args.seed, speculative=not getattr(args, "no_speculative", False),
    )


def precheck(request: GroundingRequest, out: Path, names: tuple[str, ...]) -> MediaContext:
    """Everything that can be checked without the model: the request, the media, the question, ``out``."""
    context = media_context(request.media, request.split, request.fps)
    question = request.question(context.timeline, context.size)
    format_query(neutralize(question), "demo")  # coordinate syntax and values, before any loading
    # A bad --out fails here, in a second, not after the model has loaded and answered.
    prepare_out_dir(out, names)
    return context


def _names(args: argparse.Namespace) -> tuple[str, ...]:
    return ("answer.json",) if args.no_render else (*FILES, "answer.json")


def _load_chat(args: argparse.Namespace, device: str | None) -> Any:
    # torch + transformers take seconds to import: only after the cheap checks, so bad input fails fast.
    from stchat.chat import StableChat
    from stchat.model.choice import describe_model

    quant = {f"load_in_{args.quantize}": True} if args.quantize else {}
    chat = StableChat(args.model, device=device, dtype=args.dtype, adapter=args.adapter, **quant)
    print(f"model: {describe_model(chat.model_name)}", file=sys.stderr)  # which model answers, and for what
    return chat


def run(args: argparse.Namespace) -> int:
    if is_batch_source(args.video):
        return run_batch_command(args)
    if args.query is None:
        raise PromptError("give the QUERY: what to look for in the video")
    request = build_request(args)
    precheck(request, args.out, _names(args))
    chat = _load_chat(args, args.device)

    def _echo(piece: str) -> None:
        print(piece, end="", file=sys.stderr, flush=True)

    result = chat.answer(request, on_token=_echo if args.stream else None)
    if args.stream:
        print(file=sys.stderr)
    print(f"question: {result.query}")
    print(f"answer: {result.normalized_text}")
    for w in result.parsed.warnings:
        print(f"stchat: warning: {w}", file=sys.stderr)
    status, outs = save_result(result, args.out, render=not args.no_render, full=args.full)
    print(f"answer.json: {args.out / 'answer.json'}")
    if status == NOTHING_TO_DRAW:
        print(f"stchat: the answer has nothing to draw for task {result.task}", file=sys.stderr)
        return 1
    if outs is not None:
        print(f"clip: {outs.clip}")
        if outs.annotated is not None:
            print(f"annotated: {outs.annotated}")
        print(f"timing: {outs.timing_csv} {outs.timing_json}")
    return 0


NOTHING_TO_DRAW = "nothing-to-draw"


def save_result(result: GroundingResult, out: Path, render: bool = True,
                full: bool = False) -> tuple[str, RenderOutputs | None]:
    """``answer.json`` and, for a video answer, the rendered files: ``("ok" | NOTHING_TO_DRAW, outputs)``."""
    write_text_atomic(prepare_out_dir(out, ("answer.json",)) / "answer.json", result.to_json())
    spec = get_task(result.task)
    if not render or not spec.is_video or result.media is None or is_image_path(result.media):
        return "ok", None
    if not result.answer.ok:  # the asked span stands in when the answer names none (svg, tr)
        return NOTHING_TO_DRAW, None
    return "ok", render_answer(result, out, full=full)


def run_batch_command(args: argparse.Namespace) -> int:
    """Every item of a folder / manifest into ``--out/<id>/``, resumable and sharded (see stchat.batch)."""
    items = read_items(args.video, args.query, args.task)
    prepare_out_dir(args.out, (RESULTS, SUMMARY))
    info = dist_mod.dist_info()
    joined = dist_mod.init_process_group(info)
    try:
        chat = _load_chat(args, dist_mod.device_for(info, args.device))

        def ground(item: BatchItem, folder: Path) -> tuple[str, GroundingResult, RenderOutputs | None]:
            request = build_request(args, item.video, item.task, item.query)
            precheck(request, folder, _names(args))
            result = chat.answer(request)
            status, outs = save_result(result, folder, render=not args.no_render, full=args.full)
            return status, result, outs

        stats = run_batch(items, ground, args.out, progress=not args.no_progress)
    finally:
        if joined:
            dist_mod.destroy_process_group()
    if info.is_main:
        print(f"{stats.written} new, {stats.skipped} already done -> {args.out / SUMMARY}", file=sys.stderr)
    return 0
