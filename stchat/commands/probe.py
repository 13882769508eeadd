"""``stchat probe VIDEO [--json]``: what stchat sees in a video file.

Prints what can actually be read (duration, frames) next to what the header declares; a damaged or
truncated file gets one warning line on stderr (exit code 0: the readable part is still usable).
Imports only PyAV and numpy, so it starts about as fast as ``ffmpeg -i``.
"""

from __future__ import annotations

import argparse
import json
import sys

from stchat.video.io import probe

FIELDS = ("duration_s", "fps", "frame_count", "width", "height", "rotation", "has_audio")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "probe",
        help="show a video's duration, frame rate, size, rotation and audio",
        description="Show what stchat reads in a video: readable duration and frames next to what the "
        "header declares, frame rate, displayed size, rotation, audio. Exit codes: 0 ok (a damaged or "
        "truncated file is reported with a warning line), 2 not a readable video.",
    )
    p.add_argument("video", help="video file (anything FFmpeg reads)")
    p.add_argument("--json", action="store_true", help="print every fact as one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    info = probe(args.video)
    facts = info.to_dict()
    if args.json:
        print(json.dumps({**facts, "fps_float": info.fps_float, "warning": info.warning()}, indent=2))
    else:
        for key in FIELDS:
            value = facts[key]
            if key == "fps":
                value = f"{info.fps_float:g} ({value})"
            elif key == "duration_s" and info.declared_duration_s is not None:
                value = f"{value} (header: {info.declared_duration_s})"
            elif key == "frame_count" and info.declared_frame_count:
                value = f"{value} (header: {info.declared_frame_count})"
            print(f"{key:12s} {value}")
    sys.stdout.flush()
    warning = info.warning()
    if warning:
        print(f"stchat: warning: {warning}", file=sys.stderr)
    return 0
