"""Prompt tuning: parity with peft (forward, loss, init), batches, and decoding with the KV-cache engine."""

from __future__ import annotations

import copy

import pytest
import torch
from kinds import IDS, KIND_NAMES, KINDS, MASK, VOCAB, batch, output

from llmlab.errors import ConfigError
from llmlab.generation import Engine, GenerationConfig
from llmlab.peft import disable_adapters, trainable_parameters
from llmlab.peft.prompt_tuning import apply_prompt_tuning, soft_prompt, virtual_tokens

N = 4


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def peft_prompt(base, kind: str, **kwargs):
    from peft import PromptTuningConfig, get_peft_model

    config = PromptTuningConfig(task_type=KINDS[kind].task_type, num_virtual_tokens=N, **kwargs)
    return get_peft_model(copy.deepcopy(base), config).eval()


def peft_values(peft_model) -> torch.Tensor:
    return peft_model.prompt_encoder["default"].embedding.weight.detach()


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_forward_matches_peft(kind: str) -> None:
    """The same soft prompt gives peft's outputs (virtual positions included) on a padded batch; for the
    decoder-only model also peft's loss with labels (the virtual positions padded with -100)."""
    base = KINDS[kind].model()
    torch.manual_seed(3)
    reference = peft_prompt(base, kind)
    ours = copy.deepcopy(base)
    apply_prompt_tuning(ours, virtual_tokens=N)
    with torch.no_grad():
        ours.soft_prompt.embeddings["default"].copy_(peft_values(reference)[:N])
    expected = output(reference, kind)
    assert expected.shape[1] == (N if kind != "encoder-decoder" else 0) + batch(kind)["input_ids" if kind != "encoder-decoder" else "decoder_input_ids"].shape[1]  # fmt: skip
    torch.testing.assert_close(output(ours, kind), expected)
    assert virtual_tokens(ours) == N
    if kind == "decoder-only":
        labels = IDS.masked_fill(MASK == 0, -100)
        with torch.no_grad():
            theirs = reference(**batch(kind), labels=labels).loss
            mine = ours(**batch(kind), labels=labels).loss
        torch.testing.assert_close(mine, theirs)
    with disable_adapters(ours):
        torch.testing.assert_close(output(ours, kind), output(base, kind), rtol=0, atol=0)


def test_positional_call_and_position_ids() -> None:
    """model(ids) works like model(input_ids=ids); explicit position_ids are shifted by n (peft drops them,
    which equals the shift when no row is left-padded)."""
    model = KINDS["decoder-only"].model()
    apply_prompt_tuning(model, virtual_tokens=N)
    with torch.no_grad():
        keyword = model(input_ids=IDS).logits
        torch.testing.assert_close(model(IDS).logits, keyword, rtol=0, atol=0)
        positions = torch.arange(IDS.shape[1]).expand(2, -1)
        torch.testing.assert_close(model(input_ids=IDS, position_ids=positions).logits, keyword)


def test_init_matches_peft(tiny_tok, tmp_path) -> None:
    """Text init takes the text's tokens (with its special tokens), cut or repeated, as peft's TEXT init;
    vocab init takes rows of the embedding matrix (peft draws its ids after another tensor's init, so the
    same seed gives other ids there)."""
    from peft import PromptTuningConfig, get_peft_model

    base = KINDS["decoder-only"].model()
    tiny_tok.save_pretrained(tmp_path)
    text = "Is this review positive?"
    for n in (3, 11):  # fewer and more virtual tokens than the text has
        config = PromptTuningConfig(
            task_type="CAUSAL_LM", num_virtual_tokens=n, prompt_tuning_init="TEXT",
            prompt_tuning_init_text=text, tokenizer_name_or_path=str(tmp_path),
        )  # fmt: skip
        expected = peft_values(get_peft_model(copy.deepcopy(base), config))
        ours = apply_prompt_tuning(copy.deepcopy(base), n, f"text:{text}", tokenizer=tiny_tok)
        torch.testing.assert_close(ours.detach(), expected)
    rows = apply_prompt_tuning(copy.deepcopy(base), 16, "vocab").detach()
    table = base.get_input_embeddings().weight
    assert all(bool((table == row).all(dim=1).any()) for row in rows)


def test_only_the_prompt_trains_and_errors() -> None:
    model = KINDS["decoder-only"].model().train()
    prompt = apply_prompt_tuning(model, virtual_tokens=N, init="random")
    assert list(trainable_parameters(model)) == ["soft_prompt.embeddings.default"]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW([prompt], lr=1e-2)
    for _ in range(2):
        model(**batch("decoder-only"), labels=IDS).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert {n for n, p in model.named_parameters() if not torch.equal(p, before[n])} == {
        "soft_prompt.embeddings.default"
    }
    with pytest.raises(ConfigError, match=r"--virtual-tokens must be a positive integer, got 0"):
        apply_prompt_tuning(model, virtual_tokens=0, name="other")
    with pytest.raises(ConfigError, match=r'--init must be random, vocab or text:"some words", got \'text:\'; give the text after text:'):  # fmt: skip
        apply_prompt_tuning(model, init="text:", name="other")
    with pytest.raises(ConfigError, match=r"--init text:\.\.\. needs the model's tokenizer"):
        apply_prompt_tuning(model, init="text:hello", name="other")


def greedy_by_recompute(model, ids: list[int], steps: int) -> list[int]:
    """Greedy decoding by re-running the whole (prompt-tuned) model at each step: no cache, no engine."""
    out: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=torch.tensor([ids + out])).logits
            out.append(int(logits[0, -1].argmax()))
    return out


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_engine_decodes_with_the_soft_prompt(tiny_tok, precision: str) -> None:
    """The KV-cache engine with prefix_embeds=soft_prompt(model) gives the tokens of a cache-free greedy loop
        over the hooked model, on the fused and on transformers' forward; the engine takes the model's active prompt
    by default; without the prompt (adapters disabled) the tokens differ."""
    from tiny import tiny_llama

    model = tiny_llama(len(tiny_tok), seed=2)
    torch.manual_seed(0)
    apply_prompt_tuning(model, virtual_tokens=N, init="random", train=False)
    ids = tiny_tok("The capital of France is")["input_ids"]
    expected = greedy_by_recompute(model, ids, 8)
    engine = Engine(model, tiny_tok, precision=precision)
    config = GenerationConfig(greedy=True, max_new_tokens=8, ignore_eos=True)
    with_prompt = engine.generate([ids, ids[:3]], config, prefix_embeds=soft_prompt(model))
    assert with_prompt[0].token_ids == expected
    assert with_prompt[1].token_ids == greedy_by_recompute(model, ids[:3], 8)  # a left-padded row
    assert engine.generate([ids], config)[0].token_ids == expected  # the active soft prompt by default
    with disable_adapters(model):
        assert engine.generate([ids], config)[0].token_ids != expected


def test_seq2seq_engine_decodes_with_the_soft_prompt() -> None:
    """Encoder-decoder: the soft prompt goes before the encoder input; the engine equals a cache-free loop."""
    model = KINDS["encoder-decoder"].model()
    torch.manual_seed(0)
    apply_prompt_tuning(model, virtual_tokens=N, train=False)

    class Tok:  # the engine only needs ids in, and decoding of ids out
        pad_token_id, eos_token_id, bos_token = 3, 2, None

        def decode(self, ids, **_: object) -> str:
            return " ".join(map(str, ids))

    ids = IDS[0].tolist()
    expected: list[int] = []
    with torch.no_grad():
        for _ in range(6):
            decoder = torch.tensor([[3, *expected]])
            logits = model(input_ids=torch.tensor([ids]), decoder_input_ids=decoder).logits
            expected.append(int(logits[0, -1].argmax()))
    engine = Engine(model, Tok(), kind="encoder-decoder")
    config = GenerationConfig(greedy=True, max_new_tokens=6, ignore_eos=True)
    assert engine.generate([ids], config, prefix_embeds=soft_prompt(model))[0].token_ids == expected
    assert engine.generate([ids], config)[0].token_ids == expected  # the active soft prompt by default
    with disable_adapters(model):
        assert engine.generate([ids], config)[0].token_ids != expected
    assert model.config.vocab_size == VOCAB
