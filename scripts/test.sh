#!/usr/bin/env bash
# Install everything stchat's tests need into .venv/ and run the whole suite.
# Safe to run on a fresh machine (nothing pre-installed) and to re-run (it only adds what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/venv.sh
install_stchat "[dev]"

# System packages for the browser end-to-end test (Chromium) and caption metrics (Java).
# Installed only when missing and when we may (root with apt-get); otherwise those tests skip visibly.
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
if [ ${#need[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing system packages: ${need[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null) \
    || echo "warning: could not install ${need[*]}; the tests that need them will skip"
fi

.venv/bin/ruff check stchat tests benchmarks scripts docs app.py
.venv/bin/python -m pytest "$@"
