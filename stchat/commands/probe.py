"""``stchat probe VIDEO [--json]``: what stchat sees in a video file.

Prints what can actually be read (duration, frames) next to what the header declares; a damaged or
truncated file gets one warning line on stderr (exit code 0: the readable part is still usable).

An MP4/MOV file with H.264 (and AAC) is answered from its index boxes by a pure-Python reader
(:mod:`stchat.video.quickprobe`: no PyAV, no numpy, every sample's bytes checked against the file size,
so a cut-off file is still caught); anything it cannot vouch for, and ``--full``, takes the full probe
(PyAV: every packet read, the first frame decoded). Both give the same facts.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

TYPE_CHECKING = False  # argparse only where the command line is not the plain one: see parse_plain
if TYPE_CHECKING:
    import argparse

FIELDS = ("duration_s", "fps", "frame_count", "width", "height", "rotation", "has_audio")
#: The flags, declared once: argparse registers them and parse_plain reads them.
FLAGS = {
    "--json": "print every fact as one JSON object",
    "--full": "read every packet and decode the first frame, even where the index suffices",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "probe",
        help="show a video's duration, frame rate, size, rotation and audio",
        description="Show what stchat reads in a video: readable duration and frames next to what the "
        "header declares, frame rate, displayed size, rotation, audio. Exit codes: 0 ok (a damaged or "
        "truncated file is reported with a warning line), 2 not a readable video.",
    )
    p.add_argument("video", help="video file (anything FFmpeg reads)")
    for flag, help_ in FLAGS.items():
        p.add_argument(flag, action="store_true", help=help_)
    p.set_defaults(handler=run)


def parse_plain(args: list[str]) -> SimpleNamespace | None:
    """``VIDEO`` with any of FLAGS once, in any order, read without argparse (stchat.cli.plain_args says
    why); None for anything else -- help, an abbreviated or unknown option, a file name starting with a
    dash -- so argparse answers it with its usual message."""
    flags = [a for a in args if a.startswith("-")]
    videos = [a for a in args if not a.startswith("-")]
    if len(videos) != 1 or not set(flags) <= FLAGS.keys() or len(set(flags)) != len(flags):
        return None
    return SimpleNamespace(command="probe", video=videos[0], handler=run,
                           **{flag[2:]: flag in flags for flag in FLAGS})


def run(args: argparse.Namespace) -> int:
    # Imported here: the fast path needs neither PyAV nor numpy (nor dataclasses), and it is the usual one.
    from stchat.video.facts import damage_warning
    from stchat.video.quickprobe import quick_facts

    facts = None if args.full else quick_facts(args.video)  # VideoInfo.to_dict()'s form
    if facts is None:
        from stchat.video.io import probe

        facts = probe(args.video).to_dict()
    shown = facts
    warning = damage_warning(facts)
    if args.json:
        import json  # only here: every import counts in a command this short

        print(json.dumps({**shown, "warning": warning}, indent=2))
    else:
        for key in FIELDS:
            value = shown[key]
            if key == "fps":
                value = f"{facts['fps_float']:g} ({value})"
            elif key == "duration_s" and facts["declared_duration_s"] is not None:
                value = f"{value} (header: {facts['declared_duration_s']})"
            elif key == "frame_count" and facts["declared_frame_count"]:
                value = f"{value} (header: {facts['declared_frame_count']})"
            print(f"{key:12s} {value}")
    sys.stdout.flush()
    if warning:
        print(f"stchat: warning: {warning}", file=sys.stderr)
    return 0
