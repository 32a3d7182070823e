"""2:4 semi-structured sparsity vs dense bf16: one F.linear per Llama-1B weight shape, at decode and prefill token counts.

    PYTHONPATH=. python bench/sparse24.py --out bench/sparse24.json

Weights are masked 2:4 by magnitude (`compression.mask_2_4`) and stored with torch.sparse.to_sparse_semi_structured.
Inputs with fewer than 32 rows are zero-padded to 32 for the sparse kernel (its minimum), and that padding is
inside the timed call, as a server would have to do it.
"""
import argparse, json, time
from pathlib import Path

import torch
import torch.nn.functional as F

from fastserve_nb.compress.pruning import mask_2_4


def timed(fn, n: int = 100) -> float:
    for _ in range(10): fn()
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="bench/sparse24.json")
    args = ap.parse_args()
    from torch.sparse import to_sparse_semi_structured
    torch.manual_seed(0)
    shapes = {"q/o_proj": (2048, 2048), "k/v_proj": (512, 2048), "gate/up_proj": (8192, 2048), "down_proj": (2048, 8192)}
    rows = []
    for name, (N, K) in shapes.items():
        W = torch.randn(N, K, device="cuda", dtype=torch.bfloat16)
        W = W * mask_2_4(W.abs().float())
        Ws = to_sparse_semi_structured(W)
        for tokens in (1, 16, 512, 4096):
            x = torch.randn(tokens, K, device="cuda", dtype=torch.bfloat16)
            pad = max(0, 32 - tokens)
            sparse = lambda: F.linear(F.pad(x, (0, 0, 0, pad)) if pad else x, Ws)
            try:
                err = ((sparse()[:tokens].float() - F.linear(x, W).float()).norm() / F.linear(x, W).float().norm()).item()
                d, s = timed(lambda: F.linear(x, W)), timed(sparse)
            except Exception as e:  # record and go on: one unsupported shape must not lose the rest
                rows.append(dict(layer=name, N=N, K=K, tokens=tokens, error=f"{type(e).__name__}: {e}")); print(name, tokens, e); continue
            rows.append(dict(layer=name, N=N, K=K, tokens=tokens, dense_us=d * 1e6, sparse_us=s * 1e6, speedup=d / s, rel_err=err))
            print(f"{name:12s} {N:5d}x{K:<5d} {tokens:5d} tokens: dense {d * 1e6:7.1f} us  2:4 {s * 1e6:7.1f} us  x{d / s:.2f}  (rel. err {err:.1e})")
    Path(args.out).write_text(json.dumps(dict(device=torch.cuda.get_device_name(), torch=torch.__version__, rows=rows), indent=2))


if __name__ == "__main__":
    main()
