"""`python -m prune_cli.results RESULTS_DIR` (README): rebuild the shared tables from the per-run
files. The code is in prune_cli/run/results.py; this module only keeps the documented command (it
is apart from `prune_cli.results.load` so that reading results never imports torch)."""

from __future__ import annotations

from ..run.results import main

if __name__ == "__main__":
    raise SystemExit(main())
