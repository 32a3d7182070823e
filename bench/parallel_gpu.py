"""Tensor parallel (TP=2) and pipeline parallel (PP=2) inference against one GPU, NCCL, chapter 02.

A Llama-shaped decoder with random bf16 weights (hidden 2048, 16 layers, 32/8 heads, FFN 8192, vocab 128256, tied:
1.24 B parameters). Two processes, one a GPU, started by `fastserve_nb.parallel.sharding.launch` (NCCL); rank 0 first
measures the whole model alone on its GPU, then both ranks run TP=2, then PP=2 (one stage of 8 layers each).
Eager PyTorch (no CUDA graphs, no torch.compile) for all three, so the comparison is like for like.

    python3 bench/parallel_gpu.py --out bench/parallel_gpu.json            # 2 GPUs
    python3 bench/parallel_gpu.py --device cpu --small --out /tmp/pp.json  # dry run: gloo, a tiny model, CPU

Metrics (medians of timed repeats after warm-up): prefill latency (B=1, T=1024); prefill throughput (B=8 × 1024
tokens; PP: GPipe, 4 micro-batches of 2); decode latency (B=1, ms per token); decode throughput (B=32, tokens/s;
PP: two batches of 16 in flight, so both stages work at once). Correctness: logits of each layout vs one GPU.
"""
import argparse, json, os, statistics, sys, time
from pathlib import Path

for k, v in dict(NCCL_NVLS_ENABLE="0", TORCH_SYMM_MEM_DISABLE_MULTICAST="1", NVSHMEM_DISABLE_NVLS="1").items():
    os.environ[k] = v        # NVLink multicast stays off (shared hosts); children inherit this environment
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
import torch.distributed as dist
from fastserve_nb.core import ModelConfig, Decoder, ContiguousKVCache
from fastserve_nb.parallel.sharding import launch, split_model, layer_wise_bounds
from fastserve_nb.parallel.tensor_parallel import tensor_parallel
from fastserve_nb.parallel.pipeline_parallel import PipeLink, PipelineDriver, stage_worker, gpipe_forward, plot_timeline, bubble_fraction

BIG = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
           num_key_value_heads=8, tie_word_embeddings=True, max_position_embeddings=4096,
           rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
SMALL = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, tie_word_embeddings=True)


def build(cfg: ModelConfig, device, dtype) -> Decoder:
    "The same random weights on every rank (same seed, same device type)."
    torch.manual_seed(0)
    with torch.device(device): model = Decoder(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1: p.normal_(0, 0.02)
    return model.to(dtype).eval()


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize(device)


def timed(f, device, reps, warmup=1) -> float:
    "Median seconds of f() over reps runs after warmup runs."
    for _ in range(warmup): f()
    out = []
    for _ in range(reps):
        sync(device); t = time.perf_counter(); f(); sync(device); out.append(time.perf_counter() - t)
    return statistics.median(out)


def ids_for(cfg, B, T, device, seed=1):
    return torch.randint(0, cfg.vocab_size, (B, T), generator=torch.Generator().manual_seed(seed)).to(device)


@torch.no_grad()
def measure_local(model, cfg, S, device, reps) -> dict:
    "One process holding the model (single GPU, or one TP rank): the four figures."
    dtype = model.dtype
    x1, xb = ids_for(cfg, 1, S["prefill_T"], device), ids_for(cfg, S["prefill_B"], S["prefill_T"], device)
    r = {"prefill_latency_ms": 1e3 * timed(lambda: model(x1), device, reps)}
    r["prefill_tok_s"] = xb.numel() / timed(lambda: model(xb), device, reps)

    def decode_seconds(B):
        "Seconds for S['steps'] greedy steps of B sequences after an (untimed) prefill, with a fresh KV cache."
        P, n = S["prompt"], S["steps"]
        cache = ContiguousKVCache(model.config, B, P + n + 1, device, dtype)
        logits = model(ids_for(cfg, B, P, device), torch.arange(P, device=device).expand(B, P), cache)[:, -1]
        sync(device); t0 = time.perf_counter()
        for t in range(P, P + n):
            logits = model(logits.argmax(-1)[:, None], torch.full((B, 1), t, device=device), cache)[:, -1]
        sync(device)
        return time.perf_counter() - t0

    r["decode_ms_per_token"] = 1e3 * min(decode_seconds(1) for _ in range(3)) / S["steps"]   # best of 3: 1st warms up
    r["decode_tok_s"] = S["decode_B"] * S["steps"] / min(decode_seconds(S["decode_B"]) for _ in range(3))
    return r


@torch.no_grad()
def measure_pp_driver(driver, cfg, S, device, reps) -> dict:
    "Rank 0 of PP=2: latency with one step in flight, throughput with GPipe / two decode batches in flight."
    x1 = ids_for(cfg, 1, S["prefill_T"], device)
    r = {"prefill_latency_ms": 1e3 * timed(lambda: driver.forward(x1), device, reps)}   # last position's logits back
    xb = ids_for(cfg, S["prefill_B"], S["prefill_T"], device)
    mbs = list(xb.split(S["prefill_B"] // S["gpipe_M"]))
    r["prefill_tok_s"] = xb.numel() / timed(lambda: gpipe_forward(driver, mbs, all_positions=False), device, reps)

    def decode_seconds(B, n_batches):
        "Seconds for S['steps'] greedy steps of n_batches batches (B in all) kept in flight, after an untimed prefill."
        P, n, b = S["prompt"], S["steps"], B // n_batches
        for c in range(n_batches): driver.new_cache(c, b, P + n + 1)
        for c in range(n_batches):
            driver.submit(ids_for(cfg, b, P, device, seed=c), torch.arange(P, device=device).expand(b, P), c)
        first = [driver.collect()[:, -1].argmax(-1)[:, None] for c in range(n_batches)]
        sync(device); t0 = time.perf_counter()
        for c in range(n_batches): driver.submit(first[c], torch.full((b, 1), P, device=device), c)
        for t in range(P + 1, P + n):
            for c in range(n_batches):   # collect batch c and send its next token while the other batch is in flight
                nxt = driver.collect()[:, -1].argmax(-1)[:, None]
                driver.submit(nxt, torch.full((b, 1), t, device=device), c)
        for c in range(n_batches): driver.collect()
        sync(device); dt = time.perf_counter() - t0
        for c in range(n_batches): driver.free_cache(c)
        return dt

    r["decode_ms_per_token"] = 1e3 * min(decode_seconds(1, 1) for _ in range(3)) / S["steps"]
    r["decode_tok_s"] = S["decode_B"] * S["steps"] / min(decode_seconds(S["decode_B"], 2) for _ in range(3))
    return r


def compare(logits, ref) -> dict:
    logits, ref = logits.float().cpu(), ref.float().cpu()
    return {"max_rel_err": ((logits - ref).abs().max() / ref.abs().max()).item(),
            "argmax_agree": (logits.argmax(-1) == ref.argmax(-1)).float().mean().item()}


def bench_rank(rank, world, cfg_d, S, dtype_name, reps, partial_path):
    cfg, dtype = ModelConfig(**cfg_d), getattr(torch, dtype_name)
    device = torch.device("cuda", rank) if torch.cuda.is_available() else torch.device("cpu")
    check = ids_for(cfg, 2, 64, device, seed=7)
    out, t_start = {}, time.perf_counter()
    # 1. one GPU, the whole model (rank 1 waits)
    if rank == 0:
        model = build(cfg, device, dtype)
        with torch.no_grad(): ref = model(check).float().cpu()
        out["single"] = measure_local(model, cfg, S, device, reps)
        out["params"] = sum(p.numel() for p in model.parameters())
        if device.type == "cuda": out["single"]["max_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        Path(partial_path).write_text(json.dumps(out, indent=1))     # what is done survives a later failure
        del model
        if device.type == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(device)
    dist.barrier()
    # 2. TP=2
    model = tensor_parallel(build(cfg, device, dtype), rank, world)
    if device.type == "cuda": torch.cuda.empty_cache()
    with torch.no_grad(): tp_logits = model(check)
    tp = measure_local(model, cfg, S, device, reps)
    if device.type == "cuda": tp["max_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    if rank == 0:
        out["tp2"] = tp | compare(tp_logits, ref)
        Path(partial_path).write_text(json.dumps(out, indent=1))
    del model
    if device.type == "cuda": torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(device)
    dist.barrier()
    # 3. PP=2: stage `rank` of a layer-wise split
    full = build(cfg, device, dtype)
    stage = split_model(full, layer_wise_bounds(cfg.num_hidden_layers, cfg.num_hidden_layers // world))[rank]
    del full
    if device.type == "cuda": torch.cuda.empty_cache()
    link = PipeLink(rank, world, device, timeout_s=120)
    if rank == 0:
        driver = PipelineDriver(stage, link)
        pp_logits = driver.forward(check, all_positions=True)
        pp = measure_pp_driver(driver, cfg, S, device, reps)
        driver.stop()
        if device.type == "cuda": pp["max_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
        out["pp2"] = pp | compare(pp_logits, ref)
        Path(partial_path).write_text(json.dumps(out, indent=1))
    else: stage_worker(stage, link)
    # 4. one GPipe prefill with every stage's timeline recorded (synchronising after each micro-batch)
    events = []
    if rank == 0:
        driver = PipelineDriver(stage, link, events)
        xb = ids_for(cfg, S["prefill_B"], S["prefill_T"], device)
        for tag in (-1, -2): gpipe_forward(driver, list(xb.split(S["prefill_B"] // S["gpipe_M"])), tag, False)
        driver.stop()
    else: stage_worker(stage, link, events)
    out["events"] = [tuple(e) for e in events if e.tag == -2]
    out["seconds"] = time.perf_counter() - t_start
    return out


def gpu_checks(backend: str, device_note: str) -> dict:
    "What the notebooks' `#| multigpu` cells assert, on the `tiny` model (or a random one of its shape)."
    import tempfile
    from fastserve_nb.core import generate_ids
    from fastserve_nb.pretrained import tiny_path, from_pretrained, save_pretrained
    from fastserve_nb.parallel.sharding import save_stages
    from fastserve_nb.parallel.tensor_parallel import tp_check
    from fastserve_nb.parallel.pipeline_parallel import pp_check
    tmp = Path(tempfile.mkdtemp())
    model_dir = tiny_path()
    if not (model_dir / "model.safetensors").exists():
        model_dir = tmp / "random"
        save_pretrained(build(ModelConfig(**SMALL | dict(vocab_size=4096, hidden_size=256, intermediate_size=704,
                                                       num_hidden_layers=6, num_attention_heads=8, num_key_value_heads=4)),
                              "cpu", torch.float32), model_dir)
    model = from_pretrained(model_dir)
    L = model.config.num_hidden_layers
    ids = torch.randint(0, model.config.vocab_size, (2, 64), generator=torch.Generator().manual_seed(1))
    prompt = ids[0, :9].tolist()
    with torch.no_grad(): full = model(ids)
    single = generate_ids(model, prompt, 8, eos_ids=[])
    tp = launch(tp_check, 2, str(model_dir), ids, prompt, 8, False, backend=backend, timeout_s=60)
    dirs = [str(p) for p in save_stages(model, layer_wise_bounds(L, L // 2), tmp / "stages")]
    pp = launch(pp_check, 2, dirs, ids, [1, 4], prompt, 8, backend=backend, timeout_s=60)
    ev = [e for r in pp for e in r["events"] if e.tag == -2]
    from fastserve_nb.parallel.pipeline_parallel import bubble_fraction as bf
    return {"model": "tiny" if model_dir == tiny_path() else "random, tiny's shape", "where": device_note,
            "tp_max_abs_err": max((o["logits"] - full).abs().max().item() for o in tp),
            "tp_all_reduces_per_forward": tp[0]["all_reduces"], "tp_greedy_equal": all(o["generated"] == single for o in tp),
            "pp_max_abs_err": (pp[0]["gpipe"][1] - full.repeat(4, 1, 1)).abs().max().item(),
            "pp_torch_gpipe_max_abs_err": (pp[-1]["torch_gpipe"] - full.repeat(2, 1, 1)).abs().max().item(),
            "pp_greedy_equal": pp[0]["generated"] == single, "pp_bubble_M4": bf(ev), "pp_bubble_M4_ideal": 1 / 5}


def plot(res, path):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fastserve_nb.parallel.pipeline_parallel import Event
    modes = [("single", "1 GPU"), ("tp2", "TP=2"), ("pp2", "PP=2")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [1, 1, 1.4]})
    for ax, keys, title in ((axes[0], ("prefill_latency_ms", "decode_ms_per_token"), "latency, B=1 (ms, lower is better)"),
                            (axes[1], ("prefill_tok_s", "decode_tok_s"), "throughput (tokens/s, higher is better)")):
        for j, key in enumerate(keys):
            vals = [res[m][key] for m, _ in modes]
            bars = ax.bar([i + 0.38 * j for i in range(3)], vals, width=0.36, label=key, color=f"C{j}")
            ax.bar_label(bars, [f"{v:.3g}" for v in vals], fontsize=7)
        ax.set_xticks([i + 0.19 for i in range(3)], [n for _, n in modes]); ax.set_title(title, fontsize=10)
        ax.set_yscale("log"); ax.legend(fontsize=7)
    ev = [Event(*e) for e in res["events"]]
    plot_timeline(ev, axes[2], f"PP=2 GPipe prefill, M={res['shapes']['gpipe_M']}: bubble {bubble_fraction(ev):.0%}")
    fig.suptitle(f"{res['model']} on {res['device']}", fontsize=10)
    fig.tight_layout(); fig.savefig(path, dpi=120)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="bench/parallel_gpu.json")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--small", action="store_true", help="a tiny model (dry run)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--skip-checks", action="store_true", help="skip the notebooks' multigpu checks on tiny")
    ap.add_argument("--timeout", type=float, default=150.0, help="seconds the measuring processes may run in all")
    a = ap.parse_args()
    cpu = a.device == "cpu"
    if not cpu and torch.cuda.device_count() < 2: sys.exit(f"needs 2 GPUs, found {torch.cuda.device_count()}")
    S = dict(prefill_T=1024, prefill_B=8, gpipe_M=4, prompt=128, steps=64, decode_B=32)
    if a.small: S = dict(prefill_T=64, prefill_B=8, gpipe_M=4, prompt=16, steps=8, decode_B=8)
    cfg = SMALL if a.small else BIG
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    ranks = launch(bench_rank, 2, cfg, S, "float32" if cpu else "bfloat16", a.reps, str(out.with_suffix(".partial.json")),
                   backend="gloo" if cpu else "nccl", timeout_s=a.timeout, op_timeout_s=120, threads=1 if cpu else 4)
    bench_s = time.perf_counter() - t
    checks = None
    if not a.skip_checks:   # after the measurements, so a failure here cannot cost them
        try: checks = gpu_checks("gloo" if cpu else "nccl", "CPU, gloo" if cpu else "2 GPUs, NCCL")
        except Exception as e: checks = {"error": f"{type(e).__name__}: {e}"[:2000]}
        print("checks", checks, flush=True)
    res = {k: v for k, v in ranks[0].items()}
    res["events"] = ranks[0]["events"] + ranks[1]["events"]
    res["rank1_seconds"] = ranks[1]["seconds"]
    res.update(checks=checks, shapes=S, config=cfg, wall_s=bench_s, torch=torch.__version__,
               device="CPU (gloo)" if cpu else f"2x {torch.cuda.get_device_name(0)} (NCCL {'.'.join(map(str, torch.cuda.nccl.version()))})",
               model=f"Llama-shaped {'tiny' if a.small else '1.2B'} random {'fp32' if cpu else 'bf16'}",
               command=" ".join(["python3"] + sys.argv))
    for m in ("tp2", "pp2"):
        res[m]["decode_speedup"] = res[m]["decode_tok_s"] / res["single"]["decode_tok_s"]
        res[m]["prefill_speedup"] = res[m]["prefill_tok_s"] / res["single"]["prefill_tok_s"]
        res[m]["decode_latency_ratio"] = res[m]["decode_ms_per_token"] / res["single"]["decode_ms_per_token"]
    out.write_text(json.dumps(res, indent=1))
    out.with_suffix(".partial.json").unlink(missing_ok=True)
    plot(res, out.with_suffix(".png"))
    for m in ("single", "tp2", "pp2"):
        print(m, {k: round(v, 4) if isinstance(v, float) else v for k, v in res[m].items()})
    print(f"wrote {out} and {out.with_suffix('.png')} in {res['wall_s']:.0f}s")


if __name__ == "__main__":
    main()
