#!/usr/bin/env bash
# The pruning scaling law on MNIST-1D (docs/scaling_law.md): a preset's sweep into RESULTS, then
# prune-report, which fits Rosenfeld et al.'s Eq. 1-2 and writes RESULTS/report/scaling_fit.csv,
# scaling_fit.png and a summary.md section.
#   PYTHONPATH=. bash scripts/scaling_law_mnist1d.sh /tmp/scaling_mnist1d
#       preset scaling_mnist1d: 2 widths x 9 densities x 3 seeds (54 runs)
#   PRESET=scaling_mnist1d_scales PYTHONPATH=. bash scripts/scaling_law_mnist1d.sh /tmp/scaling_scales
#       3 widths x 3 training-set sizes x 8 densities x 3 seeds (216 runs)
#   PRESET=scaling_mnist1d_depth PYTHONPATH=. bash scripts/scaling_law_mnist1d.sh /tmp/scaling_depth
#       4 depths (1-4 hidden layers) x 2 widths x 9 densities x 3 seeds (216 runs; fits phi_depth)
# Runs already complete in RESULTS are found and skipped, so an interrupted sweep can be rerun.
# prune-report fits only after prune-run exits 0 or 1 (some runs failed); other statuses pass through.
set -euo pipefail
USAGE="usage: [PRESET=NAME] scripts/scaling_law_mnist1d.sh [RESULTS_DIR]"
case "${1:-}" in  # before any work: --help prints the header comment, an unknown option is refused
  -h | --help) echo "$USAGE"; sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
  -*) echo "scaling_law_mnist1d.sh: unknown option $1; $USAGE" >&2; exit 2 ;;
esac
if [ $# -gt 1 ]; then  # an override after the folder was dropped: the full sweep ran without it
  echo "scaling_law_mnist1d.sh: unexpected argument $2 (the only argument is RESULTS_DIR); $USAGE" >&2; exit 2
fi
RESULTS=${1:-results/scaling_mnist1d}
PRESET=${PRESET:-scaling_mnist1d}
PYTHON=${PYTHON:-python}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# a run that fails (listed at the end of the sweep, exit code 1) leaves its point out; fit the rest.
# Any other status (2: the sweep was refused before any run; 130: Ctrl-C) stops here with it, no fit.
status=0
"$PYTHON" -m prune_cli.cli -m +experiment="$PRESET" results_dir="$RESULTS" || status=$?
case $status in
  0) ;;
  1) echo "some runs failed (listed above); fitting the completed ones" ;;
  *) exit "$status" ;;
esac
"$PYTHON" -m prune_cli.report "$RESULTS"
"$PYTHON" - "$RESULTS/report/scaling_fit.csv" <<'PY'
import sys

import pandas as pd

table = pd.read_csv(sys.argv[1])
cols = ["method", "scales", "status", "n_points", "eps_up", "eps_up_se", "gamma", "gamma_se", "p", "p_se"]
cols += ["psi_width", "psi_width_se", "phi_depth", "phi_depth_se", "mean_rel_deviation", "std_rel_deviation"]
cols += ["mean_abs_rel_error", "max_abs_rel_error", "reason"]
print(table[[c for c in cols if c in table.columns]].T.to_string())
PY
