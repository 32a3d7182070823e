"""Attention kernels in isolation on one GPU: decode (one program per (sequence, kv head) walking one 16-token block
per step, against 05da's FlashDecoding kernel: the context split across programs, 64-token tiles) and prompt attention (05d's chunk-by-chunk SDPA over gathered keys against one variable-length
flash call), with bytes read per call and the fraction of the measured read bandwidth.

Shapes are the Llama-1B ones: 32 query heads, 8 kv heads, head dim 64, bf16, a block-major pool of 16 layers with
16-token blocks (each layer's K and V are strided views, as in the runner). Writes $OUT/kernels_gpu.json (or
bench/kernels_gpu.json). About a minute on an H100:

    python3 bench/kernels_gpu.py
"""
import json, math, os, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from fastserve_nb.core import attention
from fastserve_nb.serve.runner import paged_decode_reference
from fastserve_nb.serve.kernels import flash_decode, num_splits, varlen_attention, varlen_reference

dev, dt = "cuda", torch.bfloat16
res = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "command": "python3 bench/kernels_gpu.py"}
out = Path(os.environ.get("OUT", ROOT / "bench")) / "kernels_gpu.json"

def timed(fn, n=50):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(n): fn()
    b.record(); torch.cuda.synchronize()
    return a.elapsed_time(b) / n / 1e3          # seconds per call

def graphed(fn, n=50):
    "Seconds per call with the call captured in a CUDA graph (as the runner replays decode): GPU time, no launch cost."
    s = torch.cuda.Stream(); s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s): fn()
    torch.cuda.current_stream().wait_stream(s); torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g): fn()
    return timed(g.replay, n)

x = torch.ones(1024**3, dtype=torch.float32, device=dev)          # 4 GiB, read by a sum
read_bw = x.numel() * 4 / timed(lambda: x.sum(), 20)
del x; torch.cuda.empty_cache()
res["read_GBps"] = read_bw / 1e9
print(f"read bandwidth {read_bw / 1e9:.0f} GB/s", flush=True)

L, BS, hkv, d, h = 16, 16, 8, 64, 32
torch.manual_seed(0)
res["decode"] = []
for B, ctx in ((256, 300), (256, 1024), (64, 1024), (16, 2048), (1, 300), (1, 2048)):
    nb = math.ceil(ctx / BS)
    kv = torch.randn(B * nb + 1, L, 2, BS, hkv, d, device=dev, dtype=dt)
    kc, vc = kv[:, 3, 0], kv[:, 3, 1]
    bt = torch.randperm(B * nb, device=dev).view(B, nb).to(torch.int32)
    lens = torch.full((B,), ctx, dtype=torch.int32, device=dev)
    q = torch.randn(B, h, d, device=dev, dtype=dt)
    want = paged_decode_reference(q, kc, vc, bt, lens).float()
    paged_decode = lambda q, kc, vc, bt, lens: flash_decode(q, kc, vc, bt, lens, splits=1, tile=BS)   # the one-split, one-block kernel
    err_old = (paged_decode(q, kc, vc, bt, lens).float() - want).abs().max().item()
    err_new = (flash_decode(q, kc, vc, bt, lens).float() - want).abs().max().item()
    nbytes = B * ctx * hkv * d * 2 * 2                                 # K and V of every context token, bf16
    t_old = timed(lambda: paged_decode(q, kc, vc, bt, lens))
    t_new = timed(lambda: flash_decode(q, kc, vc, bt, lens))
    g_old, g_new = graphed(lambda: paged_decode(q, kc, vc, bt, lens)), graphed(lambda: flash_decode(q, kc, vc, bt, lens))
    g_one = graphed(lambda: flash_decode(q, kc, vc, bt, lens, splits=1))
    row = dict(batch=B, context=ctx, bytes_read=nbytes, splits=num_splits(B, hkv, nb, torch.cuda.get_device_properties(0).multi_processor_count),
               old_us=t_old * 1e6, new_us=t_new * 1e6, old_bw_frac=nbytes / t_old / read_bw, new_bw_frac=nbytes / t_new / read_bw,
               speedup=t_old / t_new, max_err_old=err_old, max_err_new=err_new,
               graph_old_us=g_old * 1e6, graph_new_us=g_new * 1e6, graph_new_one_split_us=g_one * 1e6,
               graph_old_bw_frac=nbytes / g_old / read_bw, graph_new_bw_frac=nbytes / g_new / read_bw, graph_speedup=g_old / g_new)
    res["decode"].append(row)
    print(f"decode B={B:3d} ctx={ctx:5d}: old {t_old*1e6:7.1f} us ({row['old_bw_frac']:.0%} of read BW), "
          f"new {t_new*1e6:7.1f} us ({row['new_bw_frac']:.0%}), x{row['speedup']:.2f}, err {err_old:.3f}/{err_new:.3f}; "
          f"in a graph: old {g_old*1e6:.1f} us ({row['graph_old_bw_frac']:.0%}), new {g_new*1e6:.1f} us ({row['graph_new_bw_frac']:.0%}), one split {g_one*1e6:.1f} us", flush=True)
    del kv; torch.cuda.empty_cache()
    json.dump(res, open(out, "w"), indent=1)

# prompt attention: 16 prompts of 64..512 tokens, no prefix (the burst case)
g = torch.Generator().manual_seed(1)
lens = torch.randint(64, 513, (16,), generator=g).tolist()
cu = [0] + torch.tensor(lens).cumsum(0).tolist()
T = cu[-1]
q = torch.randn(T, h, d, device=dev, dtype=dt); k = torch.randn(T, hkv, d, device=dev, dtype=dt); v = torch.randn_like(k)
def old_path():                                     # 05d: per chunk, (1, h, T, d) layout, SDPA with enable_gqa
    qq = q.transpose(0, 1)[None]; kk = k.transpose(0, 1)[None]; vv = v.transpose(0, 1)[None]
    return torch.cat([attention(qq[:, :, a:b], kk[:, :, a:b], vv[:, :, a:b])[0] for a, b in zip(cu, cu[1:])], 2)
from torch.nn.attention import SDPBackend, sdpa_kernel
backends = {}
for name, be in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION), ("math", SDPBackend.MATH)):
    try:
        with sdpa_kernel([be]): old_path()
        backends[name] = True
    except RuntimeError as e: backends[name] = str(e).splitlines()[0][:120]
err = (varlen_attention(q, k, v, cu, cu).float() - old_path()[0].transpose(0, 1).float()).abs().max().item()
t_old, t_new = timed(old_path, 20), timed(lambda: varlen_attention(q, k, v, cu, cu), 20)
flops = sum(4 * n * n / 2 * h * d for n in lens)
res["prefill"] = dict(prompts=lens, tokens=T, old_ms=t_old * 1e3, new_ms=t_new * 1e3, speedup=t_old / t_new, max_err=err,
                      old_sdpa_backends_usable=backends, new_tflops=flops / t_new / 1e12)
print(f"prefill {T} tokens: old {t_old*1e3:.2f} ms, varlen {t_new*1e3:.2f} ms, x{t_old/t_new:.2f}, err {err:.3f}; backends {backends}", flush=True)
json.dump(res, open(out, "w"), indent=1)
