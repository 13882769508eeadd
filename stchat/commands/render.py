"""``stchat render VIDEO --answer TEXT | --answer-file F --out DIR``: draw a model answer on a video.

Writes ``DIR/clip.mp4`` (the answered segment with audio), ``DIR/annotated.mp4`` (the whole video),
``DIR/timing.csv`` and ``DIR/timing.json``. The answer is model text, raw (``<TEMP-012>`` tokens) or
normalised; ``--split A B`` is the inclusive frame range the model was shown (the demo's ``--split``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stchat.errors import AnswerError
from stchat.pipeline import as_parsed, render_answer
from stchat.tasks import task_names

MAX_ANSWER_BYTES = 16 * 1024**2  # far beyond any model answer; keeps a wrong file from filling memory
MAX_WARNINGS_SHOWN = 5


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("render", help="draw a model answer on a video: clip, annotated video, timings")
    p.add_argument("video", help="video file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--answer", help="the model's answer text")
    src.add_argument("--answer-file", type=Path, help="file holding the model's answer text")
    p.add_argument("--task", default="stvg", choices=task_names(),
                   help="task the answer is for (default: stvg)")
    p.add_argument("--split", nargs=2, type=int, metavar=("FIRST", "LAST"),
                   help="inclusive frame range sampled")
    p.add_argument("--query", help="the question, drawn as a label")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--no-annotated", action="store_true", help="write only the clip (faster)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.answer_file is not None:
        text = _read_answer_file(args.answer_file)
    else:
        text = args.answer
    parsed = as_parsed(text, args.task)
    out = render_answer(
        args.video,
        parsed,
        task=args.task,
        split=args.split,
        out_dir=args.out,
        query=args.query,
        write_annotated=not args.no_annotated,
    )
    # The parser repairs what it can (clamps, swaps, drops duplicates); say so, briefly, once the render
    # succeeded (a failing run keeps its single error line).
    for w in parsed.warnings[:MAX_WARNINGS_SHOWN]:
        print(f"stchat: warning: {w}", file=sys.stderr)
    if len(parsed.warnings) > MAX_WARNINGS_SHOWN:
        print(f"stchat: warning: ... and {len(parsed.warnings) - MAX_WARNINGS_SHOWN} more", file=sys.stderr)
    seg = out.rows[0]
    print(
        f"segment {seg.timestamp} -> {seg.end_timestamp} ({seg.duration}),"
        f" frames {seg.frame}..{seg.last_frame}"
    )
    for path in (out.clip, out.annotated, out.timing_csv, out.timing_json):
        if path is not None:
            print(path)
    sys.stdout.flush()
    return 0


def _read_answer_file(path: Path) -> str:
    try:
        if not path.is_file():
            raise AnswerError(f"answer file {path} not found (or not a file)")
        if path.stat().st_size > MAX_ANSWER_BYTES:
            limit = MAX_ANSWER_BYTES // 1024**2
            raise AnswerError(f"answer file {path} is over {limit} MB: not a model answer")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise AnswerError(f"answer file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise AnswerError(f"cannot read answer file {path}: {exc.strerror or exc}") from None
