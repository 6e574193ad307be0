#!/usr/bin/env bash
# The GPU run of record, in one command and one log, in under 8 minutes on one NVIDIA GPU:
#   1. the device and the versions (nvidia-smi, JAX); without a GPU it stops here, at once;
#   2. every GPU goal, each printed as "GOAL ... : met / not met (measured X)" or
#      "GOAL ... : not measured (reason)" (benchmarks/gpu_check.py; its docstring says what
#      is measured): values of every GPU path against the CPU, the LSTM training step against
#      Flax, cuDNN through JAX and PyTorch's cuDNN nn.LSTM at the four reference sizes and
#      (256, 512, 64, 1024), mixed precision against float32, minGRU parallel against
#      sequential at T = 4,096 and 65,536; its sections share GOALS_BUDGET seconds (default
#      270) and the process is stopped at GOALS_BUDGET + 30 s whatever happens;
#   3. the tests of the fast paths on the GPU, stopped after TESTS_LIMIT seconds (default 60).
# Worst case, every limit reached: 45 + 300 + 60 s, plus 10 s to kill each: 435 s.
# Needs JAX (with CUDA), Flax, optax, pytest and hypothesis; PyTorch is used when present.
# No network. Run from anywhere; jaxrnn is taken from this checkout:
#   bash benchmarks/gpu_check.sh [LOG]          (default benchmarks/results/gpu_check.log;
#                                                the results as JSON next to it, .json)
#   bash benchmarks/gpu_check.sh --cpu [LOG]    tiny sizes on any machine, no tests (tested in
#                                                tests/test_gpu_check.py so it cannot rot)
# Exit status: 0; 1 when a value check is not met, the goals script fails or the tests fail;
# 2 without a GPU (or Python).
set -uo pipefail
mode=gpu
if [ "${1:-}" = "--cpu" ]; then mode=cpu; shift; fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root" || exit 2
log=${1:-benchmarks/results/gpu_check.log}
json="${log%.log}.json"
python=$(command -v "${PYTHON:-python}") || { echo "no Python at ${PYTHON:-python}"; exit 2; }
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# JAX takes 75% of the GPU's memory when it starts; PyTorch runs in the same process.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.6}
budget=${GOALS_BUDGET:-270}
tests_limit=${TESTS_LIMIT:-60}
tests=(tests/test_cudnn.py tests/test_pallas.py tests/test_mixed_precision.py
  tests/test_fused.py tests/test_parallel.py tests/test_scan.py tests/test_cells.py)
mkdir -p "$(dirname "$log")"

limited() {  # limited SECONDS COMMAND...: SIGINT after SECONDS (KILL 10 s later)
  local seconds=$1
  shift
  if command -v timeout > /dev/null; then
    timeout -s INT -k 10 "$seconds" "$@"
  else
    "$@"
  fi
}

{
  status=0
  echo "== gpu_check ($mode) $(date -u +%Y-%m-%dT%H:%M:%SZ), log $log"
  if [ "$mode" = gpu ]; then
    if command -v nvidia-smi > /dev/null; then
      nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    else
      echo "(no nvidia-smi)"
    fi
    limited 45 "$python" -c "
import sys, jax
print('jax', jax.__version__, 'backend', jax.default_backend(), jax.devices())
sys.exit(0 if jax.default_backend() == 'gpu' else 3)"
    found=$?
    if [ $found -ne 0 ]; then
      echo "error: no GPU: JAX's backend is not 'gpu' (or JAX failed to start, status $found)."
      echo "This check needs one NVIDIA GPU with JAX's CUDA build; for the tiny-size check on"
      echo "any machine run: bash benchmarks/gpu_check.sh --cpu"
      exit 2
    fi
  fi
  echo "== goals (sections share ${budget} s; stopped at $((budget + 30)) s)"
  flags=(--json "$json" --budget "$budget")
  if [ "$mode" = cpu ]; then flags+=(--cpu); fi
  limited $((budget + 30)) "$python" benchmarks/gpu_check.py "${flags[@]}"
  rc=$?
  if [ $rc -eq 124 ]; then echo "goals: stopped by the time limit"; fi
  if [ $rc -ne 0 ]; then status=1; fi
  echo "results: $json"
  echo "== tests of the fast paths"
  if [ "$mode" = cpu ]; then
    for file in "${tests[@]}"; do
      [ -f "$file" ] || { echo "missing $file"; status=1; }
    done
    echo "(not run with --cpu: make test runs them; ${#tests[@]} files there)"
  else
    limited "$tests_limit" "$python" -m pytest -q -p no:cacheprovider "${tests[@]}"
    rc=$?
    if [ $rc -eq 124 ]; then echo "tests: stopped after ${tests_limit} s (what ran is above)"; fi
    if [ $rc -ne 0 ]; then status=1; fi
  fi
  echo "== done, status $status"
  exit $status
} 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
