"""The FastServe engine beside transformers on one GPU, in the same run.

Llama-architecture model with random bf16 weights in the shape of ../shared/bench/hf_baseline.py (hidden 2048,
16 layers, 32 heads / 8 KV heads, FFN 8192, vocab 128256, tied). Measures: copy bandwidth; batch-1 decode of our
engine (tokens/s and MBU); 256 requests (prompts 64-512 tokens, 256 new tokens) through our engine, transformers'
`generate_batch` and static-batch `generate`; then FCFS vs skip-join MLFQ under Poisson arrivals.

    PYTHONPATH=. python bench/engine_gpu.py            # writes $OUT/engine_gpu.json (or bench/engine_gpu.json)

The policy sweep (`--workload chat`): the chat workload of `05cb_rank` (corpus prompts with tiny's own answer-length
order, answers on a chat law), Poisson arrivals at each of `--rates` × the measured capacity, each batch cap of
`--caps`, policies FCFS, MLFQ + recompute, MLFQ + swap, SRPT (oracle) and rank (the learned ranker); mean and p99
normalized latency and JCT per (cap, rate, policy) and the ratios at saturation, in engine_gpu_sweep.json:

    PYTHONPATH=. python bench/engine_gpu.py --workload chat --rates 0.25,0.5,0.75,1,1.25 --caps 16,64
    PYTHONPATH=. python bench/engine_gpu.py --workload chat --smoke     # CPU, tiny shapes: checks the script (< 3 min)
"""
import json, os, sys, time, random, argparse
import torch, transformers
from transformers import LlamaConfig, LlamaForCausalLM, GenerationConfig

from fastserve_nb.core import Decoder, ModelConfig
from fastserve_nb.serve.engine import LLMEngine
from fastserve_nb.serve.config import EngineConfig, SchedulerConfig
from fastserve_nb.serve.sequence import SamplingParams

ap = argparse.ArgumentParser()
ap.add_argument("--requests", type=int, default=256)
ap.add_argument("--new-tokens", type=int, default=256)
ap.add_argument("--skip-hf", action="store_true")
ap.add_argument("--policy-requests", type=int, default=400)
ap.add_argument("--smoke", action="store_true", help="a small model on the CPU, to check the script itself")
ap.add_argument("--only-policies", action="store_true", help="re-run only the policy comparison, merging into the JSON")
ap.add_argument("--policies", default="fcfs,mlfq,mlfq_recompute,srpt", help="which of the policy runs to make (comma-separated)")
ap.add_argument("--load", type=float, default=0.9, help="arrival rate of the policy runs as a multiple of the measured capacity")
ap.add_argument("--workload", choices=("synthetic", "chat"), default="synthetic", help="chat: the policy sweep (see the docstring)")
ap.add_argument("--rates", default="0.25,0.5,0.75,1,1.25", help="sweep: arrival rates as multiples of the measured capacity")
ap.add_argument("--caps", default="16,64", help="sweep: batch caps (max_num_seqs)")
ap.add_argument("--law", default="alpaca", help="sweep: the chat law of the answer lengths (alpaca | sharegpt)")
ap.add_argument("--sweep-requests", type=int, default=200, help="sweep: requests per (cap, rate, policy)")
ap.add_argument("--sweep-policies", default="fcfs,mlfq-recompute,mlfq-swap,srpt,rank")
ap.add_argument("--merge", action="store_true", help="sweep: keep the other caps already in the output file (one cap per command)")
ap.add_argument("--kv-share", type=float, default=0.5, help="sweep: device KV blocks as a share of the slots at full length (KV pressure below 0.5)")
ap.add_argument("--admission", default=None, help="sweep: the scheduler's admission rule (bounded | greedy; default: the scheduler's)")
ap.add_argument("--tag", default="", help="sweep: written to engine_gpu_sweep<_tag>.json")
args = ap.parse_args()
dev = "cpu" if args.smoke else "cuda"
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
out_dir = os.environ.get("OUT", os.path.dirname(__file__))
prev = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_gpu.json")
res = json.load(open(prev)) if args.only_policies and os.path.exists(prev) else {}
res = {k: v for k, v in res.items() if not k.startswith(("policy", "policies", "mlfq_vs", "swap_vs"))}   # this run's own
res |= {"torch": torch.__version__, "transformers": transformers.__version__, "gpu": torch.cuda.get_device_name() if dev == "cuda" else "cpu (smoke test)",
       "command": "PYTHONPATH=. python bench/engine_gpu.py " + " ".join(sys.argv[1:])}

def run_sweep(model, args, dev, sync, out_dir, res):
    """The policy sweep: per batch cap, measure capacity (FCFS, all requests at once), then serve the same chat workload
    at each rate under each policy; write engine_gpu_sweep.json (or engine_gpu_sweep_smoke.json)."""
    from fastserve_nb.serve.bench import run_workload, summarize
    from functools import partial
    from fastserve_nb.pretrained import load_model
    from fastserve_nb.serve.rank import LengthRanker, hidden_features, replay_workload
    here = os.path.dirname(os.path.abspath(__file__))
    data = json.load(open(os.path.join(here, "rank_tiny.json")))       # written by nbs/05cb_rank.ipynb
    tiny, _ = load_model("tiny", dev)                                  # the ranker reads tiny's hidden state of each prompt
    ranker = LengthRanker.from_dict(data["ranker"], partial(hidden_features, tiny))
    test = data["test"]
    max_len = 64 if args.smoke else 1024
    n = 6 if args.smoke else args.sweep_requests
    caps = [2, 4] if args.smoke else [int(c) for c in args.caps.split(",")]
    loads = [1.0] if args.smoke else [float(r) for r in args.rates.split(",")]
    wl = replay_workload(test["prompts"], test["lengths"], n, seed=0, law=args.law, max_model_len=max_len)
    POL = {"fcfs": ("fcfs", False), "mlfq-recompute": ("mlfq", False), "mlfq-swap": ("mlfq", True),
           "srpt": ("srpt", True), "rank": ("rank", True)}
    names = [p.replace("_", "-") for p in args.sweep_policies.split(",")]
    if unknown := [p for p in names if p not in POL]: sys.exit(f"unknown policies {unknown}; choose from {list(POL)}")
    out = dict(gpu=res["gpu"], torch=res["torch"], command=res["command"], runs={},
               setup=dict(workload="05cb_rank's held-out prompts, tiny's answer-length order carried to a chat law",
                          law=args.law, requests=n, max_model_len=max_len, loads=loads, caps=caps,
                          kv=f"device blocks for {args.kv_share:g} of the slots at full length; host pool 4x the device's",
                          admission=args.admission or SchedulerConfig.admission,
                          ranker_kendall_tau=data.get("kendall_tau")))

    def engine(cap, policy, swap):
        blocks = max(int(cap * max_len // 16 * args.kv_share), max_len // 16 + 8)
        kw = dict(max_model_len=max_len, num_blocks=blocks, num_host_blocks=4 * blocks if swap else 0)   # no host pool: preemption by recompute
        # the rank policy is set on the built scheduler, with the ranker that predicts each job's length
        adm = dict(admission=args.admission) if args.admission else {}
        sched = SchedulerConfig(policy="srpt" if policy == "rank" else policy, max_num_seqs=cap, max_num_batched_tokens=2048, **adm)
        e = LLMEngine(model, None, EngineConfig(scheduler=sched, **kw))
        if policy == "rank":
            e.scheduler.config.policy = "rank"
            e.scheduler.predict_output_len = lambda s: ranker.predict(s.token_ids[:s.num_prompt_tokens])
        return e, blocks

    prev = os.path.join(out_dir, SWEEP_FILE(args))
    if args.merge and os.path.exists(prev):                            # earlier commands' caps, same GPU only
        old = json.load(open(prev))
        if old.get("gpu") == out["gpu"]: out["runs"] = {c: r for c, r in old["runs"].items() if int(c) not in caps}
    for cap in caps:
        e, blocks = engine(cap, "fcfs", False)
        run_workload(e, wl[:cap], rate_scale=1e9)                      # warm-up
        burst = run_workload(e, wl, rate_scale=1e9)
        capacity = n / max(m["e2e"] for m in burst)                    # requests/s this cap sustains
        run = out["runs"][str(cap)] = dict(capacity_req_s=capacity, device_blocks=blocks, points=[])
        del e
        for load in loads:
            point = dict(load=load, rate_req_s=load * capacity, policies={})
            for name in names:
                e, _ = engine(cap, *POL[name])
                s = summarize(run_workload(e, wl, rate_scale=load * capacity))
                point["policies"][name] = dict(mean_normalized_latency=s["normalized_latency"]["mean"],
                    p99_normalized_latency=s["normalized_latency"]["p99"], mean_jct=s["e2e"]["mean"],
                    p99_jct=s["e2e"]["p99"], mean_ttft=s["ttft"]["mean"], iterations=e.num_iterations, **e.counters)
                print(f"cap {cap} load {load} {name:15s} norm {s['normalized_latency']['mean']*1e3:9.2f} ms/tok  "
                      f"JCT {s['e2e']['mean']:8.3f} s  p99 JCT {s['e2e']['p99']:8.3f} s  {e.counters}", flush=True)
                del e; (torch.cuda.empty_cache() if dev == "cuda" else None)
            run["points"].append(point)
            json.dump(out | sweep_ratios(out), open(os.path.join(out_dir, SWEEP_FILE(args)), "w"), indent=1)
    out |= sweep_ratios(out)
    json.dump(out, open(os.path.join(out_dir, SWEEP_FILE(args)), "w"), indent=1)
    print(json.dumps({k: v for k, v in out.items() if k != "runs"}, indent=1))

def SWEEP_FILE(args): return "engine_gpu_sweep_smoke.json" if args.smoke else f"engine_gpu_sweep{'_' + args.tag if args.tag else ''}.json"

def sweep_ratios(out: dict) -> dict:
    """The headline ratios (bigger = the first-named policy better) per cap at its saturation point (the load nearest 1)
    and at its heaviest load, the KV pressure point; the unsuffixed names are those of the smallest cap (FastServe's 16)."""
    r, first = {}, True
    for cap, run in sorted(out["runs"].items(), key=lambda kv: int(kv[0])):    # the smallest cap names the headline
        pts = run["points"]
        sat, heavy = min(pts, key=lambda p: abs(p["load"] - 1)), max(pts, key=lambda p: p["load"])
        def ratio(pt, a, b, key):
            P = pt["policies"]
            return P[b][key] / P[a][key] if a in P and b in P and P[a][key] > 0 else None
        vals = {"mlfq_vs_fcfs_mean_normalized_latency": ratio(sat, "mlfq-swap", "fcfs", "mean_normalized_latency"),
                "mlfq_vs_fcfs_mean_jct": ratio(sat, "mlfq-swap", "fcfs", "mean_jct"),
                "swap_vs_recompute_mean_jct": ratio(heavy, "mlfq-swap", "mlfq-recompute", "mean_jct"),
                "rank_vs_mlfq_mean_jct": ratio(sat, "rank", "mlfq-swap", "mean_jct"),
                "rank_vs_mlfq_mean_normalized_latency": ratio(sat, "rank", "mlfq-swap", "mean_normalized_latency"),
                "mlfq_vs_fcfs_mean_normalized_latency_heaviest": ratio(heavy, "mlfq-swap", "fcfs", "mean_normalized_latency"),
                "mlfq_recompute_vs_fcfs_mean_normalized_latency_heaviest": ratio(heavy, "mlfq-recompute", "fcfs", "mean_normalized_latency")}
        for k, v in vals.items():
            if first: r[k] = v
            r[f"{k}_cap{cap}"] = v
        first = False
    return r

def save():
    json.dump(res, open(os.path.join(out_dir, "engine_gpu.json"), "w"), indent=1)
    print(json.dumps(res, indent=1), flush=True)

x = torch.empty((4 * 1024**3 if dev == "cuda" else 2**26) // 2, dtype=torch.bfloat16, device=dev); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
sync(); t = time.perf_counter()
for _ in range(10): y.copy_(x)
sync(); bw = 10 * 2 * x.numel() * 2 / (time.perf_counter() - t)
res["copy_GBps"] = bw / 1e9; del x, y

shape = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256)
if args.smoke: shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=4096)   # tiny's ids fit
hcfg = LlamaConfig(**shape, max_position_embeddings=4096, tie_word_embeddings=True)
torch.manual_seed(0)
with torch.device(dev):
    hf = LlamaForCausalLM(hcfg).to(torch.bfloat16).eval()
hf.generation_config = GenerationConfig(pad_token_id=0, eos_token_id=None)
cfg = ModelConfig.from_hf(hcfg.to_dict()); cfg.eos_token_id = None
with torch.device(dev):
    ours = Decoder(cfg).to(torch.bfloat16).eval()
ours.load_state_dict(hf.state_dict(), strict=False)
wbytes = sum(p.numel() * p.element_size() for p in ours.parameters())
res["weight_GB"] = wbytes / 1e9
roof = bw / 2 / wbytes
res["b1_roofline_tok_s"] = roof
if args.workload == "chat":
    run_sweep(ours, args, dev, sync, out_dir, res); sys.exit(0)

g = random.Random(1)
reqs = [[g.randrange(100, 1000) for _ in range(g.randint(64, 512))] for _ in range(args.requests)]
params = SamplingParams(max_tokens=args.new_tokens, ignore_eos=True)

def run_ours(tag, compile):
    t0 = time.perf_counter()
    eng = LLMEngine(ours, None, EngineConfig(max_model_len=1024, num_blocks=256 * 1024 // 16 + 64, compile=compile,
                                             scheduler=SchedulerConfig(policy="fcfs", max_num_seqs=256, max_num_batched_tokens=8192)))
    res[f"{tag}_engine_init_s"] = time.perf_counter() - t0
    eng.generate([reqs[0]], SamplingParams(max_tokens=16, ignore_eos=True))
    sync(); t = time.perf_counter()
    c = eng.generate([reqs[0][:128]], params)[0]
    sync(); dt = time.perf_counter() - t
    res[f"{tag}_b1_tok_s"] = len(c.token_ids) / dt
    res[f"{tag}_b1_tpot_ms"] = c.metrics["tpot"] * 1e3
    res[f"{tag}_b1_MBU"] = (1 / c.metrics["tpot"]) / roof
    save()
    eng.generate(reqs[:16], SamplingParams(max_tokens=8, ignore_eos=True))
    eng.timings = dict.fromkeys(eng.timings, 0.0); it0 = eng.num_iterations
    sync(); t = time.perf_counter()
    outs = eng.generate(reqs, params)
    sync(); dt = time.perf_counter() - t
    ntok = sum(len(o.token_ids) for o in outs)
    res[f"{tag}_256req_tok_s"] = ntok / dt; res[f"{tag}_tokens"] = ntok; res[f"{tag}_iterations"] = eng.num_iterations - it0
    res[f"{tag}_256req_s"] = dt; res[f"{tag}_phase_seconds"] = dict(eng.timings)
    save()
    return eng, outs

if args.only_policies:
    from fastserve_nb.core import compile_ops
    compile_ops()
    res["policy_command"] = "PYTHONPATH=. python bench/engine_gpu.py --only-policies"
else:
    eng, outs = run_ours("ours", False)
    del eng
    try:
        eng, _ = run_ours("ours_compiled", True); del eng
    except Exception as e:
        res["ours_compiled_err"] = repr(e)[:800]; save()
    (torch.cuda.empty_cache() if dev == 'cuda' else None)

    # greedy agreement with transformers on a few requests (bf16: near-ties may flip late tokens)
    agree = []
    for r, o in zip(reqs[:4], outs[:4]):
        ref = hf.generate(torch.tensor([r], device=dev), max_new_tokens=32, min_new_tokens=32, do_sample=False)[0, len(r):].tolist()
        agree.append(next((i for i, (a, b) in enumerate(zip(ref, o.token_ids[:32])) if a != b), 32))
    res["greedy_prefix_agreement_of_32"] = agree

    if not args.skip_hf:
        gc = GenerationConfig(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0)
        try:
            hf.generate_batch(inputs=reqs[:8], generation_config=gc)
            sync(); t = time.perf_counter()
            o = hf.generate_batch(inputs=reqs, generation_config=gc)
            sync(); dt = time.perf_counter() - t
            res["hf_generate_batch_tok_s"] = sum(len(r.generated_tokens) for r in o.values()) / dt
        except Exception as e:
            res["hf_generate_batch_err"] = repr(e)[:500]
        best = max(res["ours_256req_tok_s"], res.get("ours_compiled_256req_tok_s", 0))
        res["speedup_vs_generate_batch"] = best / res.get("hf_generate_batch_tok_s", float("nan"))
        save()
        ids = torch.randint(100, 1000, (64, 256), device=dev)
        sync(); t = time.perf_counter()
        hf.generate(ids, max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False)
        sync(); res["hf_static_b64_tok_s"] = 64 * args.new_tokens / (time.perf_counter() - t)
        save()

# --- FCFS vs skip-join MLFQ vs SRPT, Poisson arrivals at ~0.9 of capacity, KV pressure; swap vs recompute ---
from fastserve_nb.serve.bench import make_workload, run_workload, summarize
slots = 16
wl = make_workload(args.policy_requests, seed=0, vocab=(100, 1000), prompt_range=(16, 512), max_output=512, mean_output=64)
kw = dict(max_model_len=1024, num_blocks=slots * 512 // 16)
sched = lambda policy: SchedulerConfig(policy=policy, max_num_seqs=slots, max_num_batched_tokens=2048)
e = LLMEngine(ours, None, EngineConfig(scheduler=sched("fcfs"), **kw))
burst = run_workload(e, wl[:120], rate_scale=1e9)
cap = 120 / max(m["e2e"] for m in burst)                        # requests/s the engine sustains
rate = args.load * cap
res["policy_setup"] = dict(slots=slots, device_blocks=kw["num_blocks"], capacity_req_s=cap, load=args.load, rate_req_s=rate,
                           requests=len(wl), mean_output=64, output="log-normal sigma 1.2, max 512", prompts="16-512")
del e
pol, raw = {}, {}                                             # ratios only between runs of this process
RUNS = {"fcfs": ("fcfs", 0), "mlfq": ("mlfq", 4096), "mlfq_recompute": ("mlfq", 0), "srpt": ("srpt", 4096)}
for name in args.policies.split(","):
    policy, host = RUNS[name]
    e = LLMEngine(ours, None, EngineConfig(num_host_blocks=host, scheduler=sched(policy), **kw))
    if host and dev == "cuda": e.runner.pool.timeline = []   # CUDA events around every swap's copies
    t0 = time.perf_counter()
    raw[name] = run_workload(e, wl, rate_scale=rate)
    pol[name] = summarize(raw[name]); pol[name]["iterations"] = e.num_iterations; pol[name]["counters"] = dict(e.counters)
    if host and dev == "cuda":
        tl = e.runner.pool.timeline
        copy_s = sum(c["start"].elapsed_time(c["end"]) for c in tl) / 1e3
        waited_s = sum(c["start"].elapsed_time(c["end"]) for c in tl if c["waited"]) / 1e3   # copies a batch waited for
        pol[name]["swap_copies"] = dict(swaps=len(tl), copy_s=copy_s, waited_copy_s=waited_s, wall_s=time.perf_counter() - t0,
                                        GB=sum(c["bytes"] for c in tl) / 1e9, GBps=sum(c["bytes"] for c in tl) / 1e9 / max(copy_s, 1e-9))
    res["policies"] = pol; save()
    del e; (torch.cuda.empty_cache() if dev == 'cuda' else None)
json.dump({k: [dict(e2e=m["e2e"], normalized_latency=m["normalized_latency"], ttft=m["ttft"], output_tokens=m["output_tokens"]) for m in v]
           for k, v in raw.items()}, open(os.path.join(out_dir, "engine_gpu_requests.json"), "w"))
P = pol
if not {"fcfs", "mlfq", "mlfq_recompute"} <= set(P): sys.exit(0)              # a ratio needs both of its runs
res["mlfq_vs_fcfs_mean_normalized_latency"] = P["fcfs"]["normalized_latency"]["mean"] / P["mlfq"]["normalized_latency"]["mean"]
res["mlfq_vs_fcfs_mean_jct"] = P["fcfs"]["e2e"]["mean"] / P["mlfq"]["e2e"]["mean"]
res["swap_vs_recompute_mean_jct"] = P["mlfq_recompute"]["e2e"]["mean"] / P["mlfq"]["e2e"]["mean"]
save()
