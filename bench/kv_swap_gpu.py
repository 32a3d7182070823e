"""KV swap on one GPU: pinned host <-> device bandwidth, then `KVPool.swap` (blocks contiguous across layers, one
async copy per run of consecutive blocks into pinned memory) beside the layer-major gather-and-copy it replaced, in
the same run; then greedy outputs under swap pressure against an engine that never swaps.

Model shape: the Llama-1B shape of bench/engine_gpu.py (16 layers, 8 KV heads of 64, bf16; block of 16 tokens =
512 KiB for all layers, K and V).

    PYTHONPATH=. python bench/kv_swap_gpu.py        # writes $OUT/kv_swap_gpu.json (or bench/kv_swap_gpu.json)
"""
import json, os, random, sys, time

import torch

from fastserve_nb.core import Decoder, ModelConfig
from fastserve_nb.serve.engine import LLMEngine
from fastserve_nb.serve.config import EngineConfig, SchedulerConfig
from fastserve_nb.serve.runner import KVPool
from fastserve_nb.serve.sequence import SamplingParams

dev = "cuda"
out_dir = os.environ.get("OUT", os.path.dirname(os.path.abspath(__file__)))
res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "command": "PYTHONPATH=. python bench/kv_swap_gpu.py"}


def wall(fn, reps: int = 7) -> float:
    "Median seconds of fn() until the GPU is done, CPU overhead included (what the engine loop pays)."
    fn(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
    return sorted(ts)[reps // 2]


# --- 1. what the link can do: one 1 GiB pinned <-> device copy each way ---
n = 2**30
host, buf = torch.empty(n, dtype=torch.uint8, pin_memory=True), torch.empty(n, dtype=torch.uint8, device=dev)
res["pinned_h2d_GBps"] = n / wall(lambda: buf.copy_(host, non_blocking=True)) / 1e9
res["pinned_d2h_GBps"] = n / wall(lambda: host.copy_(buf, non_blocking=True)) / 1e9
del host, buf

# --- 2. KVPool.swap, block-major (now) vs layer-major gather (before), same blocks ---
cfg = ModelConfig(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                  num_key_value_heads=8, vocab_size=128256)
B, N, NH = 16, 2048, 1024
pool = KVPool(cfg, N, B, NH, dev, torch.bfloat16)
block_bytes = pool.kv[0].nbytes
res["block_bytes"] = block_bytes


class LayerMajorPool:
    "The layout and swap this project used before: (L, N+1, B, h_kv, d_k) for K and for V; gather, copy, scatter."
    def __init__(self):
        shape = lambda m: (cfg.num_hidden_layers, m, B, cfg.num_key_value_heads, cfg.head_dim)
        self.k = torch.zeros(shape(N + 1), device=dev, dtype=torch.bfloat16); self.v = torch.zeros_like(self.k)
        self.host_k = torch.zeros(shape(NH), dtype=torch.bfloat16, pin_memory=True)
        self.host_v = torch.zeros_like(self.host_k, pin_memory=True)
        self.stream = torch.cuda.Stream()

    def swap(self, swap_out, swap_in):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            if swap_out:
                d, h = (torch.tensor(x) for x in zip(*swap_out))
                for src, dst in ((self.k, self.host_k), (self.v, self.host_v)):
                    dst[:, h] = src[:, d.to(src.device)].to("cpu", non_blocking=True)
            if swap_in:
                h, d = (torch.tensor(x) for x in zip(*swap_in))
                for src, dst in ((self.host_k, self.k), (self.host_v, self.v)):
                    dst[:, d.to(dst.device)] = src[:, h].to(dst.device, non_blocking=True)
        torch.cuda.current_stream().wait_stream(self.stream)


old = LayerMajorPool()
g = random.Random(0)
rows = []
for blocks in (32, 256):                                       # one 512-token sequence; eight of them
    for pattern in ("consecutive", "scattered"):
        if pattern == "consecutive": d_ids, h_ids = list(range(100, 100 + blocks)), list(range(blocks))
        else: d_ids, h_ids = g.sample(range(N), blocks), g.sample(range(NH), blocks)
        out_pairs, in_pairs = list(zip(d_ids, h_ids)), list(zip(h_ids, d_ids))
        gb = blocks * block_bytes / 1e9
        row = {"blocks": blocks, "pattern": pattern, "MB": gb * 1e3}
        for name, p in (("block_major", pool), ("layer_major_before", old)):
            row[f"{name}_out_GBps"] = gb / wall(lambda: p.swap(out_pairs, []))
            row[f"{name}_in_GBps"] = gb / wall(lambda: p.swap([], in_pairs))
        row["out_vs_pinned"] = row["block_major_out_GBps"] / res["pinned_d2h_GBps"]
        row["in_vs_pinned"] = row["block_major_in_GBps"] / res["pinned_h2d_GBps"]
        rows.append(row); print(row, flush=True)
res["swap"] = rows
del old

# a round trip returns the same bytes
pool.kv[:64].normal_(); before = pool.kv[:64].clone()
pool.swap([(i, 63 - i) for i in range(64)], []); torch.cuda.synchronize()
pool.kv[:64].zero_()
pool.swap([], [(63 - i, 200 + i) for i in range(64)]); torch.cuda.synchronize()
res["round_trip_identical"] = bool(torch.equal(pool.kv[200:264], before))
del pool, before; torch.cuda.empty_cache()

# --- 3. greedy tokens under swap pressure equal those of an engine with room for everything ---
small = ModelConfig(hidden_size=512, intermediate_size=1536, num_hidden_layers=4, num_attention_heads=8,
                    num_key_value_heads=4, vocab_size=1000)
small.eos_token_id = None
torch.manual_seed(0)
model = Decoder(small).to(dev, torch.bfloat16).eval()
prompts = [[g.randrange(5, 1000) for _ in range(g.randrange(20, 200))] for _ in range(48)]
params = SamplingParams(max_tokens=96, temperature=0.0)
roomy = LLMEngine(model, None, EngineConfig(max_model_len=512, scheduler=SchedulerConfig(policy="fcfs", max_num_seqs=48)))
ref = [c.token_ids for c in roomy.generate(prompts, params)]
del roomy
tight = LLMEngine(model, None, EngineConfig(max_model_len=512, num_blocks=160, num_host_blocks=1024, scheduler=SchedulerConfig(policy="mlfq", max_num_seqs=48)))
tight.runner.pool.timeline = []
t0 = time.perf_counter()
got = [c.token_ids for c in tight.generate(prompts, params)]
torch.cuda.synchronize(); wall_s = time.perf_counter() - t0
tl = tight.runner.pool.timeline
copy_ms = sum(c["start"].elapsed_time(c["end"]) for c in tl)
waited_ms = sum(c["start"].elapsed_time(c["end"]) for c in tl if c["waited"])   # copies a batch had to wait for
res["pressure"] = {"requests": len(prompts), "identical_greedy_tokens": got == ref, "counters": dict(tight.counters),
                   "iterations": tight.num_iterations, "wall_s": wall_s, "swaps": len(tl), "copy_s": copy_ms / 1e3,
                   "copy_fraction_of_wall": copy_ms / 1e3 / wall_s, "swaps_waited_for": sum(c["waited"] for c in tl),
                   "waited_copy_s": waited_ms / 1e3, "waited_copy_fraction_of_wall": waited_ms / 1e3 / wall_s,
                   "copied_GB": sum(c["bytes"] for c in tl) / 1e9}
print(res["pressure"], flush=True)
json.dump(res, open(os.path.join(out_dir, "kv_swap_gpu.json"), "w"), indent=1)
print(json.dumps(res, indent=1))
