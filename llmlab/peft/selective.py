"""Selective fine-tuning: train a chosen subset of the base model's own parameters, freeze the rest.

    θ = θ_frozen ∪ θ_S,   only θ_S (the selection S) gets gradients

Selections (combinable; each must select something):
- "bias": every bias (BitFit: Ben Zaken et al., 2022, arXiv:2106.10199). Llama-family models have none.
- "norms": the weights and biases of every normalisation layer (LayerNorm, RMSNorm, T5LayerNorm).
- "last-layers:N": every parameter of the last N blocks of the stack nearest the output (the decoder of an
  encoder-decoder model; the only stack otherwise). Heads are not included: add them by name.
- anything else: a regex searched in the parameter names (`re.search`: "classifier" selects
  classifier.weight and classifier.bias).

Trained values live in the base parameters themselves; the originals of the selected tensors are kept (only
those: a small copy) so the selection behaves as a named adapter: `disable_adapters` swaps the originals in
(RLHF's reference), several selective adapters can be loaded on one base and switched. Parameters shared by
tied modules (embeddings and lm_head) appear once, under their first name.
Tests: tests/peft/test_selective.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from llmlab.errors import ConfigError
from llmlab.peft.registry import AdapterInfo, check_new_name, register, set_active_adapter, set_trainable

LAST_LAYERS = re.compile(r"last-layers:(\d+)")


@dataclass(frozen=True)
class SelectiveConfig:
    """Selective training settings (the flags of `llmlab finetune selective`)."""

    train: tuple[str, ...] = ("bias",)
    """What trains: bias (BitFit), norms, last-layers:N, or a regex on parameter names; several allowed."""

    def __post_init__(self) -> None:
        if not self.train:
            raise ConfigError("--train is empty; give bias, norms, last-layers:N or a parameter-name regex")
        for spec in self.train:
            if spec.startswith("last-layers") and not (LAST_LAYERS.fullmatch(spec) and int(spec[12:]) > 0):
                raise ConfigError(
                    f"--train {spec!r}: write last-layers:N with N a positive integer, e.g. last-layers:2"
                )


def _is_norm(module: nn.Module) -> bool:
    return "norm" in type(module).__name__.lower()


def _blocks(model: nn.Module) -> tuple[str, int]:
    """(name of the block list nearest the output, its length): the last ModuleList of repeated blocks."""
    stacks = [
        (n, len(m))
        for n, m in model.named_modules()
        if isinstance(m, nn.ModuleList) and len(m) > 1 and len({type(b) for b in m}) == 1
    ]
    if not stacks:
        raise ConfigError(f"--train last-layers:N: {type(model).__name__} has no list of transformer blocks")
    return stacks[-1]


def _select(model: nn.Module, spec: str) -> list[str]:
    names = [n for n, _ in model.named_parameters()]
    if spec == "bias":
        return [n for n in names if n.rsplit(".", 1)[-1] == "bias"]
    if spec == "norms":
        prefixes = tuple(n + "." for n, m in model.named_modules() if n and _is_norm(m))
        return [n for n in names if n.startswith(prefixes)]
    match = LAST_LAYERS.fullmatch(spec)
    if match:
        stack, size = _blocks(model)
        count = int(match.group(1))
        if count > size:
            raise ConfigError(f"--train {spec}: the model has only {size} blocks in {stack}")
        prefixes = tuple(f"{stack}.{i}." for i in range(size - count, size))
        return [n for n in names if n.startswith(prefixes)]
    try:
        pattern = re.compile(spec)
    except re.error as e:
        raise ConfigError(f"--train {spec!r} is not a valid regex ({e}); escape special characters") from e
    return [n for n in names if pattern.search(n)]


def parameter_patterns(model: nn.Module, limit: int = 12) -> str:
    """Parameter names with block numbers replaced by N, for error messages."""
    seen: list[str] = []
    for name, _ in model.named_parameters():
        pattern = re.sub(r"\.\d+\.", ".N.", name)
        if pattern not in seen:
            seen.append(pattern)
    more = f", ... ({len(seen) - limit} more)" if len(seen) > limit else ""
    return ", ".join(seen[:limit]) + more


def find_parameters(model: nn.Module, train: Sequence[str]) -> list[str]:
    """Names of the parameters a selection picks, in model order."""
    chosen: set[str] = set()
    for spec in train:
        hits = _select(model, spec)
        if not hits:
            what = "bias parameters" if spec == "bias" else "parameters matching it"
            raise ConfigError(
                f"--train {spec!r} selects nothing: this model has no {what}; its parameters are named "
                f"{parameter_patterns(model)}"
            )
        chosen.update(hits)
    return [n for n, _ in model.named_parameters() if n in chosen]


class SelectiveSwap:
    """Trained and original values of the selected parameters; swaps which one the model holds."""

    def __init__(
        self, name: str, params: dict[str, nn.Parameter], trained: dict[str, torch.Tensor] | None = None
    ):
        self.name = name
        self.params = params
        self.original = {n: p.detach().clone() for n, p in params.items()}
        self.trained = {n: p.data for n, p in params.items()} if trained is None else trained
        self.active = True
        for n, p in params.items():
            p.data = self.trained[n]

    def adapter_names(self) -> list[str]:
        return [self.name]

    def set_active_adapter(self, name: str | None) -> None:
        on = name == self.name
        if on == self.active:
            return
        for n, p in self.params.items():
            if on:
                p.data = self.trained[n]
            else:
                self.trained[n] = p.data  # the live (possibly just trained) values
                p.data = self.original[n]
        self.active = on

    def adapter_parameters(self, name: str) -> list[nn.Parameter]:
        return list(self.params.values()) if name == self.name else []

    def delete_adapter(self, name: str) -> None:
        """Put the original values back for good."""
        self.set_active_adapter(None)
        self.params = {}


def select_parameters(
    model: nn.Module, train: str | Sequence[str] = ("bias",), name: str = "default", freeze: bool = True
) -> list[str]:
    """Make selection `train` adapter `name`: with `freeze`, only its parameters have requires_grad.

    Returns:
        The names of the selected (trained) parameters.
    """
    specs = (train,) if isinstance(train, str) else tuple(train)
    return add_selective(model, SelectiveConfig(specs), name=name, freeze=freeze)


def add_selective(
    model: nn.Module,
    config: SelectiveConfig,
    name: str = "default",
    freeze: bool = True,
    values: dict[str, torch.Tensor] | None = None,
) -> list[str]:
    """`select_parameters` from a config; `values` (name -> tensor) are trained values loaded from a file."""
    check_new_name(model, name)
    set_active_adapter(model, None)  # other selective adapters put the base values back first
    names = find_parameters(model, config.train) if values is None else list(values)
    params = dict(model.named_parameters())
    missing = [n for n in names if n not in params]
    if missing:
        raise ConfigError(
            f"the selective adapter names parameters this model lacks: {', '.join(missing[:3])}"
        )
    chosen = {n: params[n] for n in names}
    trained = None
    if values is not None:
        for n, v in values.items():
            if v.shape != chosen[n].shape:
                raise ConfigError(
                    f"{n}: saved shape {tuple(v.shape)} but the model's is {tuple(chosen[n].shape)}"
                )
        trained = {n: v.to(chosen[n]).clone() for n, v in values.items()}
    swap = SelectiveSwap(name, chosen, trained)
    register(model, AdapterInfo(name, "selective", config, names), extra=swap)
    if freeze:
        set_trainable(model, name)
    return names
