#!/usr/bin/env bash
# Set up a fresh machine and run every test: the nbdev sync check, then pytest (all notebooks + tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
step() { echo "[test.sh] $*"; }
if v=$(python3 -c "import torch; print(torch.__version__)" 2>/dev/null); then step "torch $v is installed"
else
  # the CPU build first, so the project's loose `torch>=2.11` does not pull CUDA wheels
  step "installing torch 2.13.0, CPU build"
  python3 -m pip install -q "torch==2.13.0"
fi
# Debian Chromium + ChromeDriver for the browser tests (tests/test_explain_browser.py); never a downloaded browser.
if ! command -v chromium >/dev/null; then
  apt_log="${TMPDIR:-/tmp}/fastserve-apt.log"
  step "installing Debian's chromium and chromium-driver (output in $apt_log)"
  if ! (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver) >"$apt_log" 2>&1; then
    tail -n 20 "$apt_log"; exit 1
  fi
fi
step "installing fastserve_nb with the course and development extras (pip install -e '.[dev]')"
python3 -m pip install -q -e ".[dev]"
# Notebooks are the source: cleaning and exporting them must leave the tree as committed.
step "checking that the notebooks and the package are in sync (nbdev-clean, nbdev-export)"
nbdev-clean
nbdev-export
if [ -n "$(git status --porcelain)" ]; then
  echo "nbdev-clean / nbdev-export changed the tree; commit the cleaned notebooks and exported modules:"
  git status --porcelain
  exit 1
fi
step "running the tests: every notebook, each in its own process, then tests/"
python3 -m pytest -q -p no:cacheprovider "$@"
