"""The committed notebook outputs come from the code as it is: every notebook carries a stamp (the hash of its code
cells and of the package) that `scripts/outputs.py save` wrote when it ran the notebook; a change to either makes the
stamp stale, and this test fails until the outputs are saved again. Also: the outputs are there and stay small."""
import json, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import outputs  # noqa: E402


def test_outputs_are_fresh():
    stale = outputs.check()
    assert not stale, f"outputs older than their code in {stale}: run `python scripts/outputs.py save` (then commit)"


def test_every_notebook_shows_outputs():
    empty = [p.name for p in outputs.notebooks()
             if not any(c.get("outputs") for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")]
    assert not empty, f"notebooks with no output at all: {empty}"


def test_notebooks_stay_small():
    total = sum(p.stat().st_size for p in outputs.notebooks())
    assert total < 15 * 2**20, f"notebooks weigh {total / 2**20:.1f} MiB (limit 15)"


def test_stamp_sees_a_code_change(tmp_path):
    "The stamp changes when one character of a code cell changes, and not when markdown changes."
    nb = json.loads((ROOT / "nbs" / "05c_scheduler.ipynb").read_text())
    p = tmp_path / "x.ipynb"; p.write_text(json.dumps(nb))
    before = outputs.stamp(p, "pkg")
    md = next(c for c in nb["cells"] if c["cell_type"] == "markdown"); md["source"] = ["changed prose"]
    p.write_text(json.dumps(nb)); assert outputs.stamp(p, "pkg") == before
    code = next(c for c in nb["cells"] if c["cell_type"] == "code"); code["source"] = code["source"] + [" "]
    p.write_text(json.dumps(nb)); assert outputs.stamp(p, "pkg") != before
    assert outputs.stamp(p, "pkg2") != outputs.stamp(p, "pkg")
