# Sourced by scripts/app.sh and scripts/test.sh: create .venv/ if needed and install stchat into it.
# Usage: install_stchat [EXTRAS]   e.g. install_stchat "[dev]"
install_stchat() {
  local py=${PYTHON:-python3.11}
  command -v "$py" >/dev/null 2>&1 || py=python3
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  # requirements.txt pins the exact set the tests passed with (regenerate with scripts/lock.sh); its
  # torch==2.13.0 is the CPU build where a local wheel is provided, otherwise PyPI's default (CUDA) build.
  # Installing stchat in the same call lets pip check the lock against pyproject's ranges.
  .venv/bin/python -m pip install --quiet -r requirements.txt -e ".${1:-}"
}
