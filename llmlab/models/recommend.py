"""Choosing a model: how big, and the cheapest way to adapt it, for a task and a machine's memory.

The size guidance:

    ~1B parameters    pattern matching and basic world knowledge     e.g. sentiment of restaurant reviews
    ~10B parameters   more world knowledge, follows basic instructions  e.g. a food-ordering chatbot
    100B+ parameters  rich world knowledge and complex reasoning     e.g. a brainstorming partner

The task description is matched against `RULES`, a table of keyword stems (a stem matches at the start of a
word, case-insensitively). Every matching rule names the smallest size its need calls for and, where it has
one, the adaptation it calls for. The recommendation takes the largest size and the most expensive
adaptation among the matches (adaptations from cheapest: prompting, RAG, PEFT/LoRA, full fine-tuning), then
checks memory: weights in bf16 (2 bytes a parameter) must fit, else int8 (1) or 4-bit (0.5); full
fine-tuning needs about 16 bytes a parameter (fp32 weights, gradients and two AdamW moments), and when that
does not fit LoRA is suggested instead (frozen bf16 weights, under 1% of the parameters trained). Each
figure is multiplied by `OVERHEAD` for activations and the KV cache. `llmlab models info` gives exact
figures for a model you have.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Literal

from llmlab.errors import ConfigError
from llmlab.models.registry import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDER

Adaptation = Literal["prompting", "RAG", "PEFT (LoRA)", "full fine-tuning"]
ADAPTATIONS: tuple[Adaptation, ...] = ("prompting", "RAG", "PEFT (LoRA)", "full fine-tuning")
OVERHEAD = 1.2
"""Memory beyond the weights and optimizer (activations, KV cache), as a factor."""


@dataclass(frozen=True)
class SizeTier:
    """One step of the size guidance."""

    label: str
    parameters: int
    capability: str
    example: str


SIZES: tuple[SizeTier, ...] = (
    SizeTier("~1B", 10**9, "pattern matching and basic world knowledge", "sentiment of restaurant reviews"),
    SizeTier("~10B", 10**10, "more world knowledge, follows basic instructions", "a food-ordering chatbot"),
    SizeTier("100B+", 10**11, "rich world knowledge and complex reasoning", "a brainstorming partner"),
)


@dataclass(frozen=True)
class Rule:
    """Keyword stems that reveal one need of a task, and what that need calls for."""

    need: str
    stems: tuple[str, ...]
    size: int
    """Index into SIZES: the smallest model this need calls for."""
    adaptation: Adaptation | None
    why: str


RULES: tuple[Rule, ...] = (
    Rule(
        "classification",
        ("sentiment", "classif", "label", "categor", "spam", "topic", "detect", "extract", "tag", "intent"),
        0,
        "prompting",
        "pattern matching: a ~1B model does it from instructions and a few examples in the prompt",
    ),
    Rule(
        "instructions and dialogue",
        ("chat", "assistant", "order", "customer", "booking", "follow", "instruction", "convers"),
        1,
        None,
        "holding a conversation and following instructions needs the world knowledge of ~10B",
    ),
    Rule(
        "reasoning",
        (
            "brainstorm",
            "reason",
            "plan",
            "strateg",
            "creative",
            "idea",
            "research",
            "complex",
            "analy",
            "math",
        ),
        2,
        None,
        "open-ended reasoning and rich world knowledge come only with 100B+ parameters",
    ),
    Rule(
        "private knowledge",
        (
            "pdf",
            "document",
            "internal",
            "knowledge base",
            "wiki",
            "manual",
            "polic",
            "faq",
            "handbook",
        ),
        1,
        "RAG",
        "facts the model never saw in training: retrieve them at question time and cite the sources",
    ),
    Rule(
        "style",
        ("style", "tone", "voice", "brand", "persona", "format", "write like", "in our"),
        0,
        "PEFT (LoRA)",
        "a consistent style is learned from a few hundred examples; a LoRA adapter is a few MB",
    ),
    Rule(
        "new domain or language",
        (
            "new language",
            "domain-specific",
            "medical",
            "legal",
            "jargon",
            "dialect",
            "specialis",
            "specializ",
        ),
        0,
        "full fine-tuning",
        "much new vocabulary or knowledge to absorb: train all the weights, if memory allows",
    ),
)

BYTES_PER_PARAMETER: dict[Adaptation, float] = {
    "prompting": 2.0,
    "RAG": 2.0,
    "PEFT (LoRA)": 2.0,
    "full fine-tuning": 16.0,
}
"""Bytes a parameter for each adaptation: bf16 weights to run; fp32 weights + grads + AdamW to fully train."""
WEIGHT_FORMATS: tuple[tuple[str, float], ...] = (("bf16", 2.0), ("int8", 1.0), ("4-bit", 0.5))


@dataclass(frozen=True)
class Recommendation:
    """What to use, and why; `reasons` is (aspect, choice, why) rows."""

    task: str
    memory_gb: float
    size: SizeTier
    adaptation: Adaptation
    weights: str
    """The weight format that fits: bf16, int8, 4-bit, or `none fits`."""
    packaged: list[tuple[str, str]]
    """(name, why) of the packaged models that fit; empty when none is large enough."""
    matched: list[str]
    reasons: list[tuple[str, str, str]] = field(default_factory=list)


@dataclass
class RecommendConfig:
    """The inputs of `llmlab models recommend`."""

    task: str = ""
    """What the model should do, in plain words, e.g. "answer questions about our internal PDFs"."""
    memory_gb: float | None = None
    """Memory to plan for, in GB (default: this machine's total RAM)."""

    def __post_init__(self) -> None:
        if not self.task.strip():
            raise ConfigError('--task must describe the task, e.g. --task "sentiment of restaurant reviews"')
        if self.memory_gb is not None and self.memory_gb <= 0:
            raise ConfigError(f"--memory-gb must be positive, got {self.memory_gb}")


def total_memory_gb() -> float:
    """This machine's physical memory in GB (10^9 bytes)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError) as e:
        raise ConfigError("cannot detect this machine's memory; pass --memory-gb") from e


def matching_rules(task: str) -> list[Rule]:
    """The rules whose keyword stems appear in `task` (at the start of a word, any case)."""
    text = task.lower()
    return [r for r in RULES if any(re.search(rf"\b{re.escape(s)}", text) for s in r.stems)]


def needed_gb(adaptation: Adaptation, parameters: int, bytes_per_weight: float | None = None) -> float:
    """Memory in GB to run or train `parameters` with `adaptation` (see the module docstring)."""
    per = BYTES_PER_PARAMETER[adaptation] if bytes_per_weight is None else bytes_per_weight
    return parameters * per * OVERHEAD / 1e9


def _fit_weights(size: SizeTier, memory_gb: float) -> tuple[str, float]:
    for name, per in WEIGHT_FORMATS:
        if needed_gb("prompting", size.parameters, per) <= memory_gb:
            return name, per
    return "none fits", WEIGHT_FORMATS[-1][1]


def _packaged(size_index: int, adaptation: Adaptation) -> list[tuple[str, str]]:
    """(name, why) for each packaged model that serves this recommendation."""
    models = []
    if size_index == 0:
        models.append((DEFAULT_CHAT_MODEL, "135M, below ~1B: try it first with few-shot prompts"))
    if adaptation == "RAG":
        models.append((DEFAULT_EMBEDDER, "the embedder for retrieval"))
    return models


def recommend(task: str, memory_gb: float | None = None) -> Recommendation:
    """Suggest a model size, an adaptation and a weight format for `task` on a machine with `memory_gb`.

    Raises:
        ConfigError: empty task or non-positive memory.
    """
    RecommendConfig(task, memory_gb)  # validates
    source = "given (--memory-gb)" if memory_gb is not None else "detected (total RAM)"
    memory = memory_gb if memory_gb is not None else total_memory_gb()
    rules = matching_rules(task)
    size_index = max((r.size for r in rules), default=1)
    size = SIZES[size_index]
    wanted = [r.adaptation for r in rules if r.adaptation is not None]
    adaptation: Adaptation = max(wanted, key=ADAPTATIONS.index, default="prompting")
    reasons = [
        (f"need: {r.need}", SIZES[r.size].label + (f", {r.adaptation}" if r.adaptation else ""), r.why)
        for r in rules
    ]
    if not rules:
        reasons.append(
            ("need", size.label, "no rule matched: a general instruction-following model is the safe default")
        )
    reasons.append(("size", size.label, f"{size.capability} (e.g. {size.example})"))
    adaptation = _check_training_memory(adaptation, size, memory, reasons)
    weights, _ = _fit_weights(size, memory)
    reasons.append(("memory", f"{memory:.1f} GB {source}", _weights_reason(weights, size, memory)))
    packaged = _packaged(size_index, adaptation)
    reasons.append(
        ("packaged model", ", ".join(name for name, _ in packaged) or "none", _packaged_reason(packaged))
    )
    return Recommendation(task, memory, size, adaptation, weights, packaged, [r.need for r in rules], reasons)


def _check_training_memory(
    adaptation: Adaptation, size: SizeTier, memory: float, reasons: list[tuple[str, str, str]]
) -> Adaptation:
    if adaptation != "full fine-tuning":
        reasons.append(("adaptation", adaptation, _ADAPTATION_WHY[adaptation]))
        return adaptation
    need = needed_gb("full fine-tuning", size.parameters)
    if need <= memory:
        reasons.append(("adaptation", adaptation, f"needs about {need:,.0f} GB and {memory:.1f} GB is there"))
        return adaptation
    reasons.append(
        (
            "adaptation",
            "PEFT (LoRA)",
            f"full fine-tuning of {size.label} needs about {need:,.0f} GB (16 bytes a parameter); "
            f"only {memory:.1f} GB: LoRA trains under 1% of the weights on top of frozen ones",
        )
    )
    return "PEFT (LoRA)"


_ADAPTATION_WHY: dict[Adaptation, str] = {
    "prompting": "the cheapest: instructions and a few examples in the prompt, no training",
    "RAG": "no training: retrieve passages from your documents and put them in the prompt",
    "PEFT (LoRA)": "trains small adapters (under 1% of the weights) on your examples",
    "full fine-tuning": "",
}


def _weights_reason(weights: str, size: SizeTier, memory: float) -> str:
    if weights == "none fits":
        need = needed_gb("prompting", size.parameters, WEIGHT_FORMATS[-1][1])
        return (
            f"even 4-bit weights of {size.label} need about {need:,.0f} GB: serve it elsewhere or go smaller"
        )
    per = dict(WEIGHT_FORMATS)[weights]
    return (
        f"{weights} weights of {size.label} need about {needed_gb('prompting', size.parameters, per):,.1f} GB"
    )


def _packaged_reason(packaged: list[tuple[str, str]]) -> str:
    if not packaged:
        return "no packaged model is this large: use a local checkpoint folder or .gguf file"
    return "; ".join(f"{name}: {why}" for name, why in packaged)
