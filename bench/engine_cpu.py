"""The engine on the CPU with the embedded tiny model, beside transformers in the same run, and FCFS vs MLFQ vs SRPT.

    python bench/engine_cpu.py          # writes bench/engine_cpu.json and bench/engine_cpu_cdf.png
    FASTSERVE_BENCH_REPEATS=3           # runs of the policy comparison (default 3)
"""
import json, os, sys, time, platform, statistics
import torch
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
from transformers import AutoModelForCausalLM

from fastserve_nb.pretrained import load_model, tiny_path
from fastserve_nb.serve.config import EngineConfig, SchedulerConfig
from fastserve_nb.serve.bench import make_workload, compare_with_transformers, compare_policies, summarize, plot_cdfs

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0)
torch.set_num_threads(int(os.environ.get("FASTSERVE_BENCH_THREADS", "1")))   # one thread: steady figures on a shared machine
res = {"command": "python bench/engine_cpu.py", "device": f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
       "torch": torch.__version__}
model, tok = load_model("tiny", "cpu")
hf = AutoModelForCausalLM.from_pretrained(tiny_path(), dtype=torch.float32).eval()

# 64 requests of mixed prompt and output lengths, all at once
reqs = make_workload(64, seed=3, vocab=(10, 4000), prompt_range=(8, 192), mean_output=48, max_output=192)
with torch.inference_mode(): r = compare_with_transformers(model, hf, reqs)
res["throughput_64_requests"] = {k: v for k, v in r.items() if k.endswith("tok_s")}
res["throughput_64_requests"]["note"] = "tok_s counts tokens the requests asked for; generated_tok_s every token a peer computed (each runs all rows to the longest output)"
res["throughput_64_requests"]["identical_greedy_outputs_vs_generate_batch"] = sum(a == b for a, b in zip(r["ours_outputs"], r["generate_batch_outputs"]))
res["throughput_64_requests"]["speedup_vs_generate_batch"] = r["ours_tok_s"] / r["generate_batch_tok_s"]
res["throughput_64_requests"]["speedup_vs_static_generate"] = r["ours_tok_s"] / r["static_generate_tok_s"]
print(json.dumps(res, indent=1), flush=True)

# policies at saturation: all 120 requests arrive at once, 16 run at a time, KV for 16 full sequences on the device
wl = make_workload(120, seed=5, vocab=(10, 4000), prompt_range=(8, 128), mean_output=32, max_output=256)
cfg = EngineConfig(max_model_len=512, num_blocks=16 * 512 // 16, num_host_blocks=1024, scheduler=SchedulerConfig(max_num_seqs=16, max_num_batched_tokens=512))
# timings on a shared machine vary from run to run: every policy runs REPEATS times, in turn; the figures are each
# repeat's, the headline ratios their medians, and `policies` (and the plot) the repeat whose MLFQ/FCFS ratio is the median
REPEATS = int(os.environ.get("FASTSERVE_BENCH_REPEATS", "3"))
reps = [compare_policies(model, wl, rate_scale=1e6, config=cfg) for _ in range(REPEATS)]
summ = [{p: summarize(ms) for p, ms in r.items()} for r in reps]
ratio = lambda P, k: P["fcfs"][k]["mean"] / P["mlfq"][k]["mean"]
res["policy_repeats"] = [{p: {k: P[p][k]["mean"] for k in ("ttft", "normalized_latency", "e2e")} for p in P} for P in summ]
res["mlfq_vs_fcfs"] = {"mean_normalized_latency": statistics.median(ratio(P, "normalized_latency") for P in summ),
                       "mean_jct": statistics.median(ratio(P, "e2e") for P in summ),
                       "each_repeat": [{"mean_normalized_latency": ratio(P, "normalized_latency"), "mean_jct": ratio(P, "e2e")} for P in summ]}
mid = sorted(range(REPEATS), key=lambda i: ratio(summ[i], "normalized_latency"))[REPEATS // 2]
runs, res["policies"], res["policies_repeat"] = reps[mid], summ[mid], mid
fig, axs = plt.subplots(1, 2, figsize=(10, 3.6))
plot_cdfs(runs, "e2e", axs[0]); plot_cdfs(runs, "normalized_latency", axs[1])
fig.suptitle("tiny on CPU: 120 requests at once, 16 slots"); fig.tight_layout()
fig.savefig(os.path.join(here, "engine_cpu_cdf.png"), dpi=120)
json.dump(res, open(os.path.join(here, "engine_cpu.json"), "w"), indent=1)
print(json.dumps({k: v for k, v in res.items() if k != "policies"}, indent=1))
