"""``stchat probe VIDEO [--json]``: what stchat sees in a video file.

Prints what can actually be read (duration, frames) next to what the header declares; a damaged or
truncated file gets one warning line on stderr (exit code 0: the readable part is still usable).

An MP4/MOV file with H.264 (and AAC) is answered from its index boxes by a pure-Python reader
(:mod:`stchat.video.quickprobe`: no PyAV, no numpy, every sample's bytes checked against the file size,
so a cut-off file is still caught); anything it cannot vouch for, and ``--full``, takes the full probe
(PyAV: every packet read, the first frame decoded). Both give the same facts.
"""

from __future__ import annotations

import argparse
import json
import sys

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
    p.add_argument("--full", action="store_true",
                   help="read every packet and decode the first frame, even where the index suffices")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    info = None
    if not args.full:
        from stchat.video.quickprobe import quick_probe  # imports neither PyAV nor numpy

        info = quick_probe(args.video)
    if info is None:
        from stchat.video.io import probe

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
