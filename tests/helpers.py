"""Helpers shared by the tests.

The random-pruning NTK experiment is a research helper in scripts/ntk_random.py, not part of the
package (docs/architecture.md); the tests reach it from here.
"""

from __future__ import annotations

import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))

from ntk_random import random_pruning_ntk, unit_scaled_inputs  # noqa: E402

__all__ = ["random_pruning_ntk", "unit_scaled_inputs"]
