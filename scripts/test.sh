#!/usr/bin/env bash
# Set up a fresh machine and run every test: the nbdev sync check, then pytest (all notebooks + tests/).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
# The CPU build of torch first, so the project's loose `torch>=2.11` does not pull CUDA wheels.
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q "torch==2.13.0"
# Debian Chromium + ChromeDriver for the browser tests (tests/test_explain_browser.py); never a downloaded browser.
command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver)
python3 -m pip install -q -e ".[dev]"
# Notebooks are the source: cleaning and exporting them must leave the tree as committed.
nbdev-clean
nbdev-export
if [ -n "$(git status --porcelain)" ]; then
  echo "nbdev-clean / nbdev-export changed the tree; commit the cleaned notebooks and exported modules:"
  git status --porcelain
  exit 1
fi
python3 -m pytest -q -p no:cacheprovider "$@"
