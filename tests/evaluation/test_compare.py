"""Comparing runs: paired bootstrap of the difference, pairing by id or position, refusing different data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from harness_fakes import ScriptedEngine, write_jsonl

from llmlab.errors import ConfigError, DataError
from llmlab.evaluation.compare import compare_runs, load_run, paired_bootstrap
from llmlab.evaluation.harness import EvalRun, RunInfo, evaluate
from llmlab.evaluation.report import comparison_markdown, comparison_rows
from llmlab.evaluation.scoring import METRICS
from llmlab.evaluation.task import load_task, read_items
from llmlab.generation import GenerationConfig

GREEDY = GenerationConfig(greedy=True, max_new_tokens=16)


def test_identical_runs_differ_by_exactly_zero() -> None:
    scores = np.array([0.0, 1.0, 0.5, 0.25, 1.0])
    diff = paired_bootstrap("rouge1", scores, scores.copy())
    assert (diff.value, diff.low, diff.high) == (0.0, 0.0, 0.0)
    stats = np.array([[3, 4, 2, 1, 0, 0, 3, 2, 1, 0], [5, 5, 4, 3, 2, 1, 5, 4, 3, 2]], dtype=float)
    diff = paired_bootstrap("bleu", stats, stats.copy())
    assert (diff.value, diff.low, diff.high) == (0.0, 0.0, 0.0)


def test_clearly_better_run_has_a_ci_above_zero() -> None:
    """20 items: the baseline gets 5 right, the other run those 5 and 13 more: difference 13/20 = 0.65. Every
    resample of 20 items keeps the difference a mean of 0s and 1s with 13/20 ones on average; the 95% interval
    lies well above 0 (its low end is above 0.4)."""
    base = np.array([1.0] * 5 + [0.0] * 15)
    better = np.array([1.0] * 18 + [0.0] * 2)
    diff = paired_bootstrap("rouge1", base, better, resamples=2000, seed=1)
    assert diff.value == pytest.approx(0.65)
    assert 0.4 < diff.low < 0.65 < diff.high < 0.9


def test_mixed_difference_has_a_ci_around_zero_and_is_seeded() -> None:
    """Each run wins 5 items and loses 5 of 20: difference 0, and the interval straddles 0."""
    base = np.array([1.0] * 5 + [0.0] * 5 + [1.0] * 5 + [0.0] * 5)
    other = np.array([0.0] * 5 + [1.0] * 5 + [1.0] * 5 + [0.0] * 5)
    first = paired_bootstrap("rouge1", base, other, resamples=500, seed=3)
    assert first.value == 0.0 and first.low < 0 < first.high
    assert paired_bootstrap("rouge1", base, other, resamples=500, seed=3) == first
    assert paired_bootstrap("rouge1", base, other, resamples=500, seed=4) != first


def test_corpus_metric_resample_recomputes_the_corpus_score() -> None:
    """Summed BLEU statistics of a resample (what the bootstrap draws) equal corpus BLEU over the resampled
    sentences, duplicates included."""
    from llmlab.evaluation.metrics.bleu import corpus_bleu

    preds = ["the cat sat on the mat", "it rains today", "hello everyone here", "a b c d e"]
    refs = [["the cat is on the mat"], ["it is raining today"], ["hello everyone"], ["a b c d f"]]
    bleu = METRICS["bleu"]
    rows = bleu.rows(bleu.item_values(preds, refs))
    for draw in ([0, 0, 2, 3], [1, 2, 3, 3]):
        expected = corpus_bleu([preds[i] for i in draw], [refs[i] for i in draw]).score
        assert bleu.from_sums(rows[draw].sum(axis=0), len(draw)) == pytest.approx(expected, abs=1e-9)


def _run(tmp_path, tiny_tok, records, outputs, name, task="summarize"):
    spec = load_task(task)
    data = write_jsonl(tmp_path / f"{name}.jsonl", records)
    engine = ScriptedEngine(tiny_tok, outputs)
    return evaluate(engine, spec, read_items(data, spec), GREEDY, info=RunInfo(model=name, name=name))


RECORDS = [{"id": f"q{i}", "input": f"story {i}.", "reference": f"alpha beta gamma {i}"} for i in range(6)]


def test_compare_pairs_by_id_whatever_the_order(tmp_path, tiny_tok) -> None:
    """Run b is over the same records in reverse order and answers items q0..q2 perfectly: ROUGE-1 rises from
    the baseline's (for "alpha" only: P = 1, R = 1/4, F = 0.4) to 1 on three items of six, +0.3 in the mean."""
    a = _run(tmp_path, tiny_tok, RECORDS, {f"story {i}.": "alpha" for i in range(6)}, "a")
    answers_b = {f"story {i}.": (f"alpha beta gamma {i}" if i < 3 else "alpha") for i in range(6)}
    b = _run(tmp_path, tiny_tok, RECORDS[::-1], answers_b, "b")
    comparison = compare_runs([a, b], resamples=300)
    row = comparison.rows[0]
    assert [r.metric for r in comparison.rows] == ["rouge1", "rouge2", "rougeL"]
    assert comparison.paired_by == "id" and comparison.names == ["a", "b"] and comparison.items == 6
    assert row.values == pytest.approx([0.4, 0.7])
    assert row.differences[0].value == pytest.approx(0.3)
    assert 0 <= row.differences[0].low <= 0.3 <= row.differences[0].high <= 0.6
    cells = comparison_rows(comparison)[0]
    assert cells[:4] == ["rouge1", "0.4000", "0.7000", "+0.3000"]
    markdown = comparison_markdown(comparison)
    assert (
        "| metric | a | b | Δ | 95% CI |" in markdown
        and "| rouge1 | 0.4000 | 0.7000 | +0.3000 | [" in markdown
    )
    assert "paired bootstrap over 6 items paired by id, 300 resamples, seed 0" in markdown


def test_runs_over_different_data_are_refused(tmp_path, tiny_tok) -> None:
    outputs = {f"story {i}.": "alpha" for i in range(6)}
    a = _run(tmp_path, tiny_tok, RECORDS, outputs, "a")
    fewer = _run(tmp_path, tiny_tok, RECORDS[:4], outputs, "fewer")
    with pytest.raises(ConfigError, match=r"runs over different data \(ids only in a: q4, q5\)"):
        compare_runs([a, fewer])
    changed = [dict(r) for r in RECORDS]
    changed[2]["reference"] = "something else"
    other = _run(tmp_path, tiny_tok, changed, outputs, "other")
    with pytest.raises(
        ConfigError, match=r"runs over different data: item q2 \(line 3\) differs between a and other"
    ):
        compare_runs([a, other])
    no_ids = [{k: v for k, v in r.items() if k != "id"} for r in RECORDS]
    p1 = _run(tmp_path, tiny_tok, no_ids, outputs, "p1")
    p2 = _run(tmp_path, tiny_tok, no_ids[:5], outputs, "p2")
    with pytest.raises(ConfigError, match="runs over different data: p1 has 6 items, p2 has 5"):
        compare_runs([p1, p2])
    assert compare_runs([p1, p1]).paired_by == "position"


def test_three_runs_and_shared_metrics(tmp_path, tiny_tok) -> None:
    outputs = {f"story {i}.": "alpha beta" for i in range(6)}
    a = _run(tmp_path, tiny_tok, RECORDS, outputs, "a")
    comparison = compare_runs([a, a, a], resamples=50)
    assert comparison.names == ["1: a", "2: a", "3: a"]
    assert [d.value for d in comparison.rows[0].differences] == [0.0, 0.0]
    translated = dataclasses.replace(a, metrics={"bleu": 1.0})
    with pytest.raises(ConfigError, match="the runs share no metric"):
        compare_runs([a, translated])


def test_load_run_errors(tmp_path, tiny_tok) -> None:
    with pytest.raises(ConfigError, match="results file not found"):
        load_run(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "format": \n')
    with pytest.raises(DataError, match=r"bad.json:3: invalid JSON"):
        load_run(bad)
    bad.write_text(json.dumps({"format": "llmlab-eval/1", "task": "x"}))
    with pytest.raises(ConfigError, match=r"bad\.json: malformed results file"):
        load_run(bad)
    run = _run(tmp_path, tiny_tok, RECORDS, {f"story {i}.": "alpha" for i in range(6)}, "a")
    good = tmp_path / "good.json"
    good.write_text(json.dumps(run.to_json()))
    assert load_run(good) == run and isinstance(load_run(good), EvalRun)
