"""`python -m prune_cli.report RESULTS_DIR`: the same as `prune-report RESULTS_DIR`."""

import sys

from . import main

main(sys.argv[1:])
