"""Run every notebook through nbdev's test runner, one pytest test each, so CI ends with pytest's summary.

Each notebook runs in a fresh Python process, as a learner's kernel would: no state or memory carries from one notebook
to the next, and the process's peak resident memory is recorded (`tests/conftest.py` prints the largest).
Cells flagged `#| slow`, `#| cuda`, `#| multigpu` or `#| notest` are skipped unless FASTSERVE_TEST_FLAGS names them
(e.g. FASTSERVE_TEST_FLAGS="cuda" on a GPU machine)."""
import os, subprocess, sys
from pathlib import Path

import pytest
from nbdev.config import get_config

ROOT = Path(__file__).parent.parent
NBS = sorted(p for p in (ROOT / "nbs").glob("*.ipynb") if not p.name.startswith("_"))
SKIP = get_config(ROOT).tst_flags.split()
FORCE = os.environ.get("FASTSERVE_TEST_FLAGS", "").split()
# the child: run the notebook, then write the peak RSS (KiB) of itself and of the processes it started and waited for
RUN = """import resource, sys
from nbdev.test import test_nb
ok, _ = test_nb(sys.argv[1], skip_flags=sys.argv[2].split(), force_flags=sys.argv[3].split())
peak = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
open(sys.argv[4], "w").write(str(peak))
sys.exit(0 if ok else 1)
"""


@pytest.mark.parametrize("nb", NBS, ids=[p.stem for p in NBS])
def test_notebook(nb, tmp_path, record_property):
    peak = tmp_path / "peak_kib"
    r = subprocess.run([sys.executable, "-c", RUN, str(nb), " ".join(SKIP), " ".join(FORCE), str(peak)], cwd=ROOT)
    if peak.exists(): record_property("peak_rss_mib", int(peak.read_text()) // 1024)
    assert r.returncode == 0, f"{nb.name} failed (its traceback is printed above)"
