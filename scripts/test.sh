#!/usr/bin/env bash
# Install the pinned dependencies into .venv (once), Debian's Chromium for the browser tests,
# and run lint and the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
CHROMIUM=${LJVAE_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$CHROMIUM" ] && command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
  echo "Installing Debian's chromium for the browser tests..." >&2
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-$PWD/.numba_cache}
.venv/bin/ruff check .
.venv/bin/lint-imports --no-cache
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$(mktemp -d)"
# The slowest tests are listed: the suite must stay well inside CI's 15 minutes. Test files
# run on one worker per core (at most four): most of a test's time is TensorFlow tracing and
# compiling on one thread, so two workers on two cores take about 0.75 of one's wall time.
WORKERS=$(.venv/bin/python -c "import os; print(min(4, len(os.sched_getaffinity(0))))")
.venv/bin/python -m pytest --durations=15 -n "$WORKERS" --dist loadfile "$@"
