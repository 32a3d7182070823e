"""The benchmarks' checkpoint: a Llama-1B-shaped model (hidden 2048, 16 layers, 32 heads / 8 KV heads, FFN 8192,
vocab 128256, tied, no EOS) with random bf16 weights and a word-level tokenizer of the same vocabulary, written to a
temporary folder. `smoke=True`: a tiny shape of the same family, for checking a script on the CPU."""
import tempfile
from pathlib import Path

import torch
from fastserve_nb.core import Decoder, ModelConfig
from fastserve_nb.pretrained import save_pretrained

LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256)
SMOKE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=1000)

def write_checkpoint(dev: str, smoke: bool = False, prefix: str = "llama1b_") -> tuple[Path, int, int]:
    "(folder, weight bytes in bf16 with the tied embedding counted once, vocabulary size)."
    shape = SMOKE if smoke else LLAMA_1B
    hf = dict(model_type="llama", architectures=["LlamaForCausalLM"], max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=500000.0,
              tie_word_embeddings=True, hidden_act="silu", bos_token_id=None, eos_token_id=None, **shape)
    cfg = ModelConfig.from_hf(hf); cfg.eos_token_id = None
    torch.manual_seed(0)
    with torch.device(dev): model = Decoder(cfg)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1: p.normal_(0, 0.02)
    wbytes = sum(p.numel() for p in model.parameters()) * 2
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    save_pretrained(model, folder, dtype=torch.bfloat16)
    del model
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast
    V = shape["vocab_size"]
    tk = Tokenizer(models.WordLevel({f"w{i}": i for i in range(V)}, unk_token="w0")); tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=tk).save_pretrained(folder)
    return folder, wbytes, V
