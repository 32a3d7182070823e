"""Batch-1 decode speed of a Llama-shaped model in bf16, int8 and int4 weight-only quantization.

gpt-fast's recipe: a static KV cache, the decode step under torch.compile(mode="reduce-overhead") (CUDA graphs, so
the step is not launch-bound), greedy sampling, EOS off (random weights). Every variant runs in the same process on
the same random bf16 weights; each prints tokens/s and the weight bandwidth it reaches (GB/s = bytes read per step
× steps/s) and its MBU against the device's measured copy bandwidth. Writes JSON and a PNG bar plot.

    PYTHONPATH=.:/tmp/site python bench/quant_decode.py --out bench/quant_decode.json

Variants: bf16; int8 and int4 (group 128) through torchao (`quantize(..., backend="torchao")`); our own int4 on
PyTorch's tinygemm kernel (`int4-tinygemm`, `backend="kernel"`), our own int8 weight-only Triton kernel (`int8-triton`,
`backend="kernel"`) and our int8 `QuantLinear` formula left to the compiler (`int8-ours`, `backend="reference"`).
`--compile-mode graph` skips inductor: the eager step is captured as one CUDA graph, so each variant runs exactly
its own kernels (cuBLAS for bf16) and is ready in seconds, which also makes the 8B shape (`--shape 8b`) affordable.
"""
import argparse, copy, json, logging, math, time
from pathlib import Path

import torch
import torch.nn as nn

from fastserve_nb.core import Decoder, ModelConfig, attention
from fastserve_nb.compress.quantization import quantize, model_nbytes

log = logging.getLogger("quant_decode")


class StaticKVCache(nn.Module):
    "K/V buffers of fixed shape (L, B, h_kv, max_len, d_k), written in place: the shapes CUDA graphs need."
    def __init__(self, cfg: ModelConfig, batch: int, max_len: int, device, dtype):
        super().__init__()
        shape = (cfg.num_hidden_layers, batch, cfg.num_key_value_heads, max_len, cfg.head_dim)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype))
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype))
        self.max_len = max_len

    def attend(self, layer, q, k, v, positions, impl="sdpa"):
        # q: (B, h, T, d_k); k, v: (B, h_kv, T, d_k); positions: (B, T), the same for every row here
        self.k[layer].index_copy_(2, positions[0], k)
        self.v[layer].index_copy_(2, positions[0], v)
        keys = torch.arange(self.max_len, device=q.device)
        mask = (keys[None, None, :] <= positions[:, :, None])[:, None]          # (B, 1, T, max_len)
        return attention(q, self.k[layer], self.v[layer], mask, impl)


def llama_1b(vocab: int) -> ModelConfig:
    return ModelConfig(vocab_size=vocab, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False,
                       max_position_embeddings=4096)


def llama_8b(vocab: int) -> ModelConfig:
    "Llama-3-8B's layer shapes (hidden 4096, 32 layers, 32/8 heads, FFN 14336), with a smaller vocabulary."
    return ModelConfig(vocab_size=vocab, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False,
                       max_position_embeddings=4096)


def copy_bandwidth(device, nbytes: int = 2 << 30) -> float:
    "Device-to-device copy, bytes read + written per second."
    a = torch.empty(nbytes // 2, dtype=torch.bfloat16, device=device); b = torch.empty_like(a)
    for _ in range(3): b.copy_(a)
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(10): b.copy_(a)
    torch.cuda.synchronize()
    return 2 * nbytes * 10 / (time.perf_counter() - t)


def sync():
    if torch.cuda.is_available(): torch.cuda.synchronize()


def graphed(step, prompt):
    "The eager step captured as one CUDA graph (no inductor): launch cost gone, every kernel the eager one."
    box = {}
    def fn(tok, pos):
        if not box:                                                   # first call: warm up, then capture
            box["tok"], box["pos"] = tok.clone(), pos.clone()
            s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s):
                for _ in range(2): step(box["tok"], box["pos"])
            torch.cuda.current_stream().wait_stream(s)
            box["graph"] = g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g): box["out"] = step(box["tok"], box["pos"])
        box["tok"].copy_(tok); box["pos"].copy_(pos)
        box["graph"].replay()
        return box["out"]
    return fn


def decode_speed(model: Decoder, prompt: torch.Tensor, new_tokens: int, compile_mode: str | None):
    "Greedy batch-1 decode; returns (tokens/s, seconds to compile + warm up, prefill logits)."
    cfg, dev = model.config, prompt.device
    cache = StaticKVCache(cfg, 1, prompt.shape[1] + new_tokens + 8, dev, torch.bfloat16)
    torch._dynamo.mark_static_address(cache.k); torch._dynamo.mark_static_address(cache.v)

    def step(tok, pos):  # tok, pos: (1, 1) -> next token (1, 1)
        return model(tok, pos, cache)[:, -1].argmax(-1, keepdim=True)

    if compile_mode == "graph": fn = graphed(step, prompt)
    else: fn = torch.compile(step, mode=compile_mode, fullgraph=True) if compile_mode else step
    with torch.no_grad():
        P = prompt.shape[1]
        logits = model(prompt, torch.arange(P, device=dev)[None], cache)              # prefill, eager
        t0 = time.perf_counter()
        tok, pos = logits[:, -1].argmax(-1, keepdim=True), torch.tensor([[P]], device=dev)
        for _ in range(3):                                                             # compile, record the graph
            torch.compiler.cudagraph_mark_step_begin()
            tok = fn(tok, pos).clone(); pos += 1
        sync(); warm = time.perf_counter() - t0
        pos.fill_(P)
        t = time.perf_counter()
        for _ in range(new_tokens):
            torch.compiler.cudagraph_mark_step_begin()
            tok = fn(tok, pos).clone(); pos += 1
        sync()
    return new_tokens / (time.perf_counter() - t), warm, logits.float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--new-tokens", type=int, default=200)
    ap.add_argument("--variants", default="bf16,int8-torchao,int4-torchao,int4-tinygemm,int8-ours")
    ap.add_argument("--budget-s", type=float, default=200, help="skip the remaining variants after this many seconds")
    ap.add_argument("--small", action="store_true", help="a tiny config, to check the script")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--compile-mode", default="reduce-overhead",
                    help="torch.compile mode; 'graph': the eager step captured as a CUDA graph (no inductor); 'none': eager")
    ap.add_argument("--shape", default="1b", choices=["1b", "8b"], help="Llama-1B or Llama-3-8B layer shapes")
    ap.add_argument("--out", default="bench/quant_decode.json")
    ap.add_argument("--merge", help="a JSON of an earlier run on the same kind of device: keep its measured variants")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    torch.manual_seed(0)
    # gpt-fast's inductor settings, for every variant alike (torchao's configs set the same ones)
    import torch._inductor.config as inductor
    inductor.coordinate_descent_tuning = True
    inductor.coordinate_descent_check_all_directions = True
    dev = torch.device(args.device)
    cfg = (llama_1b if args.shape == "1b" else llama_8b)(args.vocab) if not args.small else ModelConfig(vocab_size=1024, hidden_size=256, intermediate_size=1024,
                                                                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    with torch.device(dev): base = Decoder(cfg).to(torch.bfloat16).eval()
    prompt = torch.randint(0, cfg.vocab_size, (1, 16), device=dev)
    bw = copy_bandwidth(dev) if dev.type == "cuda" else float("nan")
    result = dict(device=torch.cuda.get_device_name() if dev.type == "cuda" else "cpu", n_params=sum(p.numel() for p in base.parameters()), torch=torch.__version__, config=cfg.to_hf(),
                  new_tokens=args.new_tokens, copy_bandwidth_GBs=bw / 1e9, compile_mode=args.compile_mode, shape=args.shape, variants={})
    try:
        import torchao; result["torchao"] = torchao.__version__
    except ImportError: result["torchao"] = None
    log.info("%s, torch %s, torchao %s, copy bandwidth %.0f GB/s", result["device"], torch.__version__, result["torchao"], bw / 1e9)
    if args.merge:
        earlier = json.loads(Path(args.merge).read_text())["variants"]
        result["variants"].update({k: dict(v, earlier_run=args.merge) for k, v in earlier.items() if "tok_s" in v})
    ref_logits = None
    for name in args.variants.split(","):
        if time.perf_counter() - start > args.budget_s:
            result["variants"][name] = dict(skipped=f"over the {args.budget_s:.0f} s budget"); continue
        torch._dynamo.reset()
        model = copy.deepcopy(base)
        try:
            if name != "bf16":
                scheme, backend = name.split("-")
                quantize(model, scheme, group_size=128,
                         backend={"torchao": "torchao", "tinygemm": "kernel", "triton": "kernel", "ours": "reference"}[backend])
            weight_bytes = model_nbytes(model, exclude=("model.embed_tokens",))    # read once per step
            kv_bytes = 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * 2 * (16 + args.new_tokens + 8)  # the whole static cache
            tps, warm, logits = decode_speed(model, prompt, args.new_tokens, None if args.compile_mode == "none" else args.compile_mode)
            ref_logits = logits if name == "bf16" else ref_logits
            err = None if ref_logits is None else ((logits - ref_logits).norm() / ref_logits.norm()).item()
            gbs = tps * (weight_bytes + kv_bytes) / 1e9
            r = dict(tok_s=tps, GB_s=gbs, MBU=gbs * 1e9 / bw, weight_GB=weight_bytes / 1e9, compile_s=warm, logits_rel_err_vs_bf16=err)
            log.info("%-14s %8.1f tok/s %7.0f GB/s  MBU %4.0f%%  weights %.2f GB  compile+warm-up %.0f s  logits rel. err %s",
                     name, tps, gbs, 100 * r["MBU"], weight_bytes / 1e9, warm, f"{err:.3f}" if err is not None else "-")
        except Exception as e:  # one broken variant must not lose the others' figures
            log.exception("%s failed", name); r = dict(error=f"{type(e).__name__}: {e}")
        result["variants"][name] = r
        del model; torch.cuda.empty_cache()
        Path(args.out).write_text(json.dumps(result, indent=2))
    base_tps = result["variants"].get("bf16", {}).get("tok_s")
    for r in result["variants"].values():
        if base_tps and "tok_s" in r: r["speedup_vs_bf16"] = r["tok_s"] / base_tps
    result["total_s"] = time.perf_counter() - start
    Path(args.out).write_text(json.dumps(result, indent=2))
    plot(result, Path(args.out).with_suffix(".png"))


def plot(result: dict, path: Path):
    import matplotlib; matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    done = {k: v for k, v in result["variants"].items() if "tok_s" in v}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    bars = ax.bar(list(done), [v["tok_s"] for v in done.values()], color="tab:blue")
    for b, v in zip(bars, done.values()):
        ax.annotate(f"{v['tok_s']:.0f} tok/s\n{v['GB_s']:.0f} GB/s\n×{v.get('speedup_vs_bf16', 1):.2f}",
                    (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("decode tokens/s (batch 1)")
    ax.set_title(f"batch-1 greedy decode, Llama-shaped {result['n_params'] / 1e9:.2f}B params (random bf16), {result['device']}", fontsize=9)
    ax.margins(y=0.3)
    fig.tight_layout(); fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
