"""Decode steps per scheduling step on the CPU with `tiny`: the engine's tok/s and its host time per token for
`decode_steps` 1, 2, 4, 8 and 16, at batch 1 and batch 8, same run (the settings take turns, repeat by repeat).

    python bench/decode_steps_cpu.py            # writes bench/decode_steps_cpu.json

On the CPU the model's own time is not hidden (the host computes it), so what falls with more steps is only the work
around it: scheduling, building the batch's tensors, the per-step update. On a GPU that work overlaps the device's
(`bench/speed_gpu.py` measures it there).
"""
import json, os, platform, statistics, time
import torch

from fastserve_nb.pretrained import load_model
from fastserve_nb.serve.engine import LLMEngine
from fastserve_nb.serve.config import EngineConfig
from fastserve_nb.serve.scheduler_config import SchedulerConfig
from fastserve_nb.serve.sequence import SamplingParams

torch.set_num_threads(int(os.environ.get("FASTSERVE_BENCH_THREADS", "1")))    # one thread: steady figures on a shared machine
model, tok = load_model("tiny")
prompts = ["Return a new list", "The dictionary", "Raise an error if", "class Foo:\n    def", "Open the file and return a stream",
           "A tuple is", "import os\nos.path.", "Return True if the object"]
STEPS, NEW, REPEATS = (1, 2, 4, 8, 16), 96, 5
engines = {k: LLMEngine(model, tok, EngineConfig(max_model_len=256, block_size=16, profile_prefill=False, decode_steps=k,
                                                 scheduler=SchedulerConfig(policy="fcfs", max_num_seqs=8))) for k in STEPS}

def run(eng, batch):
    "Seconds and engine phase seconds for `batch` greedy requests of NEW tokens each."
    t0s, it0 = dict(eng.timings), eng.num_iterations
    t = time.perf_counter()
    outs = eng.generate(prompts[:batch], SamplingParams(max_tokens=NEW, ignore_eos=True))
    dt = time.perf_counter() - t
    assert all(len(o.token_ids) == NEW for o in outs)
    return dt, {k: v - t0s[k] for k, v in eng.timings.items()}, [o.token_ids for o in outs]

res = {"command": "python bench/decode_steps_cpu.py", "torch": torch.__version__,
       "device": f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} thread(s))",
       "model": "tiny", "new_tokens": NEW, "repeats": REPEATS, "statistic": "median over repeats, settings alternating"}
for batch in (1, 8):
    times = {k: [] for k in STEPS}
    phases = {k: [] for k in STEPS}
    ref = None
    for r in range(REPEATS + 1):
        for k in STEPS:
            dt, ph, toks = run(engines[k], batch)
            ref = ref or toks
            assert toks == ref, f"decode_steps={k} changed the tokens"           # greedy: the same tokens whatever k
            if r: times[k].append(dt); phases[k].append(ph)                    # the first repeat warms up
    ntok = batch * NEW
    rows = {}
    for k in STEPS:
        i = times[k].index(statistics.median(times[k]))
        ph = phases[k][i]
        rows[k] = {"tok_s": ntok / times[k][i], "ms_per_token": 1e3 * times[k][i] / ntok,
                   "schedule_ms_per_token": 1e3 * ph["schedule"] / ntok, "update_ms_per_token": 1e3 * ph["update"] / ntok,
                   "execute_ms_per_token": 1e3 * ph["execute"] / ntok}
        rows[k]["speedup_vs_1"] = rows[k]["tok_s"] / rows[1]["tok_s"] if k != 1 else 1.0
        print(f"batch {batch}, decode_steps {k:2d}: {rows[k]['tok_s']:7.0f} tok/s ({rows[k]['speedup_vs_1']:.2f}x), per token: "
              f"schedule {rows[k]['schedule_ms_per_token']:.3f} ms, execute {rows[k]['execute_ms_per_token']:.3f} ms, update {rows[k]['update_ms_per_token']:.3f} ms")
    res[f"batch{batch}"] = rows
json.dump(res, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "decode_steps_cpu.json"), "w"), indent=1)
