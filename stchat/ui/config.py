"""Command-line and environment settings of the web app (``app.py`` / ``python -m stchat.ui``)."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "appletea2333/LLaVA-ST-Qwen2-7B"
DEFAULT_HOST = "127.0.0.1"  # loopback unless asked: the app has no authentication
DEFAULT_PORT = 7860
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_assets_dir() -> Path:
    """``assets/`` of the checkout (or an editable install), else ``./assets`` (app started in its folder)."""
    here = REPO_ROOT / "assets"
    return here if here.is_dir() else Path.cwd() / "assets"


ASSETS_DIR = default_assets_dir()


@dataclass(frozen=True)
class AppConfig:
    model: str = DEFAULT_MODEL
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_upload_mb: int = 500
    work_dir: Path | None = None  # None: a fresh folder under the system temp dir, removed on exit
    session_max_age_s: float = 2 * 3600.0
    session_quota_mb: int = 2000  # uploads + outputs of one session; older runs are dropped first
    api_ttl_s: float = 900.0  # runs made through the raw HTTP API (no page to close) live this long
    queue_size: int = 16  # waiting runs beyond this are refused instead of piling up behind the GPU
    assets_dir: Path = ASSETS_DIR
    adapter: Path | None = None  # fine-tuning output (stchat train) applied on load
    quantize: str | None = None  # "8bit" / "4bit" (bitsandbytes, CUDA) for small GPUs

    def load_kwargs(self) -> dict[str, object]:
        """Keyword arguments of ``StableChat`` beyond the model id."""
        kwargs: dict[str, object] = {}
        if self.adapter is not None:
            kwargs["adapter"] = self.adapter
        if self.quantize is not None:
            kwargs[f"load_in_{self.quantize}"] = True
        return kwargs

    def resolved_work_dir(self) -> Path:
        if self.work_dir is not None:
            return self.work_dir
        return Path(tempfile.gettempdir()) / f"stchat-app-{os.getpid()}"


def build_arg_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="app.py", description="stchat web app: find when and where in a video.")
    p.add_argument("--model", default=None,
                   help="checkpoint directory, hub id or 'demo' (env STCHAT_MODEL; default: the released 7B "
                        "on a big enough GPU, else the embedded demo model; see stchat.model.choice)")
    p.add_argument("--adapter", type=Path, default=None,
                   help="fine-tuning output directory (stchat train) to apply to the model")
    p.add_argument("--quantize", choices=("8bit", "4bit"), default=None,
                   help="load the weights quantised with bitsandbytes (CUDA only; less GPU memory)")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    p.add_argument("--max-upload-mb", type=int, default=500, help="largest accepted upload in MB")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where per-session outputs and uploads go; emptied at start and exit (default: a "
                        "temp folder removed on exit)")
    p.add_argument("--session-max-age-h", type=float, default=2.0,
                   help="a session idle this many hours ends and its files are deleted")
    p.add_argument("--session-quota-mb", type=int, default=2000,
                   help="disk space one session's uploads and outputs may use (older runs go first)")
    return p


def parse_config(argv: list[str] | None = None) -> AppConfig:
    from stchat.model.choice import choose_model

    args = build_arg_parser().parse_args(argv)
    return AppConfig(
        model=choose_model(args.model),
        host=args.host,
        port=args.port,
        max_upload_mb=args.max_upload_mb,
        work_dir=args.work_dir,
        session_max_age_s=args.session_max_age_h * 3600.0,
        session_quota_mb=args.session_quota_mb,
        adapter=args.adapter,
        quantize=args.quantize,
    )
