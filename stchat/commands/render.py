"""``stchat render``: draw a model answer on a video.

Writes into ``--out``: ``clip.mp4`` (the found segment, annotated, with audio: the product),
``timing.csv`` / ``timing.json``, the exports (``segment.vtt``, ``segment.srt``, ``clip.vtt``,
``boxes_mot.csv``, ``boxes_coco.json``), and with ``--full`` also ``annotated.mp4`` (the whole video,
made in the same decode pass). The answer is model text (raw ``<TEMP-012>`` tokens or normalised), or
the ``answer.json`` a ``stchat ground`` run wrote (``--answer-json``), which reproduces that run's render.

Exit codes: 0 rendered; 1 the answer parsed but has nothing to draw (no span and no boxes); 2 bad input
(unreadable video or answer, bad option), one line on stderr; 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from stchat.answer import GroundingResult
from stchat.errors import AnswerError
from stchat.parse import result_from_text
from stchat.pipeline import cli_progress, render_answer
from stchat.request import answer_text, read_answer_file
from stchat.tasks import task_names

MAX_WARNINGS_SHOWN = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "render",
        help="draw a model answer on a video: clip, annotated video, timings",
        description="Draw a model answer on a video: the annotated clip of the found segment, its timing "
        "table and exports (WebVTT/SRT, MOTChallenge CSV, COCO-video JSON); --full adds the whole "
        "annotated video. Exit codes: 0 rendered, 1 nothing to draw, 2 bad input, 130 interrupted.",
    )
    p.add_argument("video", nargs="?", help="video file (optional with --answer-json: its recorded video)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--answer", help="the model's answer text")
    src.add_argument("--answer-file", type=Path, help="file holding the model's answer text (or answer.json)")
    src.add_argument("--answer-json", type=Path, help="answer.json from `stchat ground`: render it again")
    p.add_argument("--task", default="stvg", choices=task_names(),
                   help="task the answer is for (default: stvg; an answer.json names its own)")
    p.add_argument("--split", nargs=2, type=int, metavar=("FIRST", "LAST"),
                   help="inclusive frame range the model was shown (default: the whole video)")
    p.add_argument("--query", help="the question, drawn as a label")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--full", action="store_true",
                   help="also write annotated.mp4, the whole video annotated (same decode pass; slower)")
    # The old default (the full video) had an off switch; it still parses.
    p.add_argument("--no-annotated", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--no-exports", action="store_true", help="skip the VTT/SRT/MOT/COCO exports")
    p.set_defaults(handler=run)


def _result(args: argparse.Namespace) -> GroundingResult:
    """The one object the renderer takes, whatever the answer's source."""
    if args.answer_json is not None or args.answer_file is not None:
        content = read_answer_file(args.answer_json or args.answer_file)
        if isinstance(content, dict):
            result = GroundingResult.from_dict(content)
            if args.video is not None:  # a given VIDEO overrides the recorded one (the record may travel)
                result = dataclasses.replace(result, media=str(args.video))
            if args.query is not None:
                result = dataclasses.replace(result, query=args.query)
            if result.media is None:
                raise AnswerError("the answer.json names no video file: give VIDEO")
            return result
        if args.answer_json is not None:
            raise AnswerError(f"{args.answer_json.name} is not an answer.json record (use --answer-file)")
        text = answer_text(content)
    else:
        text = args.answer
    if args.video is None:
        raise AnswerError("give the VIDEO to draw on (only --answer-json can name its own)")
    split = tuple(args.split) if args.split else None
    return result_from_text(text, args.task, media=str(args.video), split=split, query=args.query or "")


def run(args: argparse.Namespace) -> int:
    result = _result(args)
    parsed = result.answer
    if not parsed.ok:  # one line: the parser's reasons are why there is nothing
        why = "; ".join(parsed.warnings) or "no span and no boxes"
        print(f"stchat: the answer has nothing to draw for task {result.task}: {why}", file=sys.stderr)
        return 1
    with cli_progress() as progress:
        out = render_answer(result, args.out, full=args.full and not args.no_annotated, progress=progress,
                            exports=not args.no_exports)
    # The parser repairs what it can (clamps, swaps, drops duplicates); say so, briefly, once the render
    # succeeded (a failing run keeps its single error line).
    for w in parsed.warnings[:MAX_WARNINGS_SHOWN]:
        print(f"stchat: warning: {w}", file=sys.stderr)
    if len(parsed.warnings) > MAX_WARNINGS_SHOWN:
        print(f"stchat: warning: ... and {len(parsed.warnings) - MAX_WARNINGS_SHOWN} more", file=sys.stderr)
    for w in out.warnings:
        print(f"stchat: warning: {w}", file=sys.stderr)
    seg = out.rows[0]
    print(
        f"segment {seg.timestamp} -> {seg.end_timestamp} ({seg.duration}),"
        f" frames {seg.frame}..{seg.last_frame}"
    )
    for path in out.files:
        print(path)
    sys.stdout.flush()
    return 0
