#!/usr/bin/env bash
# Install stchat into .venv/ and launch the web app on http://127.0.0.1:7860
# (set STCHAT_MODEL to a local checkpoint directory or a hub id; see README).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh
install_stchat
exec .venv/bin/python app.py "$@"
