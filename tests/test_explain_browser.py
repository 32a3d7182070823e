"""The attention explorer and the offline bertviz views in a real browser.

Starts JupyterLab on 127.0.0.1 (free port, token auth, a temporary root holding a small demo notebook), opens the
notebook in headless Debian Chromium driven by Playwright, blocks every request that is not to 127.0.0.1 (so the page
has no network, as on an offline laptop), runs all cells, changes the explorer's layer and asserts from the page
that the heatmap changed, picks a token and asserts its attention row changed, and asserts bertviz's head view drew
an SVG. Skipped only when /usr/bin/chromium is absent (scripts/test.sh installs it)."""
import json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
T_MS = int(os.environ.get("EXPLAIN_BROWSER_TIMEOUT_MS", 90_000))   # generous per-step timeout; the whole test stays under two minutes on 2 cores

DEMO_CELLS = [
    "import torch\n"
    "from fastserve_nb.core import ModelConfig, Decoder\n"
    "from fastserve_nb.explain.attention import run_with_cache, AttentionExplorer, head_view, model_view",
    "torch.manual_seed(0)\n"
    "cfg = ModelConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,\n"
    "                  num_attention_heads=4, num_key_value_heads=2)\n"
    "model = Decoder(cfg).eval()\n"
    "tokens = 'the cat sat on the mat because it was warm'.split()\n"
    "cap = run_with_cache(model, torch.arange(len(tokens))[None] * 5 % 64)",
    "AttentionExplorer(cap.attentions, tokens)",
    "head_view(cap.attentions, tokens)",
    "model_view(cap.attentions, tokens)",
]


def demo_notebook() -> dict:
    cells = [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "execution_count": None, "outputs": [],
              "source": src} for i, src in enumerate(DEMO_CELLS)]
    return {"cells": cells, "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    "A JupyterLab server on a free local port serving tmp_path/root; yields (base_url, token)."
    root, home = tmp_path / "root", tmp_path / "home"
    root.mkdir(); home.mkdir()
    (root / "demo.ipynb").write_text(json.dumps(demo_notebook()))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_WORKSPACES_DIR": str(home / "ws"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"), "PYTHONPATH": str(Path(__file__).parent.parent)}
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
           "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--LabApp.expose_app_in_browser=True"] + (["--allow-root"] if os.geteuid() == 0 else [])
    log = open(tmp_path / "jupyterlab.log", "w")
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            if proc.poll() is not None: break
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=1)
                break
            except OSError: time.sleep(0.5)
        else: pytest.fail(f"JupyterLab did not answer on {base}; log: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}: {(tmp_path / 'jupyterlab.log').read_text()[-2000:]}")
        yield base, token
    finally:
        proc.terminate()
        try: proc.wait(10)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium is not installed "
                    "(apt-get install -y chromium chromium-driver; scripts/test.sh does this)")
def test_explorer_and_bertviz_in_jupyterlab(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright, TimeoutError as PlaywrightTimeout
    base, token = jupyterlab
    blocked = []
    def offline(route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")): route.continue_()
        else: blocked.append(route.request.url); route.abort()

    with sync_playwright() as p:
        # a fresh --user-data-dir: Playwright passes it for a persistent context
        browser = p.chromium.launch_persistent_context(tmp_path / "profile", executable_path=CHROMIUM, args=FLAGS,
                                                       headless=True, viewport={"width": 1400, "height": 1000})
        try:
            browser.route("**/*", offline)
            page = browser.new_page()
            page.set_default_timeout(T_MS)
            console = []
            page.on("console", lambda m: console.append(m.text))
            page.goto(f"{base}/lab/tree/demo.ipynb?token={token}")
            page.wait_for_selector(".jp-Notebook .jp-Cell")
            accept = page.locator(".jp-Dialog .jp-mod-accept")          # "Select Kernel" may ask once
            try: accept.click(timeout=20_000)
            except PlaywrightTimeout: pass
            page.wait_for_function("() => window.jupyterapp && window.jupyterapp.commands.isEnabled('notebook:run-all-cells')")
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")  # do not await the run

            table = page.locator(".fs-heatmap table.fs-attn-table")
            table.wait_for()
            before = table.inner_html()
            assert table.get_attribute("data-layer") == "0"
            page.locator(".fs-layer select").select_option(label="layer 2")
            page.wait_for_function("document.querySelector('.fs-heatmap table.fs-attn-table')"
                                   ".getAttribute('data-layer') === '2'")
            assert table.inner_html() != before, "the heatmap did not change with the layer"

            row = page.locator(".fs-row")
            row_before = row.inner_html()
            page.locator(".fs-query button").nth(3).click()
            page.wait_for_function("(b) => document.querySelector('.fs-row').innerHTML !== b", arg=row_before)
            assert "sat" in row.inner_text()

            # bertviz drew with no network: the head view has SVG text for every token (left and right columns),
            # the model view one small SVG plot per layer and head (3 x 4)
            page.wait_for_function("() => { const v = document.querySelectorAll('[id^=bertviz-]');"
                                   " return v.length === 2 && v[0].querySelectorAll('svg text').length >= 20"
                                   " && v[1].querySelectorAll('svg line').length > 0; }")
            page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)
        except Exception:
            page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)   # look at it under --basetemp
            (tmp_path / "console.txt").write_text("\n".join(console))
            raise
        finally:
            browser.close()
    assert not [u for u in blocked if "cdnjs" in u], f"the page still asked a CDN: {blocked}"
