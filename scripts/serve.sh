#!/usr/bin/env bash
# Set up a fresh machine and run the main job: the OpenAI-compatible server on the embedded tiny model
# (127.0.0.1:8000 unless --host/--port say otherwise; extra arguments go to `fastserve serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -c "import torch" 2>/dev/null || python3 -m pip install -q "torch==2.13.0"
python3 -m pip install -q -e .
exec fastserve serve --model tiny "$@"
