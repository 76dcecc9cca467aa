#!/usr/bin/env bash
# The GPU check (docs/performance.md "GPU"): run it on a machine with a CUDA GPU, from anywhere;
# it takes under five minutes and exits non-zero if any step fails.
#
#   scripts/gpu_check.sh                       # uses `python` (PYTHON=.venv/bin/python to choose)
#   PYTHON=.venv/bin/python scripts/gpu_check.sh 2>&1 | tee gpu_check.log
#
# 1. the test suite's CUDA-marked tests (`pytest -m cuda`: bf16, channels-last, deterministic mode,
#    torch.compile, pinned transfers, exact resume of a dropout model on the GPU, and every metric of
#    metrics=full recording the CPU's values for the same weights, the 2:4 semi-structured kernels and
#    the speedup metric's semi_structured path);
# 2. the default experiment with every metric (`prune-run device=cuda metrics=full`), then a check that
#    the run recorded device=cuda and a finite value for each family of metrics (scripts/check_gpu_run.py);
# 3. one CIFAR-10-shaped ResNet-20 epoch (5,000 synthetic images) through the runner's training
#    loop vs a bare PyTorch loop on the same GPU, fp32 / bf16 / channels-last / both, interleaved
#    round by round (scripts/bench_gpu_epoch.py);
# 4. the measured-speedup benchmark of the sparse execution paths (scripts/bench_speedup.py --quick;
#    CPU kernels, measured on the GPU machine's cores).
#
# GPU_CHECK_OUT=DIR keeps the run's results and the benchmarks' CSVs there (default: a temporary folder).
set -euo pipefail
USAGE="usage: [PYTHON=PATH] [GPU_CHECK_OUT=DIR] scripts/gpu_check.sh"
case "${1:-}" in  # before any work: --help prints the header comment, an unknown option is refused
  -h | --help) echo "$USAGE"; sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) echo "gpu_check.sh: unknown option $1; $USAGE" >&2; exit 2 ;;
  *) [ $# -eq 0 ] || { echo "gpu_check.sh: takes no arguments, got $1; $USAGE" >&2; exit 2; } ;;
esac

cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
OUT_DIR=${GPU_CHECK_OUT:-$(mktemp -d)}
mkdir -p "$OUT_DIR"

step() {  # step NAME SECONDS COMMAND...: run with a time limit, report how long it took
  local name=$1 limit=$2 t0
  shift 2
  t0=$(date +%s)
  echo "=== $name (limit ${limit}s)"
  if ! timeout "$limit" "$@"; then
    echo "gpu_check: FAILED: $name" >&2
    exit 1
  fi
  echo "=== $name: ok in $(($(date +%s) - t0)) s"
}

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "gpu_check: torch.cuda.is_available() is False: this check needs a CUDA GPU" >&2
  exit 2
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, '|', torch.cuda.get_device_name(), 'capability', torch.cuda.get_device_capability(), '| bf16:', torch.cuda.is_bf16_supported())"
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv || true

step "pytest -m cuda" 300 "$PY" -m pytest -q -m cuda -p no:cacheprovider tests
step "prune-run device=cuda metrics=full" 240 "$PY" -m prune_cli.cli device=cuda metrics=full \
  results_dir="$OUT_DIR/results" dense_cache.dir="$OUT_DIR/cache" dataset.cache_dir="$OUT_DIR/data"
step "the GPU run's metrics" 30 "$PY" scripts/check_gpu_run.py "$OUT_DIR/results"
step "ResNet-20 epoch: runner vs bare loop" 90 "$PY" scripts/bench_gpu_epoch.py --device cuda --csv "$OUT_DIR/gpu_epoch.csv"
step "measured speedup (bench_speedup --quick)" 120 "$PY" scripts/bench_speedup.py --quick --threads 4 --csv "$OUT_DIR/speedup.csv"

echo "gpu_check: all steps passed in $(($(date +%s) - start)) s; results in $OUT_DIR"
