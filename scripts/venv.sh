# Sourced by scripts/app.sh and scripts/test.sh: create .venv/ if needed and install stchat into it.
# Usage: install_stchat [EXTRAS]   e.g. install_stchat "[dev]"
install_stchat() {
  local py=${PYTHON:-python3.11}
  command -v "$py" >/dev/null 2>&1 || py=python3
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  # torch 2.13.0: the CPU build where a local wheel is provided, otherwise PyPI's default (CUDA) build.
  .venv/bin/python -m pip install --quiet "torch==2.13.0" -e ".${1:-}"
}
