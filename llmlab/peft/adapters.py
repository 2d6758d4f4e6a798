"""Bottleneck adapters: Parameter-Efficient Transfer Learning for NLP (Houlsby et al., 2019, arXiv:1902.00751).

    h <- h + W_up σ(W_down h + b_down) + b_up      W_down: (m, d), W_up: (d, m), m = bottleneck << d

Placed as in Houlsby's Figure 2: on the output of each attention sublayer (self- and cross-attention) and of
each feed-forward sublayer, after its output projection and before the sublayer's residual add and layer norm.
In transformers modules that is the output of `o_proj` / `down_proj` (Llama family), `attention.output.dense` /
`output.dense` (BERT family) and `SelfAttention.o` / `EncDecAttention.o` / `DenseReluDense.wo` (T5). W_up and
b_up start at zero, so the model is unchanged at init; W_down is initialised as nn.Linear (Houlsby draws it
from N(0, 1e-2); with W_up = 0 any W_down keeps the identity, and a wider one gives W_up useful gradients).
σ defaults to SiLU ("swish"), AdapterHub's Houlsby setting.

The adapters are a child (`bottleneck`) of the projection they follow, applied by a forward hook, so the base
model's modules and state-dict keys do not change. Not mergeable into the base weights (σ is not linear):
`llmlab peft merge` refuses them; decode with `--adapter`.

No reference library to match: peft has no bottleneck adapters and AdapterHub's `adapters` 1.3 pins
transformers 4.57. Tested by the equation on a hand-built layer and by the invariants:
tests/peft/test_adapters.py::test_adapter_equals_the_equation, ::test_identity_at_init.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.errors import ConfigError
from llmlab.peft.inject import Targets, as_targets, find_targets, layer_summary
from llmlab.peft.registry import AdapterInfo, check_new_name, register, set_trainable

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "relu": F.relu,
    "gelu": F.gelu,
    "tanh": torch.tanh,
}
# The output projections of the attention and feed-forward sublayers, per naming convention.
SUBLAYER_OUTPUTS: tuple[tuple[str, ...], ...] = (
    ("self_attn.o_proj", "mlp.down_proj"),  # Llama, Mistral, Qwen, SmolLM
    ("attention.output.dense", "output.dense"),  # BERT, RoBERTa, MiniLM (output.dense matches both)
    ("SelfAttention.o", "EncDecAttention.o", "DenseReluDense.wo"),  # T5 encoder-decoder
    ("SelfAttention.o", "DenseReluDense.wo"),  # T5 encoder only
)
BANK = "bottleneck"


@dataclass(frozen=True)
class BottleneckConfig:
    """Bottleneck adapter settings (the flags of `llmlab finetune adapters`)."""

    bottleneck: int = 0
    """Inner size m of each adapter (d -> m -> d); 0: d / 16, AdapterHub's reduction factor (36 for
    SmolLM2-135M, whose adapters then weigh 1.9% of its checkpoint)."""
    activation: str = "silu"
    """Nonlinearity between the two projections: silu, relu, gelu or tanh."""
    targets: tuple[str, ...] | str | None = None
    """Modules whose output each adapter follows (default: every attention and feed-forward output
    projection)."""

    def __post_init__(self) -> None:
        if not isinstance(self.bottleneck, int) or self.bottleneck < 0:
            raise ConfigError(
                f"--bottleneck must be a positive integer (or 0: the hidden size / 16), got {self.bottleneck!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"--activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}"
            )


class BottleneckAdapter(nn.Module):
    """h + up(σ(down(h))), up = 0 at init."""

    def __init__(self, dim: int, bottleneck: int, activation: str, **factory: Any):
        super().__init__()
        self.down = nn.Linear(dim, bottleneck, **factory)
        self.up = nn.Linear(bottleneck, dim, **factory)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.activation = activation

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h.to(self.down.weight.dtype)
        return h + self.up(ACTIVATIONS[self.activation](self.down(x))).to(h.dtype)


class BottleneckBank(nn.Module):
    """The named adapters that follow one module; at most one is active."""

    def __init__(self) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict()
        self.active: str | None = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.active is None:
            return h
        adapter = self.adapters[self.active]
        assert isinstance(adapter, BottleneckAdapter)
        return adapter(h)

    def adapter_names(self) -> list[str]:
        return list(self.adapters)

    def set_active_adapter(self, name: str | None) -> None:
        self.active = name if name is not None and name in self.adapters else None

    def adapter_parameters(self, name: str) -> list[nn.Parameter]:
        return list(self.adapters[name].parameters()) if name in self.adapters else []

    def delete_adapter(self, name: str) -> None:
        del self.adapters[name]
        if self.active == name:
            self.active = None

    def remove_from(self, parent: nn.Module, attr: str) -> None:
        """Take the bank and its hook off the module it follows."""
        for key, hook in list(parent._forward_hooks.items()):
            if hook is _apply_bank:
                del parent._forward_hooks[key]
        delattr(parent, attr)


def _apply_bank(module: nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
    """Forward hook: the module's output goes through its bottleneck adapters."""
    bank: BottleneckBank = getattr(module, BANK)
    return bank(output)


def default_targets(model: nn.Module) -> tuple[str, ...]:
    """The sublayer output projections, under the first naming convention this model uses fully."""
    for candidate in SUBLAYER_OUTPUTS:
        try:
            find_targets(model, candidate)
        except ConfigError:
            continue
        return candidate
    raise ConfigError(
        f"no default adapter places for {type(model).__name__}: give --targets (the attention and "
        f"feed-forward output projections); its linear layers are named {layer_summary(model)}"
    )


def _out_features(module: nn.Module, name: str) -> int:
    width = getattr(module, "out_features", None)
    if not isinstance(width, int):
        raise ConfigError(f"cannot place an adapter after {name} ({type(module).__name__}): no out_features")
    return width


def apply_adapters(
    model: nn.Module,
    bottleneck: int = 0,
    activation: str = "silu",
    targets: Targets = None,
    name: str = "default",
    train: bool = True,
) -> list[str]:
    """Add bottleneck adapter `name` after each sublayer output projection; return the module names.
    `bottleneck` 0: each adapter's inner size is its module's output size / 16.

    The adapter becomes the active one; with `train`, only its parameters have requires_grad.
    """
    config = BottleneckConfig(bottleneck=bottleneck, activation=activation, targets=as_targets(targets))
    return add_adapters(model, config, name=name, train=train)


def add_adapters(
    model: nn.Module, config: BottleneckConfig, name: str = "default", train: bool = True
) -> list[str]:
    """`apply_adapters` from a config."""
    check_new_name(model, name)
    targets = config.targets if config.targets is not None else default_targets(model)
    modules = find_targets(model, targets)
    if config.bottleneck == 0 and modules:  # recorded as the number, so a saved adapter says its size
        width = _out_features(model.get_submodule(modules[0]), modules[0])
        config = dataclasses.replace(config, bottleneck=max(1, width // 16))
    for module_name in modules:
        module = model.get_submodule(module_name)
        bank = getattr(module, BANK, None)
        if bank is None:
            bank = BottleneckBank()
            module.add_module(BANK, bank)
            module.register_forward_hook(_apply_bank)
        weight = module.weight
        dtype = torch.float32 if weight.dtype in (torch.bfloat16, torch.float16) else weight.dtype
        adapter = BottleneckAdapter(
            _out_features(module, module_name),
            config.bottleneck,
            config.activation,
            device=weight.device,
            dtype=dtype,
        )
        bank.adapters[name] = adapter.train(module.training)
    register(model, AdapterInfo(name, "adapters", config, modules))
    if train:
        set_trainable(model, name)
    return modules


def bottleneck_banks(model: nn.Module) -> dict[str, BottleneckBank]:
    """Name of the module each bank follows -> bank."""
    return {n.removesuffix("." + BANK): m for n, m in model.named_modules() if isinstance(m, BottleneckBank)}
