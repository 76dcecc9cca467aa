#!/usr/bin/env bash
# The offline evidence sweep of prune-report (issue 15; docs/report.md, "Evidence"): MNIST-1D, an
# MLP 40-256-256-10, magnitude (global) vs LAP (layerwise) vs random (layerwise) at the first four
# ShrinkBench sparsities, 5 seeds: 60 runs sharing 5 dense models (dense cache), with short training.
# The sweep took 1,406 s (about 23 minutes) wall on a shared 2-core machine at load average 9-13,
# niced (docs/report.md, "Evidence"). Then prune-report, timed.
#   scripts/report_demo_mnist1d.sh [RESULTS_DIR]        (default results/report_demo)
set -euo pipefail
USAGE="usage: scripts/report_demo_mnist1d.sh [RESULTS_DIR]"
case "${1:-}" in  # before any work: --help prints the header comment, an unknown option is refused
  -h | --help) echo "$USAGE"; sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) echo "report_demo_mnist1d.sh: unknown option $1; $USAGE" >&2; exit 2 ;;
esac
if [ $# -gt 1 ]; then  # an override after the folder was dropped: the full sweep ran without it
  echo "report_demo_mnist1d.sh: unexpected argument $2 (the only argument is RESULTS_DIR); $USAGE" >&2; exit 2
fi
RESULTS=${1:-results/report_demo}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1
start=$(date +%s)
nice -n 10 "$PY" -m prune_cli.cli -m name=report_demo results_dir="$RESULTS" \
    dataset=mnist1d model=mlp train.epochs=10 finetune.epochs=3 \
    method=magnitude,lookahead,random sparsity=0.5,0.75,0.875,0.9375 seed=0,1,2,3,4
echo "sweep wall time: $(( $(date +%s) - start )) s"
start=$(date +%s.%N)
"$PY" -W error -m prune_cli.report "$RESULTS"
echo "prune-report wall time: $(echo "$(date +%s.%N) - $start" | bc) s"
