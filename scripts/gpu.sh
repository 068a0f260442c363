#!/usr/bin/env bash
# The GPU check of issue 4, for a machine with a CUDA GPU on which python3
# already has torch, numpy, matplotlib, pytest and the reference safetensors,
# and nothing can be downloaded (a lent GPU machine):
#
#   bash scripts/gpu.sh WHEELS OUT [bench/run.py arguments]
#
# WHEELS holds ironsafe's wheel (built elsewhere: `maturin build --release`)
# and, optionally, fastsafetensors'. They are installed into a scratch
# directory; then the CUDA tests run, then the GPU benchmark (an 8 GB file,
# made in /tmp), whose report goes to OUT, then bench/gpu_sweep.py on the
# same file. Logs go to OUT as well. About 7 minutes on an H100 machine.
set -uo pipefail
cd "$(dirname "$0")/.."
wheels=$1 out=$2
shift 2
mkdir -p "$out"
site=$(mktemp -d)
python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" "$wheels"/*.whl || exit 1
export PYTHONPATH=$site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current \
    --format=csv | tee "$out/gpu.txt"
# The file system of the test and bench files, and its readahead: the cold rows depend on them.
{ findmnt -T /tmp; stat -f -c 'type %T, block %S' /tmp; cat /sys/block/*/queue/read_ahead_kb 2>/dev/null | sort | uniq -c; } \
    2>&1 | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/python/test_torch.py -k cuda 2>&1 | tee "$out/tests.log"
tests=${PIPESTATUS[0]}
python3 bench/run.py --gpu-only --dir /tmp/ironsafe-bench --out "$out" "$@" 2>&1 | tee "$out/bench.log"
bench=${PIPESTATUS[0]}
# Where the time goes, for tuning (bench/gpu_sweep.py): default threads, then 8.
file=$(ls /tmp/ironsafe-bench/llama-*.safetensors | head -1)
{ python3 bench/gpu_sweep.py "$file"; IRONSAFE_THREADS=8 python3 bench/gpu_sweep.py "$file"; } 2>&1 | tee "$out/sweep.log"
echo "tests: exit $tests; benchmark: exit $bench"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
