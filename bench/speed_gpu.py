"""The speed users get, in one run on one GPU: the read-bandwidth roofline, the engine called directly, and the same
requests through `fastserve serve` with its default flags over HTTP.

A Llama-1B-shaped random bf16 checkpoint (hidden 2048, 16 layers, 32 heads / 8 KV heads, FFN 8192, vocab 128256,
tied; no EOS) with a word-level tokenizer of the same vocabulary is written to a temporary folder. Then:

(a) read bandwidth: a sum over a 4 GiB tensor (a read-only kernel); batch-1 roofline = read_bw / weight bytes;
(b) the engine called directly (`service.load_engine`, the server's own configuration) on 256 requests (prompts
    uniform 64-512 random ids, 256 new tokens, ignore_eos): compile off, then the default (compiled, CUDA graphs,
    on a GPU batches of up to 256 requests and 8,192 tokens, 8 decode steps per scheduling step while all decode),
    its second pass on new prompts (`engine_default_2`: what a first pass pays once, on a machine whose compiled-kernel
    caches are cold, shows as the difference), 256 one-token requests (`engine_prefill_only_s`),
    then a 256-wide batch named as such (max_num_seqs 256, max_num_batched_tokens 8192; `--skip-wide` leaves it out);
(c) the same 256 requests through `fastserve serve --model DIR --max-model-len 1024` (default flags otherwise) with
    the HTTP benchmark client (`fastserve_nb.serve.bench_serve`), streamed and not, each twice (`http_stream`,
    `http_stream_2`: the spread from one burst to the next; `http_vs_engine` uses the first). Every pass sends the
    same lengths with its own token ids (`fresh`): a pass that repeated earlier prompts would find them in the prefix
    cache and skip their prefill. `http_intake`: 256 one-token requests at once, beside `engine_prefill_only_s`: how
    long the server takes to take in a burst; `--http-floor` sends that burst to bench/echo_server.py (no model) too.
    `--client-procs K` sends a streamed burst and the intake burst again from K client processes at once
    (`http_stream_mp`, `http_intake_mp`, `http_vs_engine_mp`): one Python client is CPU-bound at ~3 ms per request.
    Around each pass the worker's phase seconds are read from /metrics;
(d) batch-1 decode tok/s through the engine and through HTTP streaming; MBU = weight bytes x tok/s / read_bw; the
    engine's batch-1 decode again with 1, 2, 4, 8 and 16 decode steps per scheduling step, and the batch-1 CUDA graph
    replayed back to back (the GPU's own time per step: what the host adds is the difference);
(e) `--generate-batch`: transformers' `generate_batch` (its defaults, greedy) on the same requests' lengths with
    their own ids, from the same checkpoint, after the engine is freed: `engine_vs_generate_batch`.

Writes $OUT/speed_gpu.json (or bench/speed_gpu.json) with the GPU's name, `http_vs_engine` (HTTP streamed output
tok/s / engine direct with the server's configuration, same run; from the first `--client-procs` burst when given, as
one Python client process spends ~6 ms of CPU per request while it sends a burst and then limits what is measured:
`http_vs_engine_one_client` keeps that figure) and `read_bw_mbu` (engine batch-1). About 5 minutes
on an H100. `--smoke` runs a tiny shape on the CPU to check the script end to end.

The GPU image lacks the server's web stack: carry these wheels (Python 3.12, manylinux x86-64) in .whl/:
fastapi starlette pydantic pydantic-core typing-inspection annotated-types uvicorn opentelemetry-api
importlib-metadata prometheus-client (httpx, anyio, h11, click, annotated-doc, typing-extensions are already there). Run:

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
      && export PYTHONPATH=/tmp/site:. && python3 bench/speed_gpu.py
"""
import argparse, asyncio, dataclasses, gc, json, os, subprocess, sys, threading, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from llama1b import write_checkpoint
from fastserve_nb.serve.config import ServeConfig
from fastserve_nb.serve.service import load_engine, launch
from fastserve_nb.serve.sequence import SamplingParams
from fastserve_nb.serve.bench_serve import LengthLaw, make_requests, run_benchmark

ap = argparse.ArgumentParser()
ap.add_argument("--smoke", action="store_true", help="a tiny shape on the CPU, to check the script itself")
ap.add_argument("--requests", type=int, default=256)
ap.add_argument("--new-tokens", type=int, default=256)
ap.add_argument("--skip-wide", action="store_true", help="leave out the engine with a 256-wide batch")
ap.add_argument("--skip-eager", action="store_true", help="leave out the engine without torch.compile (no compile_speedup)")
ap.add_argument("--profile-wide", action="store_true", help="profile the 256-wide decode: host functions (cProfile) and kernels (CUDA profiler)")
ap.add_argument("--compare-overlap", action="store_true", help="also run the engine with overlap off (each run applied before the next is queued) "
                "and with overlap_ahead off (queued once its tokens are read), burst and batch 1")
ap.add_argument("--profile-b1", action="store_true", help="one batch-1 request under cProfile (host functions) and the CUDA profiler (GPU busy vs wall per token)")
ap.add_argument("--profile-api", action="store_true", help="one more streamed burst with the API process under cProfile (api_profile_gpu.txt)")
ap.add_argument("--generate-batch", action="store_true", help="also run transformers' generate_batch on the same requests (same lengths, own ids)")
ap.add_argument("--http-floor", action="store_true", help="also send the intake burst to bench/echo_server.py (no model): the client and web stack alone")
ap.add_argument("--client-procs", type=int, nargs="+", default=[], help="also send a streamed burst and the intake burst from this many client processes at once; "
                "several counts: one pair of bursts each (keys `*_mp` for the first, `*_mp<K>` for the others)")
ap.add_argument("--http-steps1", action="store_true", help="also serve with --decode-steps 1 (streamed), to separate decode steps from HTTP")
args = ap.parse_args()
smoke = args.smoke
dev = "cpu" if smoke else "cuda"
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
T0 = time.perf_counter()
out_dir = Path(os.environ.get("OUT", ROOT / "bench"))
res = {"gpu": torch.cuda.get_device_name() if dev == "cuda" else "cpu (smoke test)", "torch": torch.__version__,
       "command": "python3 bench/speed_gpu.py " + " ".join(sys.argv[1:])}

def say(msg): print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)

def save():
    res["elapsed_s"] = time.perf_counter() - T0
    (out_dir / ("speed_smoke.json" if smoke else "speed_gpu.json")).write_text(json.dumps(res, indent=1))

# ---- (a) read bandwidth: a read-only kernel over 4 GiB ----
x = torch.ones((4 * 1024**3 if not smoke else 64 * 1024**2) // 4, dtype=torch.float32, device=dev)
for _ in range(3): x.sum()
sync(); t = time.perf_counter()
for _ in range(20): x.sum()
sync(); read_bw = 20 * x.numel() * 4 / (time.perf_counter() - t)
del x
res["read_GBps"] = read_bw / 1e9
say(f"read bandwidth {read_bw / 1e9:.0f} GB/s")

# ---- the checkpoint: random bf16 weights, a word-level tokenizer of the same vocabulary, no EOS (bench/llama1b.py) ----
folder, wbytes, V = write_checkpoint(dev, smoke, prefix="speed_gpu_")
res["weight_GB"], res["b1_roofline_tok_s"] = wbytes / 1e9, read_bw / wbytes
gc.collect()
say(f"checkpoint {wbytes / 1e9:.2f} GB in {folder}; batch-1 roofline {read_bw / wbytes:.0f} tok/s")
save()

# ---- the workload, shared by the engine and the HTTP runs ----
N, M = args.requests if not smoke else 8, args.new_tokens if not smoke else 16
inlaw_s = "uniform:64:512" if not smoke else "uniform:8:32"; inlaw = LengthLaw.parse(inlaw_s)
max_len = 1024 if not smoke else 128
reqs = make_requests(N, inlaw, LengthLaw.parse(f"fixed:{M}"), V, seed=0)
def fresh(k: int):
    "The workload with every token id shifted: the same lengths, prompts no earlier pass has put in a prefix cache."
    return [dataclasses.replace(r, prompt=[(t + k * 7919) % V for t in r.prompt]) for r in reqs]
b1 = make_requests(3, LengthLaw.parse("fixed:128" if not smoke else "fixed:16"), LengthLaw.parse(f"fixed:{M}"), V, seed=1)
res["workload"] = {"requests": N, "prompt_len": inlaw_s, "new_tokens": M, "ignore_eos": True, "prompt_tokens": sum(r.prompt_len for r in reqs)}
extra = dict(num_threads=1) if smoke else {}

# ---- (b) the engine called directly, with the server's configuration (compile off first: compiling is process-wide) ----
def engine_run(tag, eng=None, pass_no=0, **over):
    "The 256 requests through an engine built with the server's configuration (or through `eng` again, with `fresh(pass_no)` prompts)."
    if eng is None:
        t = time.perf_counter()
        eng, _, plan = load_engine(ServeConfig(model=str(folder), max_model_len=max_len, **extra, **over))
        res[f"{tag}_startup_s"] = time.perf_counter() - t
        say(f"{tag}: engine built in {res[f'{tag}_startup_s']:.1f} s ({plan.num_blocks} KV blocks, max_num_seqs {eng.config.scheduler.max_num_seqs}, "
            f"compile {eng.config.compile}, CUDA graphs {eng.config.cuda_graphs})")
    eng.generate([r.prompt for r in fresh(100 + pass_no)[:16]], SamplingParams(max_tokens=8, ignore_eos=True))     # warm-up
    sync(); t = time.perf_counter()
    done = threading.Event()
    def progress():                                                # where a slow run spends its time
        while not done.wait(20):
            s = eng.scheduler
            say(f"{tag}: iteration {eng.num_iterations}, running {s.num_running}, waiting {s.num_waiting}, swapped {s.num_swapped}")
    threading.Thread(target=progress, daemon=True).start()
    it0, t0s, c0 = eng.num_iterations, dict(eng.timings), dict(eng.counters)
    outs = eng.generate([r.prompt for r in fresh(pass_no)], SamplingParams(max_tokens=M, ignore_eos=True))
    sync(); dt = time.perf_counter() - t; done.set()
    ntok, iters = sum(len(o.token_ids) for o in outs), eng.num_iterations - it0
    per_iter = {f"{k}_ms_per_iteration": 1e3 * (v - t0s.get(k, 0.0)) / max(iters, 1) for k, v in eng.timings.items()}
    res[tag] = {"output_tok_s": ntok / dt, "total_tok_s": (ntok + res["workload"]["prompt_tokens"]) / dt, "seconds": dt,
                "output_tokens": ntok, "iterations": iters, "ttft_p50_ms": 1e3 * sorted(o.metrics["ttft"] for o in outs)[len(outs) // 2],
                "recomputed": eng.counters["preempted"] - c0.get("preempted", 0), **per_iter}
    say(f"{tag}: per iteration " + ", ".join(f"{k.split('_ms')[0]} {v:.2f} ms" for k, v in per_iter.items()) + f"; {res[tag]['recomputed']} recomputed")
    say(f"{tag}: {N} requests, {ntok / dt:,.0f} output tok/s in {dt:.2f} s")
    save()
    return eng

def b1_engine(eng, tag):
    tpots = []
    for r in b1:
        c = eng.generate([r.prompt], SamplingParams(max_tokens=M, ignore_eos=True))[0]
        tpots.append(c.metrics["tpot"])
    tok_s = 1 / sorted(tpots)[1]                                   # the median of three
    res[tag] = {"tok_s": tok_s, "tpot_ms": 1e3 / tok_s, "mbu": wbytes * tok_s / read_bw, "decode_steps": eng.config.decode_steps}
    say(f"{tag}: batch-1 decode {tok_s:,.0f} tok/s, MBU {res[tag]['mbu']:.1%} of read bandwidth (decode_steps {eng.config.decode_steps})")
    save()

def b1_gpu_time(eng, n=64):
    "GPU time of one batch-1 decode step: n replays of the batch-1 graph back to back (no host work between them)."
    r = eng.runner
    if not r.graphs: return None
    g = r.graphs[1][0]
    for _ in range(3): g.replay()
    sync(); t = time.perf_counter()
    for _ in range(n): g.replay()
    sync()
    return 1e3 * (time.perf_counter() - t) / n

def b1_sweep(eng):
    "Batch-1 decode with 1, 2, 4, 8 and 16 decode steps per scheduling step, and the GPU's own time per step."
    default = eng.config.decode_steps
    for k in (1, 2, 4, 8, 16):
        eng.config.decode_steps = k
        b1_engine(eng, f"engine_b1_steps{k}")
    eng.config.decode_steps = default
    gpu_ms = b1_gpu_time(eng)
    if gpu_ms:
        res["b1_gpu_ms_per_step"] = gpu_ms
        res["b1_gpu_mbu"] = wbytes / (gpu_ms / 1e3) / read_bw
        for k in (1, 8): res[f"engine_b1_steps{k}"]["host_ms_per_token"] = res[f"engine_b1_steps{k}"]["tpot_ms"] - gpu_ms   # time the GPU waits for the host
        say(f"batch-1 graph replay alone: {gpu_ms:.3f} ms per step (MBU {res['b1_gpu_mbu']:.1%})")
        save()

def profile_wide(eng, steps=4):
    """Where a 256-wide decode step spends its time: all requests admitted and decoding, then `steps` engine steps under
    cProfile (host functions) and again under the CUDA profiler (kernels). Written to profile_wide_gpu.txt."""
    import cProfile, io, pstats
    from torch.profiler import profile, ProfilerActivity
    seqs = [eng.add_request(r.prompt, SamplingParams(max_tokens=M, ignore_eos=True)) for r in fresh(9)]
    while min(s.num_output_tokens for s in seqs) < 2: eng.step()
    lines = [f"{res['gpu']} {torch.__version__}: {len(seqs)} sequences decoding, context {min(s.num_tokens for s in seqs)}-{max(s.num_tokens for s in seqs)}"]
    it, t0s = eng.num_iterations, dict(eng.timings)
    pr = cProfile.Profile(); pr.enable()
    for _ in range(steps): eng.step()
    sync(); pr.disable()
    n = eng.num_iterations - it
    lines.append(f"{steps} engine steps = {n} decode steps; per decode step: " + ", ".join(f"{k} {1e3 * (v - t0s.get(k, 0)) / n:.2f} ms" for k, v in eng.timings.items()))
    buf = io.StringIO(); pstats.Stats(pr, stream=buf).sort_stats("tottime").print_stats(30); lines.append(buf.getvalue())
    it = eng.num_iterations
    with profile(activities=[ProfilerActivity.CUDA if dev == "cuda" else ProfilerActivity.CPU]) as p:
        for _ in range(steps): eng.step()
        sync()
    n = eng.num_iterations - it
    ev = [e for e in p.events() if e.device_type.name == dev.upper()]
    lines.append(f"CUDA: {len(ev) / n:.0f} kernels and {sum(e.device_time_total if dev == 'cuda' else e.cpu_time for e in ev) / n / 1e3:.2f} ms of kernel time per decode step")
    lines.append(p.key_averages().table(sort_by="cuda_time_total", row_limit=25))
    while eng.has_unfinished(): eng.step()
    (out_dir / "profile_wide_gpu.txt").write_text("\n".join(lines))
    say(lines[1])

def profile_b1(eng):
    """Where a batch-1 decode token's time goes through the engine: one request (128-token prompt, M new tokens) under
    cProfile (host functions, by total and by cumulative time), then again under the CUDA profiler: the GPU's kernel
    time per token beside the wall time per token (the difference is the GPU waiting for the host). profile_b1_gpu.txt."""
    import cProfile, io, pstats
    from torch.profiler import profile, ProfilerActivity
    sp, prompt = SamplingParams(max_tokens=M, ignore_eos=True), b1[0].prompt
    eng.generate([prompt], sp); sync()
    pr = cProfile.Profile(); t = time.perf_counter(); pr.enable()
    eng.generate([prompt], sp); sync()
    pr.disable(); wall = time.perf_counter() - t
    lines = [f"{res['gpu']} {torch.__version__}: one request, 128-token prompt, {M} new tokens, decode_steps {eng.config.decode_steps}",
             f"under cProfile: {1e3 * wall / M:.3f} ms per token (wall)"]
    for key in ("tottime", "cumulative"):
        buf = io.StringIO(); pstats.Stats(pr, stream=buf).sort_stats(key).print_stats(25); lines.append(buf.getvalue())
    with profile(activities=[ProfilerActivity.CUDA if dev == "cuda" else ProfilerActivity.CPU]) as p:
        t = time.perf_counter(); eng.generate([prompt], sp); sync(); wall = time.perf_counter() - t
    ev = [e for e in p.events() if e.device_type.name == dev.upper()]
    busy = sum(e.device_time_total if dev == "cuda" else e.cpu_time for e in ev) / 1e3
    lines.insert(2, f"under the CUDA profiler: wall {1e3 * wall / M:.3f} ms per token, kernel time {busy / M:.3f} ms per token, {len(ev) / M:.0f} kernels per token")
    lines.append(p.key_averages().table(sort_by="cuda_time_total", row_limit=25))
    (out_dir / "profile_b1_gpu.txt").write_text("\n".join(lines))
    say(lines[2])

def free(eng):
    del eng; gc.collect()
    if dev == "cuda": torch.cuda.empty_cache()

if not args.skip_eager: free(engine_run("engine_no_compile", compile="off"))
eng = engine_run("engine_default")
if args.compare_overlap:        # the same engine with each run of decode steps applied before the next is queued,
    eng.config.overlap = False  # then queued once its tokens are read but before they are applied (overlap_ahead off)
    engine_run("engine_no_overlap", eng, pass_no=1)
    eng.config.overlap, eng.config.overlap_ahead = True, False
    engine_run("engine_overlap_after", eng, pass_no=2)
    b1_engine(eng, "engine_b1_overlap_after")
    eng.config.overlap_ahead = True
    res["overlap_speedup"] = res["engine_default"]["output_tok_s"] / res["engine_no_overlap"]["output_tok_s"]
engine_run("engine_default_2", eng, pass_no=10)   # a second pass, new prompts: what the first pass paid once (kernels compiled for new shapes, allocations)
t = time.perf_counter()                           # prompts only: 256 prefills and one token each, the engine's side of `http_intake`
eng.generate([r.prompt for r in fresh(12)], SamplingParams(max_tokens=1, ignore_eos=True)); sync()
res["engine_prefill_only_s"] = time.perf_counter() - t
if args.profile_wide: profile_wide(eng)
b1_engine(eng, "engine_b1")
b1_sweep(eng)
if args.profile_b1: profile_b1(eng)
free(eng)
if args.generate_batch:    # the peer on the same 256 requests, same checkpoint, same GPU, in this run
    from transformers import AutoModelForCausalLM, GenerationConfig
    hf_model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).to(dev).eval()
    gc_ = GenerationConfig(max_new_tokens=M, do_sample=False, eos_token_id=None, pad_token_id=0)
    from fastserve_nb.serve.bench import _cache_for                  # on the CPU (--smoke) a cache sized to the requests
    hf_model.generate_batch(inputs=[r.prompt for r in fresh(200)[:16]], generation_config=gc_, progress_bar=False, **_cache_for(hf_model, fresh(200)[:16], M))
    sync(); t = time.perf_counter()
    o = hf_model.generate_batch(inputs=[r.prompt for r in fresh(8)], generation_config=gc_, progress_bar=False, **_cache_for(hf_model, reqs, M))
    sync(); dt = time.perf_counter() - t
    ntok = sum(len(x.generated_tokens) for x in o.values())
    res["generate_batch"] = {"output_tok_s": ntok / dt, "seconds": dt, "output_tokens": ntok, "transformers": __import__("transformers").__version__}
    res["engine_vs_generate_batch"] = res["engine_default"]["output_tok_s"] / res["generate_batch"]["output_tok_s"]
    say(f"transformers generate_batch: {ntok / dt:,.0f} output tok/s; the engine {res['engine_vs_generate_batch']:.1f}x")
    save()
    del hf_model, o; free(None)
if not args.skip_wide: free(engine_run("engine_default_wide", max_num_seqs=256 if not smoke else 16, max_num_batched_tokens=8192 if not smoke else 512))

# ---- (c) and (d): the same requests through `fastserve serve` with its default flags ----
flags = ["--model", str(folder), "--max-model-len", str(max_len)] + (["--num-threads", "1"] if smoke else [])
t = time.perf_counter()
proc, url = launch(*flags, timeout=600, command=[sys.executable, "-m", "fastserve_nb.serve.service"])
res["server_startup_s"] = time.perf_counter() - t
res["server_flags"] = flags
log_lines = []
threading.Thread(target=lambda: [log_lines.append(l.rstrip()) for l in proc.stdout], daemon=True).start()   # keep the pipe drained
say(f"server healthy at {url} in {res['server_startup_s']:.1f} s")
def run_procs(base: str, model: str, reqs, stream: bool, procs: int):
    "The burst from `procs` client processes that start together (`run_benchmark(processes=...)`); (summary, the clients' CPU seconds)."
    c0 = time.process_time(); ch0 = os.times()
    s, _ = asyncio.run(run_benchmark(base, model, reqs, stream=stream, ignore_eos=True, warmup=0, processes=procs))
    ch1 = os.times()
    return s, (ch1.children_user + ch1.children_system) - (ch0.children_user + ch0.children_system)
def worker_seconds():
    "The worker's cumulative phase seconds and iterations, from the server's /metrics (05g_resources' `engine_stats`)."
    import urllib.request
    from prometheus_client.parser import text_string_to_metric_families
    time.sleep(0.3)                                                # the worker's gauges come every 0.25 s, and when it goes idle
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r: text = r.read().decode()
    return {f.name.split(":")[-1]: f.samples[0].value for f in text_string_to_metric_families(text)
            if f.name.split(":")[-1].startswith("engine_") and f.samples}
def api_cpu():
    "The API process's CPU seconds so far (user + system, from /proc)."
    f = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
def since(w0, a0):
    "The worker's phase seconds and iterations, and the API process's CPU seconds, since the scrape `w0` and the reading `a0`."
    w1 = worker_seconds()
    return {"worker": {n: w1[n] - w0.get(n, 0.0) for n in w1}, "api_cpu_s": api_cpu() - a0}

try:
    for k, (key, stream) in enumerate((("http_stream", True), ("http_no_stream", False), ("http_stream_2", True), ("http_no_stream_2", False))):   # each twice: the spread
        c0, w0, a0 = time.process_time(), worker_seconds(), api_cpu()
        s, _ = asyncio.run(run_benchmark(url, str(folder), fresh(2 + k), stream=stream, ignore_eos=True, warmup=2))
        res[key] = dict(s, client_cpu_s=time.process_time() - c0, **since(w0, a0))   # the client's own CPU time; the worker's phases (with the warm-up's few iterations), the API's CPU
        say(f"HTTP {'streamed' if stream else 'not streamed'}: {s['output_throughput']:,.0f} output tok/s, "
            f"TTFT p50 {s['median_ttft_ms'] or float('nan'):.0f} ms, failed {s['failed']}")
        save()
    intake = [dataclasses.replace(r, max_tokens=1) for r in fresh(12)]          # how fast the server takes in a burst: one token each
    c0, w0, a0 = time.process_time(), worker_seconds(), api_cpu()
    s, _ = asyncio.run(run_benchmark(url, str(folder), intake, stream=False, ignore_eos=True, warmup=2))
    res["http_intake"] = {"seconds": s["duration_s"], "engine_prefill_only_s": res["engine_prefill_only_s"], "client_cpu_s": time.process_time() - c0,
                          **since(w0, a0), "summary": s}
    say(f"HTTP intake: {N} one-token requests in {s['duration_s']:.2f} s (the engine alone: {res['engine_prefill_only_s']:.2f} s)")
    for j, K in enumerate(args.client_procs):     # the same bursts from several client processes: the server, not one client's CPU, sets the pace
        sfx = "" if j == 0 else str(K)
        w0, a0 = worker_seconds(), api_cpu()
        s, cpu = run_procs(url, str(folder), fresh(13 + 20 * j), True, K)
        res["http_stream_mp" + sfx] = dict(s, client_procs=K, client_cpu_s=cpu, **since(w0, a0))
        say(f"HTTP streamed, {K} client processes: {s['output_throughput']:,.0f} output tok/s, TTFT p50 {s['median_ttft_ms']:.0f} ms, TPOT p50 {s['median_tpot_ms']:.2f} ms")
        w0, a0 = worker_seconds(), api_cpu()
        s, cpu = run_procs(url, str(folder), [dataclasses.replace(r, max_tokens=1) for r in fresh(14 + 20 * j)], False, K)
        res["http_intake_mp" + sfx] = {"seconds": s["duration_s"], "client_procs": K, "client_cpu_s": cpu, **since(w0, a0), "summary": s}
        say(f"HTTP intake, {K} client processes: {N} one-token requests in {s['duration_s']:.2f} s")
        save()
    s, _ = asyncio.run(run_benchmark(url, str(folder), b1, stream=True, ignore_eos=True, max_concurrency=1, warmup=1))
    tok_s = 1e3 / s["median_tpot_ms"]
    res["http_b1"] = {"tok_s": tok_s, "tpot_ms": s["median_tpot_ms"], "mbu": wbytes * tok_s / read_bw, "summary": s}
    say(f"HTTP batch-1 streamed decode {tok_s:,.0f} tok/s")
finally:
    proc.terminate()
    try: proc.wait(60)
    except subprocess.TimeoutExpired: proc.kill()
res["server_log"] = [l for l in log_lines if "engine" in l or "compiled" in l or "built in" in l or "warmed" in l][:10]

if args.http_floor:    # the same intake burst to a server with no model: what the client and the web stack take alone
    import socket, urllib.request
    with socket.socket() as sk: sk.bind(("127.0.0.1", 0)); port = sk.getsockname()[1]
    echo = subprocess.Popen([sys.executable, str(ROOT / "bench" / "echo_server.py"), str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1); break
            except OSError: time.sleep(0.2)
        c0 = time.process_time()
        s, _ = asyncio.run(run_benchmark(f"http://127.0.0.1:{port}", "echo", intake, stream=False, warmup=2))
        res["http_floor"] = {"seconds": s["duration_s"], "client_cpu_s": time.process_time() - c0, "summary": s}
        for j, K in enumerate(args.client_procs):
            s, cpu = run_procs(f"http://127.0.0.1:{port}", "echo", intake, False, K)
            res["http_floor_mp" + ("" if j == 0 else str(K))] = {"seconds": s["duration_s"], "client_procs": K, "client_cpu_s": cpu, "summary": s}
            say(f"HTTP floor (no model), {K} client processes: {s['duration_s']:.2f} s")
        say(f"HTTP floor (no model): {N} one-token requests in {s['duration_s']:.2f} s, client CPU {res['http_floor']['client_cpu_s']:.2f} s")
        save()
    finally: echo.terminate(); echo.wait(30)

if args.http_steps1:    # the same streamed run with one decode step per scheduling step
    proc, url = launch(*flags, "--decode-steps", "1", timeout=600, command=[sys.executable, "-m", "fastserve_nb.serve.service"])
    threading.Thread(target=lambda: [_ for _ in proc.stdout], daemon=True).start()
    try:
        s, _ = asyncio.run(run_benchmark(url, str(folder), fresh(6), stream=True, ignore_eos=True, warmup=2))
        res["http_stream_steps1"] = s
        say(f"HTTP streamed, --decode-steps 1: {s['output_throughput']:,.0f} output tok/s, TTFT p50 {s['median_ttft_ms']:.0f} ms, TPOT p50 {s['median_tpot_ms']:.1f} ms")
        save()
    finally:
        proc.terminate()
        try: proc.wait(60)
        except subprocess.TimeoutExpired: proc.kill()

eng_out = res["engine_default"]["output_tok_s"]
res["http_vs_engine_one_client"] = res["http_stream"]["output_throughput"] / eng_out   # one Python client process: CPU-bound while it sends
res["http_vs_engine_no_stream"] = res["http_no_stream"]["output_throughput"] / eng_out
res["http_vs_engine_2"] = res["http_stream_2"]["output_throughput"] / eng_out          # the second burst (its own prompts)
res["http_vs_engine_warm"] = res["http_stream_2"]["output_throughput"] / res["engine_default_2"]["output_tok_s"]   # second pass beside second pass
if "generate_batch" in res: res["http_vs_generate_batch"] = res["http_stream"]["output_throughput"] / res["generate_batch"]["output_tok_s"]
for j, K in enumerate(args.client_procs):
    sfx = "" if j == 0 else str(K)
    res["http_vs_engine_mp" + sfx] = res["http_stream_mp" + sfx]["output_throughput"] / eng_out
    res["http_vs_engine_mp_warm" + sfx] = res["http_stream_mp" + sfx]["output_throughput"] / res["engine_default_2"]["output_tok_s"]
res["http_vs_engine"] = res.get("http_vs_engine_mp", res["http_vs_engine_one_client"])   # the server's figure: a client that keeps up
res["read_bw_mbu"] = res["engine_b1"]["mbu"]
if args.compare_overlap:        # beside the second pass (both warm) and the batch-1 runs after it
    res["overlap_ahead_speedup"] = res["engine_default_2"]["output_tok_s"] / res["engine_overlap_after"]["output_tok_s"]
    res["overlap_ahead_speedup_b1"] = res["engine_b1"]["tok_s"] / res["engine_b1_overlap_after"]["tok_s"]
res["read_bw_mbu_http"] = res["http_b1"]["mbu"]
if not args.skip_eager: res["compile_speedup"] = eng_out / res["engine_no_compile"]["output_tok_s"]
save()
say(f"{res['gpu']}: http_vs_engine {res['http_vs_engine']:.2f} (one client process {res['http_vs_engine_one_client']:.2f}, not streamed {res['http_vs_engine_no_stream']:.2f}), "
    f"read_bw_mbu {res['read_bw_mbu']:.1%} (HTTP {res['read_bw_mbu_http']:.1%}), compiled/eager {res.get('compile_speedup', float('nan')):.2f}x")

if args.profile_api:    # where the API process spends its time during one streamed burst (cProfile slows it: not a speed figure)
    import pstats, signal
    prof = out_dir / "api_profile_gpu.prof"
    proc, url = launch(*flags, timeout=600, command=[sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "fastserve_nb.serve.service"])
    threading.Thread(target=lambda: [_ for _ in proc.stdout], daemon=True).start()
    try:
        s, _ = asyncio.run(run_benchmark(url, str(folder), fresh(7), stream=True, ignore_eos=True, warmup=2))
        say(f"HTTP streamed, API under cProfile: {s['output_throughput']:,.0f} output tok/s")
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try: proc.wait(60)
        except subprocess.TimeoutExpired: proc.kill()
    if prof.exists():
        import io
        buf = io.StringIO(); pstats.Stats(str(prof), stream=buf).sort_stats("tottime").print_stats(40)
        (out_dir / "api_profile_gpu.txt").write_text(f"{res['gpu']}: the API process during one streamed burst of {N} requests\n" + buf.getvalue())
        prof.unlink()
