"""Plots for the engine benchmark: throughput beside transformers, latency CDFs per scheduling policy, and the policy sweep.

    python bench/plot_engine.py                  # reads bench/engine_gpu.json + engine_gpu_requests.json, writes engine_gpu.png
    python bench/plot_engine.py sweep [FILE]     # reads bench/engine_gpu_sweep.json (or FILE), writes FILE's name with .png
"""
import json, os, sys
import matplotlib
import matplotlib.pyplot as plt

def plot_sweep(sweep: dict, path: str | None = None):
    "Mean and p99 normalized latency and JCT against load, one row per batch cap, one line per policy."
    caps = list(sweep["runs"])
    keys = ("mean_normalized_latency", "p99_normalized_latency", "mean_jct", "p99_jct")
    fig, axs = plt.subplots(len(caps), 4, figsize=(17, 3.6 * len(caps)), squeeze=False)
    for row, cap in zip(axs, caps):
        run = sweep["runs"][cap]
        loads = [p["load"] for p in run["points"]]
        for name in run["points"][0]["policies"]:
            for ax, k in zip(row, keys):
                ax.plot(loads, [p["policies"][name][k] * (1e3 if "normalized" in k else 1) for p in run["points"]], "o-", label=name)
        for ax, k in zip(row, keys):
            ax.set(xlabel=f"load (× capacity {run['capacity_req_s']:.1f} req/s)", yscale="log",
                   ylabel=k.replace("_", " ") + (" (ms/token)" if "normalized" in k else " (s)"), title=f"cap {cap}")
            ax.grid(alpha=.3)
        row[0].legend(fontsize=8)
    fig.suptitle(f"{sweep['gpu']}: {sweep['setup']['requests']} requests per point, answers on the {sweep['setup']['law']} law")
    fig.tight_layout()
    if path: fig.savefig(path, dpi=110)
    return fig

def sweep_table(sweep: dict) -> str:
    "The headline ratios (bigger = the first policy better) as a markdown table."
    rows = [k for k in sweep if k.startswith(("mlfq_vs", "swap_vs", "rank_vs"))]
    return "| ratio | value |\n|---|---|\n" + "\n".join(f"| {k} | {sweep[k]:.2f} |" if sweep[k] is not None else f"| {k} | – |" for k in rows)

here = os.path.dirname(os.path.abspath(__file__))
def plot_engine():
    "Throughput beside transformers and the latency CDFs of bench/engine_gpu.json, into engine_gpu.png."
    r = json.load(open(os.path.join(here, "engine_gpu.json")))
    reqs = json.load(open(os.path.join(here, "engine_gpu_requests.json")))
    fig, axs = plt.subplots(1, 3, figsize=(15, 4))
    names = ["HF static\ngenerate b=64", "HF\ngenerate_batch", "ours\nCUDA graphs", "ours + fused\nops"]
    vals = [r["hf_static_b64_tok_s"], r["hf_generate_batch_tok_s"], r["ours_256req_tok_s"], r["ours_compiled_256req_tok_s"]]
    axs[0].bar(names, vals, color=["#999", "#999", "#4a8", "#2a6"])
    for i, v in enumerate(vals): axs[0].text(i, v, f"{v:,.0f}", ha="center", va="bottom")
    axs[0].set_ylabel("output tokens/s"); axs[0].set_title(f"256 requests, 256 new tokens — {r['gpu']}")
    for ax, key in zip(axs[1:], ("normalized_latency", "e2e")):
        for name, ms in reqs.items():
            xs = sorted(m[key] for m in ms)
            ax.plot(xs, [(i + 1) / len(xs) for i in range(len(xs))], label=f"{name} (mean {sum(xs)/len(xs):.3g}s)")
        ax.set_xscale("log"); ax.set_xlabel(f"{key} (s)"); ax.set_ylabel("fraction of requests"); ax.grid(alpha=.3); ax.legend(fontsize=8)
        ax.set_title(f"{key}: Poisson arrivals at 0.9 × capacity, {r['policy_setup']['slots']} slots")
    fig.tight_layout(); fig.savefig(os.path.join(here, "engine_gpu.png"), dpi=110)

if __name__ == "__main__":
    matplotlib.use("Agg")
    if sys.argv[1:2] == ["sweep"]:
        src = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "engine_gpu_sweep.json")
        sweep = json.load(open(src))
        plot_sweep(sweep, os.path.splitext(src)[0] + ".png"); print(sweep_table(sweep))
    else: plot_engine()
