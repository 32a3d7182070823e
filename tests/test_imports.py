"""The package's import graph, read from the source with `ast`: no circles, no arrow that points up the course.

Every `import` and `from … import` in every module of `fastserve_nb` counts, those inside functions included (a
lazy import is still a dependency: the circle `parallel` ↔ `tensor_parallel`/`pipeline_parallel` was made of them).
A module importing itself (a `__main__` block that finds its own functions for spawn) is not an arrow.

The layers, lowest first; a module may import its own layer and the layers below it, never above:

0. foundation — `fastserve_nb` (the package's `__init__`), `registry`, `architectures`, `core`, `pretrained`, `corpus`, `tiny`
   (chapter 00). `core` imports no chapter, no `serve`, no CLI.
1. chapters 01–04 — `compress/`, `parallel/`, `finetune/`, `explain/`. Each imports the foundation and its own
   sub-package only: the chapters are building blocks, each usable alone, so no chapter imports another.
2. `serve/` (chapter 05) — the foundation, `serve/` itself, and only these chapter modules, which the server reuses
   (`SERVE_USES`): `compress.quantization` (`--quantize`), `finetune.lora` and `finetune.training` (online LoRA
   learning), `explain.attention` and `explain.patching` (`/v1/explain`), `parallel.sharding` and
   `parallel.pipeline_parallel` (the pipeline stages). Never a CLI module.
3. the command line — `cli`, `cli_*`: anything.

A new module must be placed in a layer here (the test fails on a module it cannot place), and a new reuse of a
chapter by `serve/` must be added to `SERVE_USES` on purpose.
"""
import ast, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PKG = ROOT / "fastserve_nb"
FOUNDATION = {"fastserve_nb", "fastserve_nb.architectures", "fastserve_nb.core", "fastserve_nb.corpus", "fastserve_nb.pretrained",
              "fastserve_nb.registry", "fastserve_nb.tiny"}
CHAPTERS = ("compress", "parallel", "finetune", "explain")
SERVE_USES = {"fastserve_nb.compress.quantization", "fastserve_nb.finetune.lora", "fastserve_nb.finetune.training",
              "fastserve_nb.explain.attention", "fastserve_nb.explain.patching", "fastserve_nb.parallel.sharding",
              "fastserve_nb.parallel.pipeline_parallel"}


def modules(pkg: Path) -> dict[str, Path]:
    "Dotted name -> file of every module under `pkg` (a package is named by its `__init__.py`); `_modidx` is data."
    out = {}
    for f in sorted(pkg.rglob("*.py")):
        if f.name == "_modidx.py" or "__pycache__" in f.parts: continue
        parts = (pkg.name, *f.relative_to(pkg).with_suffix("").parts)
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports_of(name: str, f: Path, known: set[str]) -> set[str]:
    "The modules of `known` that module `name` (file `f`) imports anywhere in its source, itself left out."
    is_pkg, root, out = f.name == "__init__.py", name.split(".")[0], set()
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.Import): targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the importing module's package
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else: mod = node.module
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]   # `from pkg import submodule`
        else: continue
        for t in targets:
            if t.split(".")[0] != root: continue
            while t not in known and "." in t: t = t.rsplit(".", 1)[0]   # `import a.b.c` of a name inside a module
            if t in known and t != name: out.add(t)
    return out


def import_graph(pkg: Path) -> dict[str, set[str]]:
    mods = modules(pkg)
    return {m: imports_of(m, f, set(mods)) for m, f in mods.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    "Every import circle: the strongly connected components of more than one module (Tarjan), sorted."
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v: break
            if len(comp) > 1: out.append(sorted(comp))
    for v in sorted(graph):
        if v not in index: visit(v)
    return sorted(out)


def layer(m: str) -> int:
    "The layer of module `m` (see the module docstring); KeyError for a module no layer claims."
    parts = m.split(".")
    if m in FOUNDATION: return 0
    if len(parts) > 1 and parts[1] in CHAPTERS: return 1
    if len(parts) > 1 and parts[1] == "serve": return 2
    if len(parts) == 2 and (parts[1] == "cli" or parts[1].startswith("cli_")): return 3
    raise KeyError(f"{m} is in no layer: place it in tests/test_imports.py")


def violations(graph: dict[str, set[str]]) -> list[str]:
    "Every arrow the layer rules forbid, as 'a -> b: why'."
    bad = []
    for a, deps in sorted(graph.items()):
        for b in sorted(deps):
            la, lb = layer(a), layer(b)
            if lb > la: bad.append(f"{a} -> {b}: upward (layer {la} imports layer {lb})")
            elif la == 1 and lb == 1 and a.split(".")[1] != b.split(".")[1]: bad.append(f"{a} -> {b}: one chapter imports another")
            elif la == 2 and lb == 1 and b not in SERVE_USES: bad.append(f"{a} -> {b}: serve/ reuses a chapter module not in SERVE_USES")
    return bad


GRAPH = import_graph(PKG)


def test_graph_is_read():
    "The reader sees the package's real arrows (absolute, relative, lazy, `from pkg import module`), so the checks below are not vacuous."
    for a, b in [("fastserve_nb.serve.engine", "fastserve_nb.core"),                     # from ..core import
                 ("fastserve_nb.parallel.tensor_parallel", "fastserve_nb.parallel.sharding"),   # from .sharding import
                 ("fastserve_nb.serve.learn", "fastserve_nb.explain.patching"),          # lazy, inside a function
                 ("fastserve_nb.serve.service", "fastserve_nb.serve.learn"),             # from fastserve_nb.serve import learn
                 ("fastserve_nb.cli_parallel", "fastserve_nb.parallel.pipeline_parallel")]:
        assert b in GRAPH[a], (a, b, GRAPH[a])
    assert {"fastserve_nb.compress.quantization", "fastserve_nb.parallel.sharding", "fastserve_nb.finetune.lora",
            "fastserve_nb.explain.attention", "fastserve_nb.serve.engine", "fastserve_nb.cli"} <= set(GRAPH)


def test_no_cycles():
    assert cycles(GRAPH) == []


def test_every_module_has_a_layer():
    unplaced = []
    for m in GRAPH:
        try: layer(m)
        except KeyError as e: unplaced.append(str(e))
    assert unplaced == []


def test_no_upward_arrows():
    assert violations(GRAPH) == []


def test_core_imports_no_chapter():
    assert GRAPH["fastserve_nb.core"] <= FOUNDATION, GRAPH["fastserve_nb.core"]


def test_serve_uses_are_real():
    "Each allowed reuse is imported by some serve/ module: the allow-list names what exists, nothing more."
    used = set().union(*(d for m, d in GRAPH.items() if m.startswith("fastserve_nb.serve.")))
    assert SERVE_USES <= used, SERVE_USES - used


def test_checks_catch_a_circle_and_an_upward_arrow(tmp_path):
    "The same reader and rules on a small made-up package with a lazy circle and serve importing a CLI."
    pkg = tmp_path / "fastserve_nb"
    for f, src in {"__init__.py": "", "core.py": "", "cli.py": "from fastserve_nb.serve import engine\n",
                   "parallel/__init__.py": "", "parallel/sharding.py": "def main():\n    from . import tensor_parallel\n",
                   "parallel/tensor_parallel.py": "from .sharding import main\nfrom ..core import x\n",
                   "serve/__init__.py": "", "serve/engine.py": "import fastserve_nb.cli\nfrom ..explain.probing import y\n",
                   "explain/__init__.py": "", "explain/probing.py": "from fastserve_nb.parallel.sharding import main\n"}.items():
        (pkg / f).parent.mkdir(parents=True, exist_ok=True)
        (pkg / f).write_text(src)
    g = import_graph(pkg)
    assert cycles(g) == [["fastserve_nb.cli", "fastserve_nb.serve.engine"],
                         ["fastserve_nb.parallel.sharding", "fastserve_nb.parallel.tensor_parallel"]]
    assert violations(g) == [
        "fastserve_nb.explain.probing -> fastserve_nb.parallel.sharding: one chapter imports another",
        "fastserve_nb.serve.engine -> fastserve_nb.cli: upward (layer 2 imports layer 3)",
        "fastserve_nb.serve.engine -> fastserve_nb.explain.probing: serve/ reuses a chapter module not in SERVE_USES"]


def test_every_module_imports():
    "Every module imports, one after another in a fresh interpreter, from this checkout."
    code = "import importlib, sys\nfor m in sys.argv[1:]: print(importlib.import_module(m).__file__)"
    r = subprocess.run([sys.executable, "-c", code, *sorted(GRAPH)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(Path(f) for f in r.stdout.splitlines()) == sorted(modules(PKG).values())   # one path a line: paths may hold spaces


def imported_names(src: str) -> list[tuple[str, str | None]]:
    "(module, name) of every `fastserve_nb` import in `src` (name None for `import m`); lines a parser rejects (magics) are skipped."
    try: nodes = list(ast.walk(ast.parse(src)))
    except SyntaxError:
        nodes = []
        for stmt in src.split("\n"):
            try: nodes += ast.walk(ast.parse(stmt.strip()))
            except SyntaxError: pass
    out = []
    for n in nodes:
        if isinstance(n, ast.Import): out += [(a.name, None) for a in n.names if a.name.split(".")[0] == "fastserve_nb"]
        elif isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").split(".")[0] == "fastserve_nb":
            out += [(n.module, a.name) for a in n.names]
    return out


def test_every_import_outside_the_package_resolves():
    "The notebooks (all cells, exported or not), tests, bench and scripts import only modules and names that exist."
    import importlib, json
    sources = {f"{p.name}[{i}]": "".join(c["source"]) for p in sorted((ROOT / "nbs").glob("*.ipynb"))
               for i, c in enumerate(json.loads(p.read_text())["cells"]) if c["cell_type"] == "code"}
    for d in ("tests", "bench", "scripts"): sources |= {str(p.relative_to(ROOT)): p.read_text() for p in sorted((ROOT / d).glob("*.py"))}
    bad, seen = [], 0
    for where, src in sources.items():
        for mod, name in imported_names(src):
            seen += 1
            try: m = importlib.import_module(mod)
            except ImportError as e: bad.append(f"{where}: {mod}: {e}"); continue
            if not Path(m.__file__).is_relative_to(ROOT):   # an old path an editable install of another checkout still serves
                bad.append(f"{where}: {mod} is not in this checkout ({m.__file__})"); continue
            if name and name != "*" and not hasattr(m, name):
                try: importlib.import_module(f"{mod}.{name}")
                except ImportError: bad.append(f"{where}: from {mod} import {name}: no such name")
    assert seen > 100, seen   # the notebooks' imports were found
    assert bad == [], "\n".join(bad)


def test_api_process_checks_a_checkpoint_without_torch(tmp_path):
    """`fastserve serve --model <folder>` checks the folder's `config.json` in the HTTP process before any worker starts,
    and that process imports no torch: an unsupported checkpoint is refused (exit status 2, one line), a supported one
    reaches `run_server` (replaced here, so no worker starts)."""
    (tmp_path / "gemma").mkdir(); (tmp_path / "qwen3").mkdir()
    (tmp_path / "gemma" / "config.json").write_text('{"model_type": "gemma", "architectures": ["GemmaForCausalLM"]}')
    (tmp_path / "qwen3" / "config.json").write_text('{"model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"]}')
    code = ("import sys; import fastserve_nb.serve.service as s; s.run_server = lambda cfg: 0\n"
            "for m in sys.argv[1:]: print(s.main(['--model', m]), 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "gemma"), str(tmp_path / "qwen3")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.stdout.split("\n")[:2] == ["2 False", "0 False"], (r.stdout, r.stderr[-2000:])
    assert r.stderr.strip().splitlines() == [
        "fastserve serve: model_type 'gemma' (GemmaForCausalLM) is not supported; supported: llama (LlamaForCausalLM), "
        "mistral (MistralForCausalLM), qwen2 (Qwen2ForCausalLM), qwen3 (Qwen3ForCausalLM), gemma2 (Gemma2ForCausalLM), "
        "gemma3_text (Gemma3ForCausalLM), phi3 (Phi3ForCausalLM), olmo2 (Olmo2ForCausalLM)"], r.stderr
