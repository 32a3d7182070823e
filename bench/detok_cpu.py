"""Incremental detokenization of one 256-wide decode step on the CPU: through transformers' `decode` vs the engine's
`decoder` (the Rust tokenizer directly), same run, the two taking turns step by step. `tiny`'s tokenizer.

    python bench/detok_cpu.py            # writes bench/detok_cpu.json
"""
import json, os, platform, random, statistics, time
from fastserve_nb.pretrained import load_model
from fastserve_nb.serve.engine import detokenize_incrementally, decoder
from fastserve_nb.serve.sequence import Sequence, SamplingParams

_, tok = load_model("tiny")
rng, B, STEPS = random.Random(0), 256, 40
ways = {"transformers_decode": lambda ids: tok.decode(ids, skip_special_tokens=True), "decoder": decoder(tok)}
seqs = {w: [Sequence([1] * 100, SamplingParams(max_tokens=512), seq_id=i) for i in range(B)] for w in ways}
times = {w: [] for w in ways}
for step in range(STEPS + 1):
    new = [rng.randrange(tok.vocab_size) for _ in range(B)]
    for w, decode in ways.items():
        t = time.perf_counter()
        for s, x in zip(seqs[w], new): s.token_ids.append(x); detokenize_incrementally(tok, s, decode)
        if step: times[w].append(time.perf_counter() - t)              # the first step warms up
assert [s.text for s in seqs["decoder"]] == [s.text for s in seqs["transformers_decode"]]   # the same text
ms = {w: 1e3 * statistics.median(t) for w, t in times.items()}
res = {"command": "python bench/detok_cpu.py", "device": f"CPU ({platform.processor() or platform.machine()})", "tokenizer": "tiny",
       "sequences": B, "steps": STEPS, "statistic": "median ms per 256-wide step, the two ways alternating",
       **{f"{w}_ms_per_step": v for w, v in ms.items()}, "speedup": ms["transformers_decode"] / ms["decoder"]}
print(json.dumps(res, indent=1))
json.dump(res, open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "detok_cpu.json"), "w"), indent=1)
