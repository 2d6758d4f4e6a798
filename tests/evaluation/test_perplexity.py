"""Perplexity equals exp of the mean token negative log-likelihood computed independently (plain forward pass,
log_softmax, gather), with and without sliding windows."""

from __future__ import annotations

import math

import pytest
import torch

from llmlab.errors import ConfigError, DataError
from llmlab.evaluation.metrics.perplexity import PerplexityConfig, perplexity

TEXTS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Language models predict the next token.",
    "Question: what is two plus two? Answer: four.",
]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny forward passes are fastest on one thread (and on a busy machine two threads spin against each other)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def token_ids(tok, text: str) -> list[int]:
    return [tok.bos_token_id, *tok(text, add_special_tokens=False)["input_ids"]]


def full_context_nll(model, ids: list[int]) -> list[float]:
    """-log p(x_p | x_<p) for p = 1..n-1 from one forward pass over the whole sequence."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return [-logp[p - 1, ids[p]].item() for p in range(1, len(ids))]


def windowed_nll(model, ids: list[int], max_length: int, stride: int) -> list[float]:
    """Token p is in chunk c = (p - 1) // stride, which ends at e = min(1 + (c + 1) * stride, n); its window
    starts at max(0, e - max_length). One forward pass per token, nothing shared with the library code."""
    out = []
    for p in range(1, len(ids)):
        end = min(1 + ((p - 1) // stride + 1) * stride, len(ids))
        begin = max(0, end - max_length)
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids[begin:end]])).logits[0].double(), dim=-1)
        out.append(-logp[p - 1 - begin, ids[p]].item())
    return out


def test_matches_independent_nll(tiny_model, tiny_tok) -> None:
    nll = [full_context_nll(tiny_model, token_ids(tiny_tok, t)) for t in TEXTS]
    tokens = sum(map(len, nll))
    expected = math.exp(sum(map(sum, nll)) / tokens)
    result = perplexity(tiny_model, tiny_tok, TEXTS)
    assert result.tokens == tokens
    assert result.perplexity == pytest.approx(expected, rel=1e-5)
    assert result.text_tokens == [len(x) for x in nll]


def test_sliding_window_matches_independent_nll(tiny_model, tiny_tok) -> None:
    ids = token_ids(tiny_tok, TEXTS[0] + " " + TEXTS[2])
    assert len(ids) > 20
    expected = math.exp(sum(windowed_nll(tiny_model, ids, 8, 3)) / (len(ids) - 1))
    result = perplexity(
        tiny_model, tiny_tok, [TEXTS[0] + " " + TEXTS[2]], PerplexityConfig(max_length=8, stride=3)
    )
    assert result.perplexity == pytest.approx(expected, rel=1e-5)


def test_window_covering_the_text_equals_full_context(tiny_model, tiny_tok) -> None:
    """With max_length above the text length every window starts at 0: stride changes nothing."""
    full = perplexity(tiny_model, tiny_tok, TEXTS[1:2])
    step = perplexity(tiny_model, tiny_tok, TEXTS[1:2], PerplexityConfig(max_length=200, stride=2))
    assert step.perplexity == pytest.approx(full.perplexity, rel=1e-5)


def test_without_bos_the_first_token_is_not_scored(tiny_model, tiny_tok) -> None:
    with_bos = perplexity(tiny_model, tiny_tok, TEXTS[:1])
    without = perplexity(tiny_model, tiny_tok, TEXTS[:1], PerplexityConfig(add_bos=False))
    assert without.tokens == with_bos.tokens - 1


def test_bad_settings_are_refused(tiny_model, tiny_tok) -> None:
    with pytest.raises(ConfigError, match="--stride"):
        PerplexityConfig(max_length=8, stride=8)
    with pytest.raises(ConfigError, match="exceeds the model's context of 256"):
        perplexity(tiny_model, tiny_tok, TEXTS, PerplexityConfig(max_length=512))
    with pytest.raises(DataError, match="no text has a token"):
        perplexity(tiny_model, tiny_tok, [""], PerplexityConfig(add_bos=False))


@pytest.mark.slow
def test_smollm_prefers_natural_text(smollm) -> None:
    """SmolLM2 on English: equal to the independent computation, and far lower than on the same words
    shuffled (a model that has learned English; a random one would not care about the order)."""
    natural = "The capital of France is Paris. It is known for the Eiffel Tower and its museums."
    words = natural.split()
    shuffled = " ".join(words[i] for i in (5, 0, 12, 3, 9, 1, 14, 7, 2, 11, 4, 13, 6, 10, 8))
    tok = smollm.tokenizer
    start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
    ids = [start, *tok(natural, add_special_tokens=False)["input_ids"]]
    expected = math.exp(sum(full_context_nll(smollm.model, ids)) / (len(ids) - 1))
    result = perplexity(smollm.model, tok, [natural])
    assert result.perplexity == pytest.approx(expected, rel=1e-4)
    assert result.perplexity < 30
    assert perplexity(smollm.model, tok, [shuffled]).perplexity > 3 * result.perplexity
