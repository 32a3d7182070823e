"""Plots for the engine benchmark: throughput beside transformers, and latency CDFs per scheduling policy.

    python bench/plot_engine.py        # reads bench/engine_gpu.json + engine_gpu_requests.json, writes engine_gpu.png
"""
import json, os
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt

here = os.path.dirname(os.path.abspath(__file__))
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
