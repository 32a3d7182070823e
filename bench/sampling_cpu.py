"""One sampling step for a batch of 64 rows over a 32,000-token vocabulary: per row (`sample_each`) vs batched (`sample_batch`), same run.

    python bench/sampling_cpu.py                 # writes bench/sampling_cpu.json
    python bench/sampling_cpu.py --device cuda   # writes $OUT/sampling_gpu.json (or bench/sampling_gpu.json)
"""
import argparse, json, os, platform, random, statistics, time
import torch

from fastserve_nb.serve.sampling import sample_each, sample_batch
from fastserve_nb.serve.sequence import SamplingParams

ap = argparse.ArgumentParser(); ap.add_argument("--device", default="cpu"); args = ap.parse_args()
gpu = args.device.startswith("cuda")
here = os.environ.get("OUT", os.path.dirname(os.path.abspath(__file__))) if gpu else os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(0); random.seed(0)
torch.set_num_threads(int(os.environ.get("FASTSERVE_BENCH_THREADS", "1")))   # one thread: steady figures on a shared machine
B, V, steps = 64, 32_000, 20

class Row:   # what both samplers read of a sequence
    def __init__(self, i):
        kw = dict(temperature=random.choice([0.6, 0.8, 1.0]), top_k=random.choice([0, 50]), top_p=random.choice([1.0, 0.9]),
                  seed=i if i % 2 else None)                                 # half the rows seeded
        if i % 4 == 0: kw.update(presence_penalty=0.5, frequency_penalty=0.2, repetition_penalty=1.1)
        if i % 8 == 1: kw.update(logit_bias={random.randrange(V): 5.0 for _ in range(10)}, min_p=0.05)
        self.sampling_params, self.generator = SamplingParams(max_tokens=1024, **kw), None
        self.prompt_token_ids = [random.randrange(V) for _ in range(512)]
        self.output_token_ids = [random.randrange(V) for _ in range(128)]

def per_step_ms(fns, logits, rows):
    "Median ms per step of each sampler, the samplers taking turns step by step so a busy machine slows both alike."
    times = [[] for _ in fns]
    for step in range(steps + 1):
        for f, t in zip(fns, times):
            t0 = time.perf_counter(); f(logits, rows, [2]); t.append(time.perf_counter() - t0)
    return [statistics.median(t[1:]) * 1e3 for t in times]                    # the first step warms up

rows, logits = [Row(i) for i in range(B)], (torch.randn(B, V) * 3).to(args.device)
res = {"command": "python bench/sampling_cpu.py" + (f" --device {args.device}" if gpu else ""),
       "device": torch.cuda.get_device_name() if gpu else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))",
       "torch": torch.__version__, "rows": B, "vocab": V, "steps": steps, "statistic": "median over the steps (each ends with the tokens on the host), the two samplers alternating",
       "rows_mix": "all sampled; half seeded; a quarter with presence/frequency/repetition penalties; an eighth with logit_bias and min_p; top_k in {0, 50}, top_p in {1, 0.9}; prompts of 512 and outputs of 128 tokens"}
res["per_row_ms"], res["batched_ms"] = per_step_ms([sample_each, sample_batch], logits, rows)
res["speedup"] = res["per_row_ms"] / res["batched_ms"]
json.dump(res, open(os.path.join(here, f"sampling_{'gpu' if gpu else 'cpu'}.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
