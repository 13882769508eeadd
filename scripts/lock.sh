#!/usr/bin/env bash
# Regenerate requirements.txt: resolve pyproject's ranges afresh in a throw-away venv, run the test suite
# against that set, and only then write its exact pins. Usage: scripts/lock.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3.11}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" -m venv "$tmp/venv"
# torch: the CPU build where a local wheel index provides one (see scripts/venv.sh), else PyPI's build.
"$tmp/venv/bin/pip" install --quiet --upgrade "torch==${TORCH_VERSION:-2.13.0}" -e ".[dev]"
"$tmp/venv/bin/python" -m pytest -q "$@"
{
  echo "# Exact versions the test suite passed with (Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())')); regenerate with scripts/lock.sh."
  echo "# Ranges live in pyproject.toml. torch is pinned without a local tag (+cpu/+cu12x): pip takes the"
  echo "# CPU wheel where a local index offers it and PyPI's CUDA build elsewhere (same version either way)."
  "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v -i -e '^stchat' -e '^#' | sed -E 's/^(torch==[^+]+)\+.*/\1/'
} > requirements.txt.tmp
mv requirements.txt.tmp requirements.txt  # atomic: a failed run never leaves a half-written lock
echo "requirements.txt updated; review it with git diff"
