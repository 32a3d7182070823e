"""Pipeline-parallel serving (05j_pipeline): PP = 1 vs PP = 2 (and 4) on the same requests.

Llama-shaped model with random bf16 weights: `--shape 1b` ~1B parameters (hidden 2048, 16 layers, 32 heads / 8 KV heads,
FFN 8192, vocab 32000, tied); `--shape 8b` ~7B (hidden 4096, 32 layers, 32 / 8 heads, FFN 14336, vocab 32000, tied:
with a random untied head the logits are so flat that bf16 rounding flips near-tied argmaxes, and greedy outputs could
not be compared). Every configuration serves the same requests, all queued at t = 0 (prompts of 64-512 tokens,
`--new-tokens` each, FCFS) through `LLMEngine.generate`, and reports output tokens/s, TTFT and TPOT (mean, p50, p90)
and the engine's time in schedule / execute / update (of the median of `--repeats` runs; every run's tokens/s is kept):

* pp1_graphs — one process, `ModelRunner` with CUDA graphs for decode (the normal engine);
* pp1_eager  — the same without CUDA graphs (what graphs are worth);
* pp1_stage  — the model a stage process would load (saved and reloaded as one stage), run in this process;
* pp1_proc   — one stage process behind `PipelineRunner`: what the process boundary alone costs;
* pp2_m1     — 2 stage processes (GPU 0, GPU 1), one micro-batch per iteration;
* pp2_m2, pp2_m4 — 2 stage processes, the iteration split into 2 (4) micro-batches in flight;
* pp2_m1_d2, pp2_m1_d3 — 2 stage processes, two (three) iterations in flight (`PipelineConfig.depth`), each of
  about half (a third) of the requests; pp2_m2_d2 — two iterations of two micro-batches each;
* pp4_m1, pp4_m1_d4, pp4_m4 — the same over 4 stage processes (GPUs 0-3), added to the default list on a 4-GPU machine.

Stage processes replay CUDA graphs for decode micro-batches (`--stage-eager` turns that off). Every configuration's
greedy tokens are compared with pp1_graphs' (random weights in bf16: near-ties may flip an argmax, so the JSON reports
the fraction of requests whose tokens are identical rather than asserting it).

For the pipelined ones the measured run itself is recorded (CUDA events on each stage's stream: no synchronization
added): the per-stage busy fraction (compute time / span) over the whole run and over its second half (decode only, at
saturation: every request running), and a timeline of six iterations from the middle of the run (pipeline_gpu.png).

    PYTHONPATH=. python bench/pipeline_gpu.py            # 2 or 4 GPUs; writes $OUT (else bench/) pipeline_gpu.json + .png
    PYTHONPATH=. python bench/pipeline_gpu.py --shape 8b # the 7B shape: pipeline_gpu_8b.json + .png
    PYTHONPATH=. python bench/pipeline_gpu.py --smoke    # a tiny shape on the CPU (gloo), to check the script itself
"""
import argparse, json, os, random, statistics, sys, tempfile, time, traceback

import torch

from fastserve_nb.core import Decoder, ModelConfig
from fastserve_nb.serve.engine import LLMEngine
from fastserve_nb.serve.config import EngineConfig, PipelineConfig, SchedulerConfig
from fastserve_nb.serve.sequence import SamplingParams
from fastserve_nb.serve.pipeline import PipelineRunner, busy_fraction
from fastserve_nb.serve.pipeline_stage import StageModel
from fastserve_nb.serve.runner import ModelRunner
from fastserve_nb.parallel.sharding import save_stages, load_stage
from fastserve_nb.parallel.pipeline_parallel import plot_timeline

ap = argparse.ArgumentParser()
ap.add_argument("--requests", type=int, default=256)
ap.add_argument("--shape", choices=("1b", "8b"), default="1b")
ap.add_argument("--repeats", type=int, default=3, help="timed runs per configuration; the median is reported, all are kept")
ap.add_argument("--new-tokens", type=int, default=128)
ap.add_argument("--configs", default=None, help="comma-separated, run in this order (ppK_mM: K stages, M micro-batches)")
ap.add_argument("--smoke", action="store_true", help="a tiny shape on the CPU with gloo, to check the script")
ap.add_argument("--stage-eager", action="store_true", help="stage processes run eagerly (no CUDA graphs)")
args = ap.parse_args()
smoke = args.smoke
if smoke:
    args.requests, args.new_tokens = min(args.requests, 8), min(args.new_tokens, 8)
    torch.set_num_threads(1)         # a shared CPU: more threads than cores is many times slower
if not smoke and torch.cuda.device_count() < 2: sys.exit(f"needs 2 GPUs, found {torch.cuda.device_count()} (use --smoke on a CPU)")
if args.configs is None:
    args.configs = "pp1_graphs," + ("pp4_m1,pp4_m1_d4,pp4_m4," if smoke or torch.cuda.device_count() >= 4 else "") + "pp2_m1,pp2_m1_d2,pp2_m1_d3,pp2_m2_d2,pp1_proc"
out_dir = os.environ.get("OUT", os.path.dirname(os.path.abspath(__file__)))
res = {"command": "PYTHONPATH=. python bench/pipeline_gpu.py " + " ".join(sys.argv[1:]), "torch": torch.__version__,
       "device": "cpu (smoke test)" if smoke else f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}",
       "requests": args.requests, "new_tokens": args.new_tokens, "configs": {}}

stem = "pipeline_gpu" + ("_8b" if args.shape == "8b" else "")

def save():
    json.dump(res, open(os.path.join(out_dir, stem + ".json"), "w"), indent=1)

shape = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=32000)
if args.shape == "8b":
    shape = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=32000)
if smoke: shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)
cfg = ModelConfig(**shape, max_position_embeddings=4096, tie_word_embeddings=True)
torch.manual_seed(0)
t = time.perf_counter()
with torch.device("cpu" if smoke else "cuda:0"):          # random init is slow on a CPU; the values do not matter
    model = Decoder(cfg).to(torch.bfloat16).eval()
model = model.to("cpu")                                     # the pipeline writes its stages from the CPU copy
res["shape"], res["params_B"] = shape, sum(p.numel() for p in model.parameters()) / 1e9
res["model_init_s"] = time.perf_counter() - t

g = random.Random(1)
lo, hi = (8, 24) if smoke else (64, 512)
prompts = [[g.randrange(100, cfg.vocab_size) for _ in range(g.randint(lo, hi))] for _ in range(args.requests)]
params = SamplingParams(max_tokens=args.new_tokens, ignore_eos=True)
max_len = hi + args.new_tokens
engine_kw = dict(scheduler=SchedulerConfig(policy="fcfs", max_num_seqs=args.requests, max_num_batched_tokens=8192), max_model_len=max_len, block_size=16,
                 num_blocks=args.requests * (max_len // 16 + 1) + 16, profile_prefill=False)

def pctl(xs, q): return statistics.quantiles(xs, n=100)[q - 1] if len(xs) > 1 else xs[0]

def summary(outs, wall) -> dict:
    ttft = [c.metrics["ttft"] for c in outs]
    tpot = [c.metrics["tpot"] for c in outs if c.metrics["tpot"] is not None]
    return dict(wall_s=wall, output_tokens=sum(len(c.token_ids) for c in outs), tok_s=sum(len(c.token_ids) for c in outs) / wall,
                ttft_ms=dict(mean=1e3 * statistics.mean(ttft), p50=1e3 * pctl(ttft, 50), p90=1e3 * pctl(ttft, 90)),
                tpot_ms=dict(mean=1e3 * statistics.mean(tpot), p50=1e3 * pctl(tpot, 50), p90=1e3 * pctl(tpot, 90)) if tpot else None)

def make_engine(name):
    "The engine of one configuration (the model moves to where that configuration's engine process needs it)."
    c = EngineConfig(**engine_kw, cuda_graphs=name == "pp1_graphs")
    if name in ("pp1_graphs", "pp1_eager"): return LLMEngine(model.to("cpu" if smoke else "cuda:0"), None, c)
    if name == "pp1_stage":        # a stage's model (saved, reloaded like a stage process does) run in this process
        folder = save_stages(model.to("cpu"), [(0, cfg.num_hidden_layers)], tempfile.mkdtemp())[0]
        stage = StageModel(load_stage(folder, "cpu" if smoke else "cuda:0", model.dtype))
        return LLMEngine(model, None, c, runner=ModelRunner(stage, c.num_blocks, c.block_size, c.num_host_blocks, c.max_model_len,
                                                            cuda_graphs=not args.stage_eager, max_graph_batch=args.requests))
    spec = "1_m1" if name == "pp1_proc" else name.removeprefix("pp")             # ppK_mM[_dD]
    K, M, D = (list(map(int, spec.replace("_m", " ").replace("_d", " ").split())) + [1])[:3]
    c.pipeline = PipelineConfig(depth=D)
    runner = PipelineRunner(model.to("cpu"), K, c.num_blocks, c.block_size, c.num_host_blocks, c.max_model_len, micro_batches=M,
                            devices=["cpu"] * K if smoke else [f"cuda:{k}" for k in range(K)], threads=1 if smoke else 4,
                            cuda_graphs=not args.stage_eager, max_graph_batch=args.requests)
    return LLMEngine(model, None, c, runner=runner)

timelines, reference = {}, None
for name in args.configs.split(","):
    print(f"--- {name}", flush=True)
    r = res["configs"][name] = {}
    eng = None
    try:
        t = time.perf_counter()
        eng = make_engine(name)
        r["init_s"] = time.perf_counter() - t
        eng.generate(prompts, SamplingParams(max_tokens=min(16, args.new_tokens), ignore_eos=True))   # warm up on every prompt shape (Triton JIT, cuBLAS)
        runner, runs = eng.runner, []
        for i in range(args.repeats):                      # the last run is recorded; the median run is reported
            if i == args.repeats - 1 and hasattr(runner, "record"): runner.record(True)
            eng.timings = dict.fromkeys(eng.timings, 0.0); it0 = eng.num_iterations
            t = time.perf_counter()
            outs = eng.generate(prompts, params)
            runs.append((time.perf_counter() - t, outs, dict(eng.timings), eng.num_iterations - it0))
        r["tok_s_runs"] = [sum(len(c.token_ids) for c in o) / w for w, o, _, _ in runs]
        wall, outs, timings, iterations = sorted(runs, key=lambda x: x[0])[len(runs) // 2]
        r |= summary(outs, wall)
        tokens = [c.token_ids for c in outs]                 # in request order
        if name == "pp1_graphs": reference = tokens
        elif reference:
            r["same_tokens_as_pp1_graphs"] = sum(a == b for a, b in zip(tokens, reference)) / len(reference)
            first = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None) for a, b in zip(tokens, reference)]
            r["first_difference_at"] = sorted(i for i in first if i is not None)      # token positions where outputs part
        r["iterations"], r["engine_s"] = iterations, timings
        r["engine_ms_per_iteration"] = {k: 1e3 * v / max(1, iterations) for k, v in timings.items()}
        if hasattr(runner, "record"):                       # the measured run's intervals: busy fractions and the timeline
            ev = runner.events()
            runner.record(False)
            tags = sorted({e.tag for e in ev})
            later = set(tags[len(tags) // 2:])
            r["busy_fraction"] = {str(k): v for k, v in busy_fraction(ev).items()}
            r["busy_fraction_second_half"] = {str(k): v for k, v in busy_fraction([e for e in ev if e.tag in later]).items()}
            r["recorded_iterations"] = len(tags)
            timelines[name] = ev
        print(json.dumps(r, indent=1), flush=True)
    except Exception:
        r["error"] = traceback.format_exc()
        print(r["error"], flush=True)
    finally:
        if eng is not None and hasattr(eng.runner, "shutdown"): eng.runner.shutdown()
        del eng
        if not smoke: torch.cuda.empty_cache()
    save()

if timelines:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(timelines), 1, figsize=(11, 2.4 * len(timelines)), squeeze=False)
    for ax, (name, ev) in zip(axes[:, 0], timelines.items()):
        tags = sorted({e.tag for e in ev})
        mid = tags[len(tags) // 2:len(tags) // 2 + 6]                 # six decode iterations from the middle of the run
        busy = ", ".join(f"stage {k} {v:.0%}" for k, v in busy_fraction(ev).items())
        plot_timeline([e for e in ev if e.tag in mid], ax=ax, title=f"{name}: iterations {mid[0]}-{mid[-1]} (busy over the run: {busy})")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, stem + ".png"), dpi=120)
    res["plot"] = stem + ".png"
save()
print(json.dumps({k: {m: v.get(m) for m in ("tok_s", "ttft_ms", "tpot_ms", "busy_fraction_second_half", "error")} for k, v in res["configs"].items()}, indent=1))
