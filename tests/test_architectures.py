"""Each supported architecture against `transformers`: a tiny model with random weights is built from transformers' own
config class, saved as a safetensors checkpoint, loaded by `from_pretrained`, and its fp32 logits compared — full
forward, token-by-token decode through a KV cache, and the serving engine's paged path (chunked prefill and decode
through 4-token blocks, past the sliding window).

The configurations set every feature to a value where it changes the logits (soft-caps near the scores' size, a
query scalar unlike d_k, windows shorter than the sequence), and `test_features_matter` checks that they do."""
import json

import pytest
import torch
import transformers

from fastserve_nb.core import ContiguousKVCache, ModelConfig, UnsupportedModelError, check_architecture, generate_ids
from fastserve_nb.pretrained import from_pretrained, save_pretrained

V, T, W = 96, 24, 8          # vocab, test sequence length, sliding window (shorter than T so that windows matter)
COMMON = dict(vocab_size=V, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, max_position_embeddings=128)
CASES = {
    "qwen3": lambda: transformers.Qwen3Config(**COMMON, tie_word_embeddings=False, rope_parameters={"rope_type": "default", "rope_theta": 1e6}),
    "gemma2": lambda: transformers.Gemma2Config(**COMMON, hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=24,
                                                sliding_window=W, attn_logit_softcapping=2.0, final_logit_softcapping=3.0),
    "gemma3_text": lambda: transformers.Gemma3TextConfig(
        **COMMON, query_pre_attn_scalar=24, sliding_window=W, layer_types=["sliding_attention", "full_attention", "sliding_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
                         "full_attention": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e6}}),
    "mistral": lambda: transformers.MistralConfig(**COMMON, sliding_window=W, tie_word_embeddings=False),
    "phi3": lambda: transformers.Phi3Config(**COMMON, sliding_window=W, tie_word_embeddings=False, pad_token_id=0,
                                            rope_parameters={"rope_type": "default", "rope_theta": 1e4, "partial_rotary_factor": 0.5}),
    "olmo2": lambda: transformers.Olmo2Config(**COMMON, tie_word_embeddings=False, pad_token_id=0),
}
WINDOWED = {"gemma2", "gemma3_text", "mistral", "phi3"}


def build(kind, tmp_path):
    "(transformers model, our model) with the same random weights, loaded from a safetensors checkpoint."
    torch.manual_seed(0)
    hf = transformers.AutoModelForCausalLM.from_config(CASES[kind](), attn_implementation="eager").eval()
    with torch.no_grad():
        for p in hf.parameters(): p.normal_(0, 0.2)           # norm weights too, so a missing (1 + g) or norm shows
    hf.save_pretrained(tmp_path / kind, safe_serialization=True)
    return hf, from_pretrained(tmp_path / kind)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kind", CASES)
def test_logits_match_transformers(kind, tmp_path, ids):
    hf, ours = build(kind, tmp_path)
    assert ours.config.model_type == kind
    with torch.no_grad(): torch.testing.assert_close(ours(ids), hf(ids).logits)


@pytest.mark.parametrize("kind", CASES)
def test_decode_through_cache_matches(kind, tmp_path, ids):
    "Prefill 5 tokens, then one token at a time through `ContiguousKVCache` (past the window): the full forward's logits."
    hf, ours = build(kind, tmp_path)
    cache = ContiguousKVCache(ours.config, 2, T)
    with torch.no_grad():
        steps = [ours(ids[:, :5], cache=cache)]
        steps += [ours(ids[:, t:t + 1], torch.full((2, 1), t), cache) for t in range(5, T)]
        torch.testing.assert_close(torch.cat(steps, 1), hf(ids).logits)


@pytest.mark.parametrize("kind", CASES)
def test_greedy_generation_matches(kind, tmp_path):
    hf, ours = build(kind, tmp_path)
    prompt = [5, 17, 33, 2, 9]
    ref = hf.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert generate_ids(ours, prompt, 20, eos_ids=[]) == ref[0, len(prompt):].tolist()


def test_features_matter(tmp_path, ids):
    "Switching a feature off changes Gemma 2's logits: the matches above exercise every one of them."
    _, ours = build("gemma2", tmp_path)
    with torch.no_grad():
        ref = ours(ids)
        for attr, off in (("window", None), ("softcap_c", None), ("q_scale", 1.0)):
            saved = [getattr(l.self_attn, attr) for l in ours.model.layers]
            for l in ours.model.layers: setattr(l.self_attn, attr, off)
            assert not torch.allclose(ours(ids), ref, atol=1e-3), attr
            for l, s in zip(ours.model.layers, saved): setattr(l.self_attn, attr, s)
        ours.config.final_logit_softcapping = None
        assert not torch.allclose(ours(ids), ref, atol=1e-3)


@pytest.mark.parametrize("kind", ["qwen3", "gemma2", "gemma3_text", "olmo2"])
def test_save_pretrained_round_trip(kind, tmp_path, ids):
    "A model we save, `transformers` loads back with the same logits (its config.json in transformers' terms)."
    _, ours = build(kind, tmp_path)
    save_pretrained(ours, tmp_path / "ours")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    assert type(back).__name__ == json.loads((tmp_path / "ours" / "config.json").read_text())["architectures"][0]
    with torch.no_grad(): torch.testing.assert_close(back(ids).logits, ours(ids))


def test_phi3_round_trip(tmp_path, ids):
    "Phi-3's fused projections are written back fused."
    hf, ours = build("phi3", tmp_path)
    save_pretrained(ours, tmp_path / "ours")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "ours", attn_implementation="eager").eval()
    assert "model.layers.0.self_attn.qkv_proj.weight" in back.state_dict()
    with torch.no_grad(): torch.testing.assert_close(back(ids).logits, hf(ids).logits)


def test_generation_defaults(tmp_path):
    hf, _ = build("qwen3", tmp_path)
    transformers.GenerationConfig(do_sample=True, temperature=0.6, top_p=0.95, top_k=20, repetition_penalty=1.1,
                                  eos_token_id=[3, 4]).save_pretrained(tmp_path / "qwen3")
    ours = from_pretrained(tmp_path / "qwen3")
    assert ours.config.generation_defaults == {"temperature": 0.6, "top_p": 0.95, "top_k": 20, "repetition_penalty": 1.1}
    assert ours.config.eos_ids == [3, 4]
    assert from_pretrained(tmp_path / "qwen3", dtype=torch.float32).config.to_hf().get("generation_defaults") is None


# ---- the serving path: the engine's paged attention ----

def engine_for(model, max_model_len, max_num_batched_tokens=2048):
    from fastserve_nb.serve.engine import LLMEngine
    from fastserve_nb.serve.config import EngineConfig, SchedulerConfig
    return LLMEngine(model, None, EngineConfig(max_model_len=max_model_len, block_size=4, cuda_graphs=False, profile_prefill=False,
                                               scheduler=SchedulerConfig(max_num_seqs=4, max_num_batched_tokens=max_num_batched_tokens)))


def record_logits(runner) -> list:
    "Wrap `runner.next_tokens`: each row's logits as the engine computes them, with its sequence and the position they predict from."
    seen, next_tokens = [], runner.next_tokens
    def recording(entries, order, logits):
        pos = {s.seq_id: s.num_computed_tokens + n - 1 for s, n in entries}      # the row's last new token, before the step
        seen.extend((s, pos[s.seq_id], row.clone()) for s, row in zip(order, logits))
        return next_tokens(entries, order, logits)
    runner.next_tokens = recording
    return seen


@pytest.mark.parametrize("kind", CASES)
def test_engine_matches_transformers(kind, tmp_path):
    """Paged serving past the window: a 21-token prompt prefilled in chunks of at most 5 tokens (later chunks over their
    cached prefix) beside a 3-token one, through 4-token blocks, then both decoded to 40 tokens (5·W). The greedy tokens
    are transformers' `generate`, and every row's logits — partial chunks included — its fp32 forward within 1e-4."""
    from fastserve_nb.serve.sequence import SamplingParams
    hf, ours = build(kind, tmp_path)
    prompts = [torch.randint(0, V, (21,), generator=torch.Generator().manual_seed(2)).tolist(), [9, 2, 50]]
    eng = engine_for(ours, 48, max_num_batched_tokens=5)
    seen = record_logits(eng.runner)
    out = eng.generate(prompts, SamplingParams(max_tokens=40 - 21, ignore_eos=True))
    for p, o in zip(prompts, out):
        ref = hf.generate(torch.tensor([p]), max_new_tokens=40 - 21, do_sample=False, eos_token_id=None, pad_token_id=0)
        assert o.token_ids == ref[0, len(p):].tolist()
    assert sum(s.seq_id == out[0].seq_id and pos < 20 for s, pos, _ in seen) >= 4   # the long prompt took ≥ 4 partial chunks
    assert max(pos for _, pos, _ in seen) >= 4 * W                                    # decode ran far past the window
    with torch.no_grad(): full = {s.seq_id: hf(torch.tensor([s.token_ids])).logits[0] for s, _, _ in seen}
    for s, pos, row in seen: torch.testing.assert_close(row, full[s.seq_id][pos], atol=1e-4, rtol=1e-4)


def test_engine_starts_with_prefill_profile(tmp_path):
    "The default start-up profiles prefills up to max_model_len tokens, past the window, through every layer's options."
    from fastserve_nb.serve.engine import LLMEngine
    from fastserve_nb.serve.config import EngineConfig, SchedulerConfig
    for kind in ("gemma2", "gemma3_text"):
        _, model = build(kind, tmp_path)
        eng = LLMEngine(model, None, EngineConfig(max_model_len=64, block_size=4, cuda_graphs=False, scheduler=SchedulerConfig(max_num_seqs=2)))
        assert eng.runner.cache.features == {"window", "softcap_c"}


@pytest.mark.parametrize("kind", CASES)
def test_check_architecture(kind, tmp_path):
    "Every case's config.json, as transformers writes it, is accepted; an unknown architecture is refused in one line."
    build(kind, tmp_path)
    d = json.loads((tmp_path / kind / "config.json").read_text())
    assert check_architecture(d) == kind
    with pytest.raises(UnsupportedModelError, match=r"^model_type 'gemma' is not supported; supported: llama"):
        check_architecture({"model_type": "gemma"})


def test_config_variants():
    "The architecture fixes how its layers differ from Llama, whatever the constructor is given."
    assert ModelConfig(model_type="gemma2", norm_offset=0.0).norm_offset == 1.0
    assert ModelConfig(model_type="llama").norm_placement == "pre"
    cfg = ModelConfig.from_hf(json.loads(json.dumps(CASES["gemma2"]().to_dict())))
    assert [cfg.is_sliding(i) for i in range(3)] == [True, False, True]


def test_server_refuses_what_core_lacks(tmp_path):
    """The server's HTTP process checks only the `model_type` (no torch there); what needs `transformers`' defaults to
    see — here an activation `core` does not compute — the worker finds as it loads the model: one line saying why, no
    traceback, exit status 2."""
    import shutil, subprocess, sys
    from fastserve_nb.pretrained import tiny_path
    folder = tmp_path / "relu"
    transformers.LlamaForCausalLM(transformers.LlamaConfig(**COMMON, hidden_act="relu")).save_pretrained(folder)
    for f in tiny_path().glob("tokenizer*"): shutil.copy(f, folder)
    r = subprocess.run([sys.executable, "-m", "fastserve_nb.serve.service", "--model", str(folder), "--port", "0", "--num-threads", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "llama: activation 'relu' is not supported; supported: silu, gelu_pytorch_tanh" in r.stderr, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
