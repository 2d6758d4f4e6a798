"""Trainable vs total parameters, for one model and for each PEFT method on it.

    trainable% = 100 * trainable / total       total counts every distinct tensor once (tied weights once),
                                               the adapter's own tensors included, as peft's
                                               `print_trainable_parameters` does

The per-method table adds each method with its default settings to the same model, counts, and removes it
again (the model is left as it was, requires_grad flags included).
Tests: tests/peft/test_report.py (hand-counted parameters of a tiny Llama).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from llmlab.peft.registry import active_adapter, delete_adapter, list_adapters


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameters of a model set up for one method."""

    method: str
    trainable: int
    total: int
    setting: str = ""

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0

    def line(self) -> str:
        """peft's format: `trainable params: 1,024 || all params: 99,000 || trainable%: 1.0343`."""
        return f"trainable params: {self.trainable:,} || all params: {self.total:,} || trainable%: {self.percent:.4f}"


def count_parameters(model: nn.Module) -> ParameterCount:
    """Parameters with requires_grad vs all of them, under the active adapter's method ("full" if none)."""
    params = list(model.parameters())  # distinct tensors: tied weights count once
    info = active_adapter(model)
    return ParameterCount(
        info.method if info is not None else "full",
        sum(p.numel() for p in params if p.requires_grad),
        sum(p.numel() for p in params),
    )


def method_table(
    model: nn.Module,
    rank: int = 8,
    bottleneck: int = 0,
    virtual_tokens: int = 20,
    selective: str = "norms",
) -> list[ParameterCount]:
    """One ParameterCount per method (full, lora, adapters, prompt-tuning, selective) on this model."""
    from llmlab.peft.adapters import apply_adapters
    from llmlab.peft.inject import apply_lora
    from llmlab.peft.prompt_tuning import apply_prompt_tuning
    from llmlab.peft.selective import select_parameters

    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    total = sum(p.numel() for p in model.parameters())
    rows = [ParameterCount("full", total, total, "every weight")]
    setups = [
        ("lora", f"r={rank}, query+value", lambda: apply_lora(model, rank=rank, alpha=2 * rank, name="_count")),
        ("adapters", "bottleneck {}", lambda: apply_adapters(model, bottleneck, name="_count")),
        ("prompt-tuning", f"{virtual_tokens} virtual tokens", lambda: apply_prompt_tuning(model, virtual_tokens, name="_count")),
        ("selective", selective, lambda: select_parameters(model, selective, name="_count")),
    ]  # fmt: skip
    try:
        for method, setting, setup in setups:
            setup()
            count = count_parameters(model)
            if method == "adapters":  # the size it chose (0: the hidden size / 16)
                setting = setting.format(list_adapters(model)["_count"].config.bottleneck)
            rows.append(ParameterCount(method, count.trainable, count.total, setting))
            delete_adapter(model, "_count")
    finally:
        for name, param in model.named_parameters():
            param.requires_grad_(flags.get(name, False))
    return rows
