"""``stchat probe VIDEO [--json]``: what stchat sees in a video file."""

from __future__ import annotations

import argparse
import json

from stchat.video.io import probe

FIELDS = ("duration_s", "fps", "frame_count", "width", "height", "rotation", "has_audio")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("probe", help="show a video's duration, frame rate, size, rotation and audio")
    p.add_argument("video", help="video file (anything FFmpeg reads)")
    p.add_argument("--json", action="store_true", help="print every fact as one JSON object")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    info = probe(args.video)
    facts = info.to_dict()
    if args.json:
        print(json.dumps({**facts, "fps_float": info.fps_float}, indent=2))
        return 0
    for key in FIELDS:
        value = facts[key]
        if key == "fps":
            value = f"{info.fps_float:g} ({value})"
        print(f"{key:12s} {value}")
    return 0
