"""Decode attention on the CPU: the package at a base commit against the current one, in one run, in alternating child
processes (one torch thread each, for steady figures on a shared machine).

    python bench/decode_attention_cpu.py [--base 01a52ee~1] [--rounds 2]   # writes bench/decode_attention_cpu.json

Each child reports (a) `paged_decode` per call, as the engine calls it on the CPU (the `tiny` shape: 8 query heads,
4 KV heads of 32, blocks of 16 tokens), for 1, 8, 64 and 256 sequences of 16–384 tokens, median of 15 calls; (b) the
engine with `tiny` on the workload of `engine_cpu.py` (64 requests at once, prompts 8–192 tokens, log-normal outputs
of mean 48, greedy): output tok/s, and the outputs, which must be the same in both packages.
"""
import argparse, json, os, platform, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child():
    import torch
    torch.set_num_threads(1)
    import fastserve_nb
    from fastserve_nb.pretrained import load_model
    from fastserve_nb.serve import runner
    from fastserve_nb.serve.bench import make_workload
    from fastserve_nb.serve.config import EngineConfig
    from fastserve_nb.serve.engine import LLMEngine
    from fastserve_nb.serve.sequence import SamplingParams
    res = {"package": str(Path(fastserve_nb.__file__).parent), "per_call_ms": {}}
    g = torch.Generator().manual_seed(0)
    h, hkv, d, blk, N = 8, 4, 32, 16, 20000
    kc, vc = torch.randn(N, blk, hkv, d, generator=g), torch.randn(N, blk, hkv, d, generator=g)
    for B in (1, 8, 64, 256):
        lens = torch.randint(16, 385, (B,), generator=g, dtype=torch.int32)
        nb = -(-int(lens.max()) // blk)
        bt = torch.randperm(N, generator=g)[:B * nb].view(B, nb).int()
        q = torch.randn(B, h, d, generator=g)
        for _ in range(3): runner.paged_decode(q, kc, vc, bt, lens)
        ts = []
        for _ in range(15):
            t = time.perf_counter(); runner.paged_decode(q, kc, vc, bt, lens); ts.append(time.perf_counter() - t)
        res["per_call_ms"][B] = 1e3 * statistics.median(ts)
    model, tok = load_model("tiny", "cpu")
    reqs = make_workload(64, seed=3, vocab=(10, 4000), prompt_range=(8, 192), mean_output=48, max_output=192)
    eng = LLMEngine(model, tok, EngineConfig(max_model_len=512))
    t = time.perf_counter()
    outs = eng.generate([r.prompt for r in reqs], [SamplingParams(max_tokens=r.max_tokens, ignore_eos=True) for r in reqs])
    dt = time.perf_counter() - t
    n = sum(len(o.token_ids) for o in outs)
    res["engine"] = {"output_tokens": n, "seconds": dt, "output_tok_s": n / dt}
    res["outputs"] = [o.token_ids for o in outs]
    print(json.dumps(res))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="01a52ee~1", help="the commit whose package is 'before'")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--child", action="store_true")
    args = ap.parse_args()
    if args.child: return child()
    base_dir = Path(tempfile.mkdtemp(prefix="decode_attention_base_"))
    archive = subprocess.run(["git", "archive", args.base, "fastserve_nb"], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(base_dir)], input=archive, check=True)
    runs = {"before": [], "after": []}
    for r in range(args.rounds):                                  # alternate, and swap which goes first each round
        for which in (("before", "after") if r % 2 == 0 else ("after", "before")):
            path = base_dir if which == "before" else ROOT
            env = dict(os.environ, PYTHONPATH=str(path))
            out = subprocess.run([sys.executable, __file__, "--child"], env=env, capture_output=True, text=True, check=True).stdout
            got = json.loads(out.strip().splitlines()[-1])
            assert Path(got["package"]).resolve() == (path / "fastserve_nb").resolve(), got["package"]
            runs[which].append(got)
            print(f"round {r} {which}: engine {got['engine']['output_tok_s']:.0f} tok/s, per call {got['per_call_ms']}", flush=True)
    med = lambda which, f: statistics.median(f(x) for x in runs[which])
    res = {"command": "python bench/decode_attention_cpu.py " + " ".join(sys.argv[1:]), "base": args.base,
           "device": f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 torch thread)",
           "torch": __import__("torch").__version__, "date": time.strftime("%Y-%m-%d"), "rounds": args.rounds,
           "same_outputs": all(x["outputs"] == runs["before"][0]["outputs"] for x in runs["before"] + runs["after"])}
    for B in runs["before"][0]["per_call_ms"]:
        b, a = med("before", lambda x: x["per_call_ms"][B]), med("after", lambda x: x["per_call_ms"][B])
        res[f"per_call_ms_{B}_seqs"] = {"before": b, "after": a, "speedup": b / a}
    b, a = med("before", lambda x: x["engine"]["output_tok_s"]), med("after", lambda x: x["engine"]["output_tok_s"])
    res["engine_tiny_64_requests_tok_s"] = {"before": b, "after": a, "speedup": a / b,
                                           "each_run": {k: [x["engine"]["output_tok_s"] for x in v] for k, v in runs.items()}}
    print(json.dumps(res, indent=1))
    (ROOT / "bench" / "decode_attention_cpu.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
