"""The decoding engine on tiny random models: parity with transformers, cache and batch invariants, streaming."""

from __future__ import annotations

import pytest
import torch

from llmlab.errors import ConfigError, ModelError
from llmlab.generation import Engine, GenerationConfig
from llmlab.generation.backends import DecoderBackend
from llmlab.generation.fused_llama import FusedLlama

PROMPTS = ["The capital of France is", "Hello", "def add(a, b):\n    return"]
GREEDY = GenerationConfig(greedy=True, max_new_tokens=16, ignore_eos=True)


def hf_greedy(model, tok, ids: list[int], n: int) -> list[int]:
    out = model.generate(
        torch.tensor([ids]),
        do_sample=False,
        max_new_tokens=n,
        min_new_tokens=n,
        pad_token_id=tok.pad_token_id,
    )
    return out[0, len(ids) :].tolist()


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_greedy_matches_transformers_generate(tiny_model, tiny_tok, precision: str) -> None:
    engine = Engine(tiny_model, tiny_tok, precision=precision)
    for prompt in PROMPTS:
        ids = engine.encode(prompt)
        ours = engine.generate([prompt], GREEDY)[0].token_ids
        assert ours == hf_greedy(tiny_model, tiny_tok, ids, 16)
        assert len(set(ours)) > 3, "degenerate model: the test would not discriminate"


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_batch_equals_one_by_one_and_transformers_left_padding(tiny_model, tiny_tok, precision: str) -> None:
    engine = Engine(tiny_model, tiny_tok, precision=precision)
    batch = [c.token_ids for c in engine.generate(PROMPTS, GREEDY)]
    singles = [engine.generate([p], GREEDY)[0].token_ids for p in PROMPTS]
    assert batch == singles
    tiny_tok.padding_side = "left"
    enc = tiny_tok(PROMPTS, return_tensors="pt", padding=True, add_special_tokens=False)
    ref = tiny_model.generate(
        **enc, do_sample=False, max_new_tokens=16, min_new_tokens=16, pad_token_id=tiny_tok.pad_token_id
    )
    assert batch == ref[:, enc.input_ids.shape[1] :].tolist()


def test_fused_logits_equal_transformers_forward(tiny_tok) -> None:
    """Prefill and cached decode logits of the fused fp32 path equal LlamaForCausalLM's, tied or untied."""
    from tiny import tiny_llama

    for tied in (False, True):
        model = tiny_llama(len(tiny_tok), seed=3, tie_word_embeddings=tied)
        fused = FusedLlama(model, "fp32")
        ids = torch.tensor([tiny_tok("The capital of France is Paris")["input_ids"]])
        T = ids.shape[1]
        ref = model(ids).logits  # (1, T, V)
        cache = fused.new_cache(1, T + 4)
        prefix = fused.forward(cache, torch.arange(T - 2)[None], None, ids[:, : T - 2], last_only=False)
        torch.testing.assert_close(prefix, ref[:, : T - 2])
        for t in (T - 2, T - 1):  # one token at a time from the cache
            step = fused.forward(cache, torch.tensor([[t]]), None, ids[:, t : t + 1])
            torch.testing.assert_close(step, ref[:, t])


def test_kv_cache_equals_full_recompute(tiny_model, tiny_tok) -> None:
    """Each step's logits from the cache equal a fresh full forward over prompt + generated tokens."""
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    ids = engine.encode(PROMPTS[0])
    cfg = GenerationConfig(greedy=True, max_new_tokens=8, ignore_eos=True, logprobs=True)
    out = engine.generate([ids], cfg)[0]
    for i, tok in enumerate(out.token_ids):
        context = torch.tensor([ids + out.token_ids[:i]])
        full = torch.log_softmax(tiny_model(context).logits[0, -1], -1)
        assert int(full.argmax()) == tok
        assert out.logprobs is not None
        assert out.logprobs[i] == pytest.approx(float(full[tok].detach()), abs=1e-4)


def test_encoder_decoder_greedy_matches_transformers(tiny_tok) -> None:
    from tiny import tiny_t5

    model = tiny_t5(len(tiny_tok))
    engine = Engine(model, tiny_tok, kind="encoder-decoder")
    for prompt in PROMPTS:
        ids = engine.encode(prompt)
        ours = engine.generate([prompt], GREEDY)[0].token_ids
        ref = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=16, min_new_tokens=16)
        assert ours == ref[0, 1:].tolist()
    assert max(len(set(engine.generate([p], GREEDY)[0].token_ids)) for p in PROMPTS) >= 3
    batch = [c.token_ids for c in engine.generate(PROMPTS, GREEDY)]
    assert batch == [engine.generate([p], GREEDY)[0].token_ids for p in PROMPTS]


def test_same_seed_same_text_and_batch_rows_use_seed_plus_row(tiny_model, tiny_tok) -> None:
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    cfg = GenerationConfig(temperature=1.0, top_p=0.95, seed=7, max_new_tokens=12, ignore_eos=True)
    a = engine.generate(PROMPTS, cfg)
    b = engine.generate(PROMPTS, cfg)
    assert [c.text for c in a] == [c.text for c in b]
    for row, prompt in enumerate(PROMPTS):
        alone = engine.generate([prompt], GenerationConfig(**{**vars(cfg), "seed": 7 + row}))[0]
        assert alone.token_ids == a[row].token_ids
    other = engine.generate(PROMPTS, GenerationConfig(**{**vars(cfg), "seed": 8}))
    assert [c.token_ids for c in other] != [c.token_ids for c in a]


def test_stream_never_splits_a_multibyte_character(tiny_model, tiny_tok) -> None:
    """Force the model (through the token-mask hook) to write text whose characters span several byte-level
    tokens: each streamed piece is valid text, and the pieces join to the final text."""
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    target_text = "Héllo 🙂 中文 wörld"
    target = tiny_tok(target_text, add_special_tokens=False)["input_ids"]
    assert len(target) > len(target_text) - 4, "characters must span several tokens for this test"

    def force(row: int, ids) -> torch.Tensor:
        mask = torch.zeros(len(tiny_tok), dtype=torch.bool)
        mask[target[len(ids)]] = True
        return mask

    cfg = GenerationConfig(temperature=1.0, seed=0, max_new_tokens=len(target), ignore_eos=True)
    stream = engine.stream("Hello", cfg, allowed_tokens=force)
    pieces = list(stream)
    assert stream.completion is not None and stream.completion.token_ids == target
    assert "".join(pieces) == stream.completion.text == target_text
    assert all("\ufffd" not in p for p in pieces)
    assert "🙂" in pieces or any("🙂" in p for p in pieces)
    assert len(pieces) < len(target), "held-back bytes must be emitted together"


def test_stop_string_cuts_text_and_is_never_streamed(tiny_model, tiny_tok) -> None:
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    full = engine.generate(["Hello"], GREEDY)[0].text
    stop = full[5:8]
    assert len(stop) == 3 and stop not in full[:7]
    cfg = GenerationConfig(greedy=True, max_new_tokens=16, ignore_eos=True, stop=[stop])
    stream = engine.stream("Hello", cfg)
    shown = "".join(stream)
    assert stream.completion is not None
    assert shown == full[: full.index(stop)] == stream.completion.text
    assert stream.completion.finish_reason == "stop"


def test_finished_rows_leave_the_batch(tiny_model, tiny_tok) -> None:
    """A row that hits a stop token stops costing compute: later steps run with fewer rows."""
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    first = engine.generate(["Hello"], GREEDY)[0].token_ids
    widths: list[int] = []
    backend = engine.backend
    assert isinstance(backend, DecoderBackend)
    original = backend.step
    backend.step = lambda state, tokens: (widths.append(tokens.shape[0]), original(state, tokens))[1]  # type: ignore[method-assign]
    cfg = GenerationConfig(greedy=True, max_new_tokens=10, ignore_eos=True, stop_token_ids=[first[2]])
    out = engine.generate(["Hello", PROMPTS[0]], cfg)
    assert out[0].token_ids == first[:3] and out[0].finish_reason == "stop"
    assert widths[:2] == [2, 2] and set(widths[2:]) == {1}
    assert out[1].token_ids == engine.generate([PROMPTS[0]], cfg)[0].token_ids


def test_allowed_tokens_hook_constrains_every_step(tiny_model, tiny_tok) -> None:
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    allowed = torch.zeros(len(tiny_tok), dtype=torch.bool)
    allowed[[10, 20, 30]] = True
    cfg = GenerationConfig(temperature=1.0, seed=1, max_new_tokens=20, ignore_eos=True)
    out = engine.generate(["Hello"], cfg, allowed_tokens=lambda row, ids: allowed)[0]
    assert set(out.token_ids) <= {10, 20, 30} and len(out.token_ids) == 20


def test_prefix_embeds_equal_prepending_the_tokens(tiny_model, tiny_tok) -> None:
    """Prompt tuning hook: virtual tokens given as embeddings act like the real tokens they copy."""
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    prefix_ids = engine.encode("The capital of")
    prefix = tiny_model.model.embed_tokens.weight[prefix_ids].detach()
    with_prefix = engine.generate([" France is", "Hello"], GREEDY, prefix_embeds=prefix)
    spelled = engine.generate(
        [prefix_ids + engine.encode(" France is"), prefix_ids + engine.encode("Hello")], GREEDY
    )
    assert [c.token_ids for c in with_prefix] == [c.token_ids for c in spelled]


def test_prompt_longer_than_context_says_by_how_much(tiny_model, tiny_tok) -> None:
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    with pytest.raises(
        ModelError, match=r"the prompt is 300 tokens, 45 more than fit .* context window of 256"
    ):
        engine.generate([[5] * 300], GREEDY)
    out = engine.generate([[5] * 250], GenerationConfig(greedy=True, max_new_tokens=50, ignore_eos=True))[0]
    assert len(out.token_ids) == 6 and out.finish_reason == "length"


def test_bad_config_values() -> None:
    with pytest.raises(ConfigError, match="--max-new-tokens must be >= 1, got 0"):
        GenerationConfig(max_new_tokens=0)
    with pytest.raises(ConfigError, match=r"--top-p must be in \(0, 1\], got 1.5"):
        GenerationConfig(top_p=1.5)


def test_int8_path_tracks_fp32(tiny_model, tiny_tok) -> None:
    """int8 weights: next-token distributions stay close to fp32 (KL small) on the tiny model."""
    fp32 = FusedLlama(tiny_model, "fp32")
    int8 = FusedLlama(tiny_model, "int8")
    ids = torch.tensor([tiny_tok("The capital of France is Paris. Language models")["input_ids"]])
    pos = torch.arange(ids.shape[1])[None]
    a = fp32.forward(fp32.new_cache(1, 64), pos, None, ids, last_only=False).log_softmax(-1)
    b = int8.forward(int8.new_cache(1, 64), pos, None, ids, last_only=False).log_softmax(-1)
    kl = (a.exp() * (a - b)).sum(-1).mean()
    assert kl < 0.02, kl


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_repetition_penalty_matches_transformers_generate(tiny_model, tiny_tok, precision: str) -> None:
    """Greedy with a repetition penalty equals transformers' generate with the same penalty (and differs
    from greedy without it, so the penalty is really applied). Both stop at the end-of-sequence token."""
    engine = Engine(tiny_model, tiny_tok, precision=precision)
    config = GenerationConfig(greedy=True, max_new_tokens=16, repetition_penalty=1.5)
    for prompt in PROMPTS:
        ids = engine.encode(prompt)
        ours = engine.generate([prompt], config)[0].token_ids
        ref = tiny_model.generate(
            torch.tensor([ids]),
            do_sample=False,
            max_new_tokens=16,
            repetition_penalty=1.5,
            pad_token_id=tiny_tok.pad_token_id,
        )[0, len(ids) :].tolist()
        assert ours == ref[: len(ours)] and set(ref[len(ours) :]) <= {tiny_tok.pad_token_id}
    plain = GenerationConfig(greedy=True, max_new_tokens=16)
    assert any(
        engine.generate([p], config)[0].token_ids != engine.generate([p], plain)[0].token_ids for p in PROMPTS
    )
