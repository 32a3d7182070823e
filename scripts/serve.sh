#!/usr/bin/env bash
# Set up a fresh machine and run the main job: generation with the embedded tiny model.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e .
fastserve generate --model tiny "Return a new list"
