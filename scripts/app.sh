#!/usr/bin/env bash
# Install stchat into .venv/ and launch the web app on http://127.0.0.1:7860
# (set STCHAT_MODEL to a local checkpoint directory or a hub id; see README).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet "torch==2.13.0" -e .
exec .venv/bin/python app.py "$@"
