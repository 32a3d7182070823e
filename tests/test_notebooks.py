"""Run every notebook through nbdev's test runner, one pytest test each, so CI ends with pytest's summary.

Cells flagged `#| slow`, `#| cuda`, `#| multigpu` or `#| notest` are skipped unless FASTSERVE_TEST_FLAGS names them
(e.g. FASTSERVE_TEST_FLAGS="cuda" on a GPU machine)."""
import os
from pathlib import Path

import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

ROOT = Path(__file__).parent.parent
NBS = sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))
SKIP = get_config(ROOT).tst_flags.split()
FORCE = os.environ.get("FASTSERVE_TEST_FLAGS", "").split()


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb):
    ok, _ = run_notebook(nb, skip_flags=SKIP, force_flags=FORCE)
    assert ok, f"{nb.name} failed (its traceback is printed above)"
