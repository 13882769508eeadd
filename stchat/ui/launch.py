"""Start the web app: settings → work folders → background model load → Gradio server.

Order matters: ``GRADIO_TEMP_DIR`` must be set before Gradio is imported (some of its modules read it at
import time), so uploads and Gradio's cached copies of our outputs land in the app's own work folder and
are deleted with it.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from types import FrameType

from stchat.ui.config import AppConfig, parse_config
from stchat.ui.model_holder import ModelHolder
from stchat.ui.sessions import SessionStore

log = logging.getLogger("stchat.ui")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Docker stops containers with SIGTERM; turning it into SystemExit runs the atexit cleanup.
    raise SystemExit(0)


MARKER = ".stchat-app-work"  # marks a folder the app may empty; any other non-empty folder is refused


def claim_work_dir(work: Path) -> bool:
    """Create or empty the work folder; returns whether it was created. Refuses a folder of other files."""
    created = not work.exists()
    if not created:
        if not work.is_dir():
            raise SystemExit(f"stchat app: error: --work-dir {work} is not a folder")
        if any(work.iterdir()) and not (work / MARKER).is_file():
            raise SystemExit(f"stchat app: error: --work-dir {work} holds other files; give an empty or new "
                             "folder (the app deletes its contents at start and exit)")
        empty_work_dir(work)  # what a previous run (killed, crashed) left is no one's any more
    work.mkdir(parents=True, exist_ok=True)
    (work / MARKER).write_text("stchat app work folder: emptied at every start and exit\n")
    return created


def empty_work_dir(work: Path) -> None:
    for child in work.iterdir() if work.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def prepare(config: AppConfig) -> tuple[ModelHolder, SessionStore]:
    """Work folders, cleanup hooks and the model loader; call before importing Gradio."""
    work = config.resolved_work_dir()
    created = claim_work_dir(work)
    # Forced, not defaulted: uploads and Gradio's cache must be inside the folder we empty on exit.
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from an offline host
    # Session outputs live inside Gradio's own cache folder: Gradio serves that folder anyway (without
    # copying), so ``allowed_paths`` need not grow, and deleting a run makes it unservable.
    gradio_dir = Path(os.environ["GRADIO_TEMP_DIR"])
    store = SessionStore(gradio_dir / "stchat-sessions", config.session_max_age_s,
                         quota_bytes=config.session_quota_mb * 1_000_000, api_ttl_s=config.api_ttl_s,
                         upload_root=gradio_dir)
    store.start_sweeper()
    if created:
        atexit.register(shutil.rmtree, work, True)
    else:
        atexit.register(empty_work_dir, work)
    atexit.register(store.remove_all)
    holder = ModelHolder(config.model, **config.load_kwargs())
    holder.start()  # background: the page is up long before a 7B model is
    return holder, store


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = parse_config(argv)
    holder, store = prepare(config)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)

    from starlette.middleware import Middleware

    from stchat.ui.guard import SessionGuard
    from stchat.ui.layout import CSS, JS, build_app, theme  # imports Gradio: after prepare() set its temp dir

    demo = build_app(config, holder, store)
    demo.queue(max_size=config.queue_size, default_concurrency_limit=1)
    log.info("serving on http://%s:%d (model %s loading in the background)", config.host, config.port,
             config.model)
    try:
        demo.launch(
            server_name=config.host,
            server_port=config.port,
            # Only the shipped examples are served from disk; uploads and outputs go through Gradio's
            # cache, which lives in our work folder.
            allowed_paths=[str(config.assets_dir)],
            max_file_size=f"{config.max_upload_mb}mb",
            show_error=False,
            ssr_mode=False,
            footer_links=[],
            theme=theme(),
            css=CSS,
            js=JS,
            app_kwargs={"middleware": [Middleware(SessionGuard)]},
        )
    except OSError as exc:  # port taken, address not available
        print(f"stchat app: error: cannot listen on {config.host}:{config.port}: {exc}", file=sys.stderr)
        return 2
    return 0
