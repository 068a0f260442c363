#!/usr/bin/env bash
# The benchmarks of issue 4: ironsafe against the reference safetensors (and
# torch.save/torch.load, and fastsafetensors where it runs). Sets up the
# project's virtual environment with bench/requirements.txt and ironsafe from
# this checkout, then runs bench/run.py with the arguments given, e.g.
#   bash scripts/bench.sh --size 200MB --samples 3 --only save,warm
# Results: bench/results/latest.{md,json,png}. A benchmark, not a test.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh bench/requirements.txt
"$PY" bench/run.py "$@"
