"""Samplers: parity with transformers' logits processors, hand-derived cases, and sampling statistics."""

from __future__ import annotations

import pytest
import torch
from scipy import stats
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from llmlab.errors import ConfigError
from llmlab.generation.sampling import (
    SamplingParams,
    choose_tokens,
    make_generators,
    min_p_filter,
    process_logits,
    sample,
    top_k_filter,
    top_p_filter,
)

SETTINGS = [
    dict(temperature=0.7, top_k=10),
    dict(temperature=1.3, top_p=0.8),
    dict(temperature=1.0, min_p=0.05),
    dict(temperature=0.5, top_k=20, top_p=0.9, min_p=0.02),
    dict(temperature=1.0, top_k=1),
    dict(temperature=2.0, top_p=0.3, repetition_penalty=1.3),
]


def hf_processors(p: SamplingParams) -> LogitsProcessorList:
    procs = LogitsProcessorList()
    if p.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(p.repetition_penalty))
    if p.temperature != 1.0:
        procs.append(TemperatureLogitsWarper(p.temperature))
    if p.top_k:
        procs.append(TopKLogitsWarper(p.top_k))
    if p.top_p < 1.0:
        procs.append(TopPLogitsWarper(p.top_p))
    if p.min_p:
        procs.append(MinPLogitsWarper(p.min_p))
    return procs


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("seed", range(5))
def test_filters_match_transformers_processors(setting: dict, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(4, 300, generator=g) * 3
    previous = torch.randint(0, 300, (4, 12), generator=g)
    seen = torch.zeros(4, 300, dtype=torch.bool)
    seen.scatter_(1, previous, True)
    params = SamplingParams(**setting)
    ours = process_logits(logits.clone(), params, seen)
    ref = hf_processors(params)(previous, logits.clone())
    assert torch.equal(torch.isinf(ours), torch.isinf(ref)), "kept-token sets differ"
    kept = ~torch.isinf(ref)
    torch.testing.assert_close(ours[kept], ref[kept])


def test_top_k_keeps_ties_like_transformers() -> None:
    """Logits [3, 2, 2, 1] with k=2: the 2nd largest is 2, and both 2s are kept (3 tokens survive)."""
    out = top_k_filter(torch.tensor([[3.0, 2.0, 2.0, 1.0]]), 2)
    assert torch.isinf(out).tolist() == [[False, False, False, True]]


def test_top_p_hand_case() -> None:
    """Probabilities [0.5, 0.3, 0.15, 0.05], p = 0.8: ascending cumulative mass 0.05, 0.20, 0.50, 1.0;
    tokens with cumulative <= 0.2 are removed (0.05 and 0.15), leaving {0.5, 0.3} whose mass is 0.8."""
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isinf(top_p_filter(logits, 0.8)).tolist() == [[False, False, True, True]]


def test_min_p_hand_case() -> None:
    """Top probability 0.5, min_p 0.2 -> threshold 0.1: 0.05 is dropped, 0.15 is kept."""
    logits = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()
    assert torch.isinf(min_p_filter(logits, 0.2)).tolist() == [[False, False, False, True]]


def test_temperature_zero_equals_argmax() -> None:
    logits = torch.randn(6, 50, generator=torch.Generator().manual_seed(1))
    params = SamplingParams(temperature=0.0, top_k=3)
    tokens = choose_tokens(logits, params, make_generators(0, 6))
    assert tokens.tolist() == logits.argmax(-1).tolist()


@pytest.mark.parametrize(
    "setting",
    [
        dict(temperature=1.0),
        dict(temperature=0.6, top_k=5),
        dict(temperature=1.5, top_p=0.7),
        dict(min_p=0.1),
    ],
)
def test_sampling_frequencies_follow_filtered_distribution(setting: dict) -> None:
    """Chi-square goodness of fit: 20,000 draws match softmax(filtered logits / T); removed tokens never occur."""
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0]])
    params = SamplingParams(**setting)
    processed = process_logits(logits, params)
    expected = processed.softmax(-1)[0]
    draws = 20_000
    generator = make_generators(123, 1)[0]
    picks = sample(processed.expand(draws, -1), [generator] * draws)  # our sampler, one draw per row
    counts = torch.bincount(picks, minlength=8).float()
    kept = expected > 0
    assert counts[~kept].sum() == 0, "a filtered-out token was sampled"
    result = stats.chisquare(counts[kept].numpy(), (expected[kept] * draws).numpy())
    assert result.pvalue > 1e-3, result


def test_same_seed_same_tokens_and_rows_independent_of_batch() -> None:
    logits = torch.randn(3, 100, generator=torch.Generator().manual_seed(0))
    params = SamplingParams(temperature=1.0)
    a = choose_tokens(logits, params, make_generators(42, 3))
    b = choose_tokens(logits, params, make_generators(42, 3))
    assert a.tolist() == b.tolist()
    alone = choose_tokens(logits[2:], params, make_generators(44, 1))
    assert alone.tolist() == a[2:].tolist()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (dict(temperature=-0.1), "--temperature must be >= 0, got -0.1"),
        (dict(top_p=0.0), "--top-p must be in (0, 1], got 0.0"),
        (dict(top_p=1.5), "--top-p must be in (0, 1], got 1.5"),
        (dict(top_k=-1), "--top-k must be >= 0"),
        (dict(min_p=2.0), "--min-p must be in [0, 1], got 2.0"),
        (dict(repetition_penalty=0.0), "--repetition-penalty must be > 0"),
    ],
)
def test_bad_values_raise_clear_errors(setting: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        SamplingParams(**setting)
    assert message in str(err.value)
