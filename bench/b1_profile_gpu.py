"""Kernels of one batch-1 decode step of the Llama-1B shape (bf16, compiled, CUDA graph), by the CUDA profiler.

    python3 bench/b1_profile_gpu.py > $OUT/b1_profile_gpu.txt     # committed as bench/b1_profile_gpu.txt

Ten replays of the batch-1 graph: kernels per step and each kernel's total time, largest first; first with each
projection its own product (`fuse=False`), then with Q/K/V and gate/up fused (`fuse_projections`, the default), and
the graph's time per step for both (64 replays back to back). `--fused-only`: the second alone. `--context N`: the
row attends to N cached tokens (default 512). `--num-blocks B`: a KV pool of B blocks of 16 tokens (default 64, 1 MiB
each); `--spread`: the row's blocks drawn at random from the whole pool, as in a server's pool, instead of blocks 0...
"""
import argparse, sys, time
from pathlib import Path
import torch
from torch.profiler import profile, ProfilerActivity
from fastserve_nb.core import Decoder, ModelConfig
from fastserve_nb.serve.runner import ModelRunner
sys.path.insert(0, str(Path(__file__).resolve().parent))
from llama1b import LLAMA_1B

ap = argparse.ArgumentParser()
ap.add_argument("--fused-only", action="store_true")
ap.add_argument("--context", type=int, default=512)
ap.add_argument("--num-blocks", type=int, default=64)
ap.add_argument("--spread", action="store_true")
args = ap.parse_args()
hf = dict(model_type="llama", architectures=["LlamaForCausalLM"], max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, hidden_act="silu", **LLAMA_1B)
cfg = ModelConfig.from_hf(hf)
print(torch.cuda.get_device_name(), torch.__version__, f"context {args.context}, pool {args.num_blocks} blocks" + (", blocks spread over the pool" if args.spread else ""))
for fuse in ((True,) if args.fused_only else (False, True)):
    torch.manual_seed(0)
    with torch.device("cuda"): m = Decoder(cfg).to(torch.bfloat16).eval()
    r = ModelRunner(m, args.num_blocks, 16, 0, 1024, True, max_graph_batch=1, compile=True, fuse=fuse)
    g, io, n = r.graphs[1][0], r.graph_io, args.context
    nb = -(-n // 16)
    io["bt"][0, :nb] = torch.randperm(args.num_blocks)[:nb] if args.spread else torch.arange(nb)   # one row with n cached tokens
    io["lens"][0] = n
    io["pos"][0, 0] = n - 1; io["slots"][0, 0], io["slots"][1, 0] = io["bt"][0, (n - 1) // 16], (n - 1) % 16
    for _ in range(5): g.replay()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(64): g.replay()
    torch.cuda.synchronize(); ms = 1e3 * (time.perf_counter() - t) / 64
    with profile(activities=[ProfilerActivity.CUDA]) as p:
        for _ in range(10): g.replay()
        torch.cuda.synchronize()
    ev = [e for e in p.events() if e.device_type.name == "CUDA"]
    print(f"\nfuse={fuse}: kernels per step {len(ev) / 10:.0f}, kernel time {sum(e.device_time_total for e in ev) / 10 / 1e3:.3f} ms, graph replay {ms:.3f} ms per step")
    print(p.key_averages().table(sort_by="cuda_time_total", row_limit=25))
    del r, m, g; torch.cuda.empty_cache()
