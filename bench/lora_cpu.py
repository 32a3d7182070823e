"""Several LoRA adapters in one batch (05dc_lora) on the CPU with the embedded tiny model: output tokens per second
of the same workload served by the base model, by one adapter merged into the weights, by one adapter from the bank,
and by four adapters mixed in every batch. A CPU figure (one torch thread): it shows the relative cost of the
per-token update, not GPU throughput.

    python bench/lora_cpu.py          # writes bench/lora_cpu.json
"""
import copy, json, os, platform, time
import torch

from fastserve_nb.pretrained import load_model
from fastserve_nb.finetune.lora import ALL_LINEAR, add_adapter, get_adapter, merge_adapter, set_adapter
from fastserve_nb.serve.engine import LLMEngine
from fastserve_nb.serve.config import EngineConfig, SchedulerConfig
from fastserve_nb.serve.sequence import SamplingParams
from fastserve_nb.serve.lora import enable_lora

here = os.path.dirname(os.path.abspath(__file__))
torch.set_num_threads(int(os.environ.get("FASTSERVE_BENCH_THREADS", "1")))
R, N_REQ, OUT, REPEATS = 16, 32, 32, 5
model, tok = load_model("tiny", "cpu")

def random_adapter(seed):
    m = copy.deepcopy(model)
    add_adapter(m, "a", r=R, alpha=2 * R, target_modules=ALL_LINEAR)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_" in n: p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return get_adapter(m, "a")

ads = {f"ad{i}": random_adapter(i) for i in range(1, 5)}
g = torch.Generator().manual_seed(0)
prompts = [torch.randint(3, model.config.vocab_size, (int(n),), generator=g).tolist() for n in torch.randint(32, 96, (N_REQ,), generator=g)]
cfg = lambda: EngineConfig(max_model_len=256, block_size=16, profile_prefill=False, enable_prefix_caching=False,
                           scheduler=SchedulerConfig(max_num_seqs=N_REQ, max_num_batched_tokens=1024))

def engine(m, bank=None):
    eng = LLMEngine(m, tok, cfg())
    if bank: enable_lora(eng, bank)
    return eng

merged = copy.deepcopy(model); add_adapter(merged, "ad1", ads["ad1"]); set_adapter(merged, "ad1"); merge_adapter(merged)
runs = {"base_model": (engine(model), [None]),                                  # each engine its own model: hooks of one bank only
        "one_adapter_merged": (engine(merged), [None]),
        "bank_of_4_base_requests": (engine(copy.deepcopy(model), ads), [None]),
        "bank_of_4_one_adapter": (engine(copy.deepcopy(model), ads), ["ad1"]),
        "bank_of_4_four_adapters_mixed": (engine(copy.deepcopy(model), ads), list(ads))}
times = {k: [] for k in runs}
for _ in range(REPEATS):                                                        # interleaved, so a busy moment hits every setting
    for k, (eng, names) in runs.items():
        ps = [SamplingParams(max_tokens=OUT, ignore_eos=True, lora_name=names[i % len(names)]) for i in range(N_REQ)]
        t0 = time.perf_counter(); eng.generate(prompts, ps); times[k].append(time.perf_counter() - t0)
res = {"command": "python bench/lora_cpu.py", "device": f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
       "torch": torch.__version__, "model": "tiny", "label": "CPU benchmark: relative cost only, not a GPU figure",
       "workload": f"{N_REQ} requests at once, prompts of 32-95 tokens, {OUT} output tokens each, no prefix cache; adapters of rank {R} on every linear layer",
       "statistic": f"best of {REPEATS} interleaved runs (the machine is shared)",
       **{k: {"seconds_best": min(t), "seconds_all": t, "output_tok_s": N_REQ * OUT / min(t)} for k, t in times.items()}}
base = res["base_model"]["output_tok_s"]
res["relative_to_base"] = {k: v["output_tok_s"] / base for k, v in res.items() if isinstance(v, dict) and "output_tok_s" in v}
res["noise_note"] = ("base_model and one_adapter_merged compute the same thing (a merged adapter costs nothing per token): the gap "
                     f"between them ({abs(1 - res['relative_to_base']['one_adapter_merged']):.0%}) is this shared machine's noise")
res["load_average_1min"] = os.getloadavg()[0]
json.dump(res, open(os.path.join(here, "lora_cpu.json"), "w"), indent=1)
print(json.dumps(res["relative_to_base"], indent=1))
