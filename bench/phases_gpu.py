"""Where the engine's 256-request burst spends its time, on one GPU (the workload of speed_gpu.py, called directly).

    python3 bench/phases_gpu.py            # writes $OUT/phases_gpu.json and $OUT/phases_gpu.txt (or bench/)

(a) `--passes` passes of the burst through one engine (each with its own prompt ids, after a 16-request warm-up):
    output tok/s, TTFT p50 and max (the last prompt's first token: the end of the prompt phase), the engine's phase
    seconds, and the SM clock, power and temperature sampled by nvidia-smi every 50 ms during the pass;
(b) one iteration of 8,192 prompt tokens (32 prompts of 256) under the CUDA profiler: kernels by time;
(c) a 256-wide decode (every request past its prompt) for 4 engine steps under the CUDA profiler: kernels by time.
`--smoke`: a tiny shape on the CPU, to check the script.
"""
import argparse, dataclasses, json, os, subprocess, sys, threading, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "bench"))
from llama1b import write_checkpoint
from fastserve_nb.serve.config import ServeConfig
from fastserve_nb.serve.service import load_engine
from fastserve_nb.serve.sequence import SamplingParams
from fastserve_nb.serve.bench_serve import LengthLaw, make_requests

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true")
ap.add_argument("--passes", type=int, default=4)
args = ap.parse_args()
dev = "cpu" if args.smoke else "cuda"
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
out_dir = Path(os.environ.get("OUT", ROOT / "bench"))
res = {"gpu": torch.cuda.get_device_name() if dev == "cuda" else "cpu (smoke test)", "torch": torch.__version__,
       "command": "python3 bench/phases_gpu.py " + " ".join(sys.argv[1:])}
text = [f"{res['gpu']}, torch {res['torch']}"]
def save():
    (out_dir / ("phases_smoke.json" if args.smoke else "phases_gpu.json")).write_text(json.dumps(res, indent=1))
    (out_dir / ("phases_smoke.txt" if args.smoke else "phases_gpu.txt")).write_text("\n".join(text))
def say(msg): print(msg, flush=True); text.append(msg)

folder, wbytes, V = write_checkpoint(dev, args.smoke, prefix="phases_gpu_")
N, M = (8, 16) if args.smoke else (256, 256)
reqs = make_requests(N, LengthLaw.parse("uniform:8:32" if args.smoke else "uniform:64:512"), LengthLaw.parse(f"fixed:{M}"), V, seed=0)
def fresh(k): return [dataclasses.replace(r, prompt=[(t + k * 7919) % V for t in r.prompt]) for r in reqs]
eng, _, plan = load_engine(ServeConfig(model=str(folder), max_model_len=128 if args.smoke else 1024, **({"num_threads": 1} if args.smoke else {})))
res["num_blocks"] = plan.num_blocks

class GPUSampler:
    "nvidia-smi's SM clock (MHz), power (W) and temperature (C) every 50 ms while it runs."
    def __enter__(self):
        self.rows, self.p = [], None
        if dev != "cuda": return self
        self.p = subprocess.Popen(["nvidia-smi", "--query-gpu=clocks.sm,power.draw,temperature.gpu", "--format=csv,noheader,nounits", "-lms", "50"],
                                  stdout=subprocess.PIPE, text=True)
        threading.Thread(target=lambda: [self.rows.append([float(x) for x in l.split(",")]) for l in self.p.stdout if l.count(",") == 2], daemon=True).start()
        return self
    def __exit__(self, *e):
        if self.p: self.p.terminate(); self.p.wait()
    def summary(self):
        if not self.rows: return {}
        cols = list(zip(*self.rows))
        return {f"{k}_{f.__name__}": f(c) for k, c in zip(("sm_mhz", "power_w", "temp_c"), cols) for f in (min, max)} | {"samples": len(self.rows)}

# ---- (a) passes ----
for p in range(args.passes):
    eng.generate([r.prompt for r in fresh(100 + p)[:16]], SamplingParams(max_tokens=8, ignore_eos=True))
    sync()
    t0s, it0 = dict(eng.timings), eng.num_iterations
    with GPUSampler() as gs:
        t = time.perf_counter()
        outs = eng.generate([r.prompt for r in fresh(p)], SamplingParams(max_tokens=M, ignore_eos=True))
        sync(); dt = time.perf_counter() - t
    ttft = sorted(o.metrics["ttft"] for o in outs)
    ntok = sum(len(o.token_ids) for o in outs)
    row = {"output_tok_s": ntok / dt, "seconds": dt, "ttft_p50_s": ttft[len(ttft) // 2], "ttft_max_s": ttft[-1],
           "after_last_first_token_s": dt - ttft[-1], "iterations": eng.num_iterations - it0,
           **{f"{k}_s": v - t0s.get(k, 0.0) for k, v in eng.timings.items()}, **gs.summary()}
    res[f"pass{p}"] = row
    say(f"pass {p}: {row['output_tok_s']:,.0f} tok/s in {dt:.3f} s; TTFT p50 {row['ttft_p50_s']:.3f} max {row['ttft_max_s']:.3f} s; "
        + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k.endswith("_s") and k.split("_")[0] in eng.timings) + "; "
        + ", ".join(f"{k} {v:.0f}" for k, v in gs.summary().items()))
    save()

# ---- (b), (c): kernels of a prompt iteration and of wide decode steps ----
from torch.profiler import profile, ProfilerActivity
def kernels(tag, fn, steps_of=None):
    with profile(activities=[ProfilerActivity.CUDA if dev == "cuda" else ProfilerActivity.CPU]) as prof:
        t = time.perf_counter(); fn(); sync(); wall = time.perf_counter() - t
    ev = [e for e in prof.events() if e.device_type.name == dev.upper()]
    n = steps_of() if steps_of else 1
    total = sum(e.device_time_total if dev == "cuda" else e.cpu_time for e in ev) / 1e3
    res[tag] = {"wall_ms": 1e3 * wall, "kernel_ms": total, "kernels": len(ev), "steps": n}
    say(f"\n{tag}: {n} step(s), wall {1e3 * wall:.2f} ms (under the profiler), kernel time {total:.2f} ms, {len(ev)} kernels")
    text.append(prof.key_averages().table(sort_by="cuda_time_total" if dev == "cuda" else "cpu_time_total", row_limit=22))
    save()

P = 8 if args.smoke else 256
pre = [[(7 * i + j) % V for j in range(P)] for i in range(32 if not args.smoke else 4)]
eng.generate(pre[:2], SamplingParams(max_tokens=1, ignore_eos=True))
kernels("prompt_iteration_8192", lambda: eng.generate(pre, SamplingParams(max_tokens=1, ignore_eos=True)))

seqs = [eng.add_request(r.prompt, SamplingParams(max_tokens=M, ignore_eos=True)) for r in fresh(9)]
while min(s.num_output_tokens for s in seqs) < 2: eng.step()
it = eng.num_iterations
kernels("wide_decode", lambda: [eng.step() for _ in range(4)], lambda: eng.num_iterations - it)
while eng.has_unfinished(): eng.step()
save()
