#!/usr/bin/env bash
# The GPU run of record, in one script and one log (under 8 minutes on one GPU):
#   1. the tests that touch the fast paths (fused LSTM/GRU passes, parallel and associative
#      scans, remat, bfloat16) on the GPU;
#   2. LSTM/GRU training and inference against Flax, cuDNN through JAX and PyTorch's cuDNN
#      nn.LSTM, at the four reference sizes and a GPU size (batch 256, T 512, hidden 1024);
#   3. minGRU/LRU parallel against sequential mode at T = 4,096 and 65,536.
# Needs JAX (with CUDA), Flax, optax, pytest and hypothesis; PyTorch is used when present.
# Run from the repository root, jaxrnn on PYTHONPATH:
#   PYTHONPATH=. benchmarks/gpu_check.sh [LOG]          (default benchmarks/results/gpu_check.log)
#   PYTHONPATH=. benchmarks/gpu_check.sh --cpu [LOG]    tiny sizes on any machine (make test runs it)
set -uo pipefail
mode=gpu
if [ "${1:-}" = "--cpu" ]; then mode=cpu; shift; fi
log=${1:-benchmarks/results/gpu_check.log}
python=$(command -v "${PYTHON:-python}") || { echo "no Python at ${PYTHON:-python}"; exit 2; }
mkdir -p "$(dirname "$log")"
status=0
{
  echo "== gpu_check ($mode) $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  "$python" -c "import jax; print('jax', jax.__version__, jax.devices())"
  command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  echo "== tests of the fast paths"
  if [ "$mode" = cpu ]; then
    tests=(tests/test_fused.py -k "float64")
  else
    tests=(tests/test_fused.py tests/test_parallel.py tests/test_scan.py tests/test_cells.py)
  fi
  "$python" -m pytest -q -p no:cacheprovider "${tests[@]}" || status=1
  echo "== speed"
  if [ "$mode" = cpu ]; then
    (cd benchmarks && "$python" gpu_check.py --cpu) || status=1
  else
    (cd benchmarks && "$python" gpu_check.py --json results/gpu_check.json) || status=1
  fi
  echo "== done, status $status"
} 2>&1 | tee "$log"
exit $status
