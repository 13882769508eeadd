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
  # editable_mode=compat: the checkout goes on sys.path as a plain path entry. setuptools' default
  # (an import hook) makes every Python process import pathlib and more at start: ~20 ms, a fifth of
  # `stchat probe` (benchmarks/pipeline.py). The fallback covers a setuptools that drops the mode.
  .venv/bin/python -m pip install --quiet -r requirements.txt -e ".${1:-}" --config-settings editable_mode=compat \
    || .venv/bin/python -m pip install --quiet -r requirements.txt -e ".${1:-}"
}
