"""Kernels of one batch-1 decode step of the Llama-1B shape (bf16, compiled, CUDA graph), by the CUDA profiler.

    python3 bench/b1_profile_gpu.py > $OUT/b1_profile_gpu.txt     # committed as bench/b1_profile_gpu.txt

Ten replays of the batch-1 graph: kernels per step and each kernel's total time, largest first.
"""
import torch
from torch.profiler import profile, ProfilerActivity
from fastserve_nb.core import Decoder, ModelConfig
from fastserve_nb.serve.runner import ModelRunner

shape = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256)
hf = dict(model_type="llama", architectures=["LlamaForCausalLM"], max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=500000.0, tie_word_embeddings=True, hidden_act="silu", **shape)
cfg = ModelConfig.from_hf(hf)
with torch.device("cuda"): m = Decoder(cfg).to(torch.bfloat16).eval()
r = ModelRunner(m, 64, 16, 0, 1024, True, max_graph_batch=1, compile=True)
g = r.graphs[1][0]
for _ in range(5): g.replay()
with profile(activities=[ProfilerActivity.CUDA]) as p:
    for _ in range(10): g.replay()
    torch.cuda.synchronize()
ev = [e for e in p.events() if e.device_type.name == "CUDA"]
print(torch.cuda.get_device_name(), torch.__version__)
print("kernels per step", len(ev) / 10)
print(p.key_averages().table(sort_by="cuda_time_total", row_limit=25))
