"""Choosing a model: the seed's three size examples, adaptations from the rule table, memory limits, the CLI."""

from __future__ import annotations

import json
import os

import pytest

from llmlab.cli import main
from llmlab.errors import ConfigError
from llmlab.models.recommend import (
    ADAPTATIONS,
    RULES,
    SIZES,
    matching_rules,
    needed_gb,
    recommend,
    total_memory_gb,
)


@pytest.mark.parametrize(
    ("task", "size", "adaptation"),
    [
        ("sentiment of restaurant reviews", "~1B", "prompting"),
        ("a food-ordering chatbot", "~10B", "prompting"),
        ("a brainstorming partner", "100B+", "prompting"),
        ("answer questions about our internal PDFs", "~10B", "RAG"),
        ("write in our company style", "~1B", "PEFT (LoRA)"),
        ("classify support tickets by topic", "~1B", "prompting"),
        ("a customer support assistant that answers from our product manuals", "~10B", "RAG"),
        ("learn medical jargon for clinical notes", "~1B", "full fine-tuning"),
    ],
)
def test_task_to_size_and_adaptation(task, size, adaptation):
    rec = recommend(task, memory_gb=1000)
    assert (rec.size.label, rec.adaptation) == (size, adaptation)


def test_full_fine_tuning_that_does_not_fit_falls_back_to_lora():
    """~1B parameters × 16 bytes × 1.2 overhead = 19.2 GB: fits in 64 GB, not in 8 GB."""
    assert needed_gb("full fine-tuning", 10**9) == pytest.approx(19.2)
    assert recommend("learn medical jargon", memory_gb=64).adaptation == "full fine-tuning"
    small = recommend("learn medical jargon", memory_gb=8)
    assert small.adaptation == "PEFT (LoRA)"
    _, choice, why = next(r for r in small.reasons if r[0] == "adaptation")
    assert choice == "PEFT (LoRA)" and "needs about 19 GB" in why and "only 8.0 GB" in why


@pytest.mark.parametrize(
    ("memory_gb", "weights"),
    [(32, "bf16"), (16, "int8"), (8, "4-bit"), (4, "none fits")],
)
def test_weight_format_follows_memory(memory_gb, weights):
    """~10B at 1.2× overhead: bf16 24 GB, int8 12 GB, 4-bit 6 GB."""
    assert recommend("a food-ordering chatbot", memory_gb=memory_gb).weights == weights


def test_packaged_models_named_when_they_fit():
    assert [n for n, _ in recommend("sentiment of restaurant reviews", 16).packaged] == [
        "smollm2-135m-instruct"
    ]
    assert [n for n, _ in recommend("answer questions about our internal PDFs", 16).packaged] == ["minilm-l6"]
    assert recommend("a brainstorming partner", 16).packaged == []


def test_unmatched_task_gets_the_general_default_and_says_so():
    rec = recommend("translate poems into French", memory_gb=64)
    assert (rec.size.label, rec.adaptation, rec.matched) == ("~10B", "prompting", [])
    assert any("no rule matched" in why for _, _, why in rec.reasons)


def test_stems_match_at_word_starts_only():
    assert [r.need for r in matching_rules("Classifying e-mails")] == ["classification"]
    assert matching_rules("unclassified ramblings") == []  # "classif" inside a word does not count


def test_rule_table_is_well_formed():
    for rule in RULES:
        assert 0 <= rule.size < len(SIZES)
        assert rule.adaptation is None or rule.adaptation in ADAPTATIONS
        assert all(stem == stem.lower() for stem in rule.stems)


def test_bad_input_is_refused():
    with pytest.raises(ConfigError, match="--task must describe the task"):
        recommend("   ")
    with pytest.raises(ConfigError, match="--memory-gb must be positive, got -2"):
        recommend("chatbot", memory_gb=-2)


def test_detected_memory_is_this_machines_ram():
    expected = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    assert total_memory_gb() == expected
    rec = recommend("sentiment of restaurant reviews")
    assert rec.memory_gb == expected
    assert ("memory", f"{expected:.1f} GB detected (total RAM)") == next(
        r for r in rec.reasons if r[0] == "memory"
    )[:2]


def test_cli_recommend_json(capsys):
    argv = ["models", "recommend", "--task", "write in our company style", "--memory-gb", "16", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["size"], data["adaptation"], data["weights"]) == ("~1B", "PEFT (LoRA)", "bf16")
    assert data["matched"] == ["style"] and data["packaged"] == ["smollm2-135m-instruct"]


def test_cli_recommend_table_and_error(capsys):
    assert main(["models", "recommend", "--task", "a brainstorming partner", "--memory-gb", "32"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Suggested: a 100B+ model, none fits weights, adapted by prompting.")
    assert main(["models", "recommend", "--memory-gb", "8"]) == 2
    assert capsys.readouterr().err.startswith("error: --task must describe the task")
