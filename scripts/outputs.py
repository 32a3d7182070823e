"""Committed notebook outputs, and the stamp that proves they come from the code as it is.

    python scripts/outputs.py save            # run every notebook at test sizes (CPU), keep its outputs, stamp it
    python scripts/outputs.py save nbs/05c_scheduler.ipynb
    python scripts/outputs.py check           # every notebook's stamp matches the code (tests/test_outputs.py)

A notebook's stamp is the SHA-256 of its code cells and of every module of the package (`fastserve_nb/**/*.py` and
shipped assets): change either and the saved outputs no longer match, so `check` fails until `save` runs again.
`save` runs each notebook in its own process, as the tests do, and records its run time next to the stamp
(`index.ipynb` lists them). Run `nbdev-clean` afterwards, as for any notebook edit.
"""
import hashlib, json, os, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
KEY = "fastserve"                       # the notebook-level metadata key (nbdev-clean keeps it: allowed_metadata_keys)


def notebooks() -> list[Path]:
    return sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


def package_digest() -> str:
    "One hash of every file of the package (sources and shipped assets), by relative path."
    h = hashlib.sha256()
    for p in sorted((ROOT / "fastserve_nb").rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and p.name != "_modidx.py":
            h.update(str(p.relative_to(ROOT)).encode()); h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def stamp(nb_path: Path, pkg: str | None = None) -> str:
    "The hash of the notebook's code cells (in order) and of the package."
    nb = json.loads(Path(nb_path).read_text())
    h = hashlib.sha256((pkg or package_digest()).encode())
    for c in nb["cells"]:
        if c["cell_type"] == "code": h.update("".join(c["source"]).encode() + b"\0")
    return h.hexdigest()


def drop_stderr(nb: dict) -> dict:
    "Keep what a cell shows (stdout, displays, errors), not its stderr stream: library warnings, progress bars, paths of this machine."
    for c in nb["cells"]:
        if c["cell_type"] == "code": c["outputs"] = [o for o in c.get("outputs", []) if o.get("name") != "stderr"]
    return nb


def save_one(nb_path: Path) -> float:
    "Run one notebook in this process at test sizes, write its outputs, stamp and run time into it; its seconds."
    import nbdev.test
    from nbdev.config import get_config
    nb_path = Path(nb_path).resolve()
    ok, secs = nbdev.test.test_nb(nb_path, skip_flags=get_config(ROOT).tst_flags.split(), save=True)
    if not ok: sys.exit(f"{nb_path.name} failed: outputs not saved")
    nb = drop_stderr(json.loads(nb_path.read_text()))
    nb["metadata"][KEY] = {"outputs_stamp": stamp(nb_path), "run_seconds": round(secs, 1)}
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return secs


def check() -> list[str]:
    "Notebooks whose outputs are missing or older than their code (empty: all fresh)."
    pkg, stale = package_digest(), []
    for p in notebooks():
        meta = json.loads(p.read_text())["metadata"].get(KEY, {})
        if meta.get("outputs_stamp") != stamp(p, pkg): stale.append(p.name)
    return stale


if __name__ == "__main__":
    cmd, args = (sys.argv[1] if len(sys.argv) > 1 else "check"), sys.argv[2:]
    if cmd == "save-one": save_one(Path(args[0])); sys.exit(0)
    if cmd == "drop-stderr":                # on saved notebooks, without running them again (their stamps stay)
        for p in notebooks(): p.write_text(json.dumps(drop_stderr(json.loads(p.read_text())), indent=1, ensure_ascii=False) + "\n")
        sys.exit(0)
    if cmd == "save":
        for p in [Path(a).resolve() for a in args] or notebooks():
            t = time.time()
            r = subprocess.run([sys.executable, __file__, "save-one", str(p)], cwd=ROOT)
            print(f"{p.name}: {'saved' if r.returncode == 0 else 'FAILED'} in {time.time() - t:.0f} s", flush=True)
            if r.returncode: sys.exit(1)
        subprocess.run(["nbdev-clean"], cwd=ROOT, check=True)
        sys.exit(0)
    stale = check()
    print("\n".join(f"stale or missing outputs: {n}" for n in stale) or "all notebook outputs are fresh")
    sys.exit(1 if stale else 0)
