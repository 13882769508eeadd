"""``stchat app [--model M] [--host H] [--port P] ...``: start the web app (same options as ``app.py``)."""

from __future__ import annotations

import argparse

from stchat.ui.launch import main


def _run(args: argparse.Namespace) -> int:
    return main(args.passthrough_args)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "app",
        help="start the web app",
        description="Start the web app. Every option after 'app' is passed on; see 'stchat app --help'.",
        add_help=False,
    )
    p.add_argument("passthrough_args", nargs=argparse.REMAINDER)
    # Options after 'app' belong to the app's own parser (stchat.ui.config); cli.main passes them on.
    p.set_defaults(handler=_run, passthrough=True)
