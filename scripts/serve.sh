#!/usr/bin/env bash
# Set up a fresh machine and run the main job: the OpenAI-compatible server on the embedded tiny model
# (127.0.0.1:8000 unless --host/--port say otherwise; extra arguments go to `fastserve serve`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
step() { echo "[serve.sh] $*"; }
if v=$(python3 -c "import torch; print(torch.__version__)" 2>/dev/null); then step "torch $v is installed"
else
  # the CPU build first, so the project's loose `torch>=2.11` does not pull CUDA wheels
  step "installing torch 2.13.0, CPU build (about 200 MB; a minute or two)"
  python3 -m pip install -q "torch==2.13.0"
fi
step "installing fastserve_nb and what serving needs (pip install -e .)"
python3 -m pip install -q -e .
step "starting the server: it loads the model, then logs 'serving tiny on http://…'"
exec fastserve serve --model tiny "$@"
