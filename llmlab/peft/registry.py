"""Named adapters on one loaded model: add several, switch the active one, disable them all, unload.

Every PEFT method of this package injects *adapter layers* into a plain transformers model and records the
adapter here, on the model itself (`model._llmlab_peft`):

    LoRALinear (lora.py)            replaces an nn.Linear, keeps its `weight`/`bias` keys
    BottleneckBank (adapters.py)    a child of the adapted module, applied by a forward hook
    SoftPromptBank (prompt_tuning)  a child of the model, prepended by a forward pre-hook
    SelectiveSwap (selective.py)    the trained and original values of a subset of the base parameters

Each layer holds any number of named adapters and follows one model-wide rule: at most one adapter is active
(peft's `set_adapter`); `disable_adapters(model)` runs the bare base model, which is how RLHF gets its frozen
reference without a second copy of the weights (DESIGN.md). `set_trainable(model, name)` freezes everything
but that adapter's tensors; a training loop then takes `trainable_parameters(model)`.

Departure from peft: no wrapper class (`PeftModel`) — the caller keeps calling its own model.
Tests: tests/peft/test_registry.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from torch import nn

from llmlab.errors import ConfigError

Method = Literal["lora", "adapters", "prompt-tuning", "selective"]
METHODS: tuple[Method, ...] = ("lora", "adapters", "prompt-tuning", "selective")
_ATTR = "_llmlab_peft"


@runtime_checkable
class AdapterLayer(Protocol):
    """What every injected layer offers the registry."""

    def adapter_names(self) -> list[str]: ...

    def set_active_adapter(self, name: str | None) -> None:
        """Use adapter `name` from now on; None (or a name this layer does not hold) runs the base."""
        ...

    def adapter_parameters(self, name: str) -> list[nn.Parameter]: ...

    def delete_adapter(self, name: str) -> None: ...


@dataclass
class AdapterInfo:
    """One named adapter on a model."""

    name: str
    method: Method
    config: Any
    """The method's config dataclass (LoraConfig, BottleneckConfig, PromptTuningConfig, SelectiveConfig)."""
    targets: list[str]
    """Adapted module names (lora, adapters), trained parameter names (selective), or [] (prompt tuning)."""
    source: str | None = None
    """The folder it was loaded from, if any."""
    modules_to_save: list[str] = field(default_factory=list)
    """Whole modules of the model trained and saved with the adapter (a sequence classifier's new head,
    peft's modules_to_save); loading the adapter overwrites them, switching adapters does not."""


@dataclass
class AdapterSet:
    """The adapters recorded on one model."""

    adapters: dict[str, AdapterInfo] = field(default_factory=dict)
    active: str | None = None
    disabled: bool = False
    extra_layers: dict[str, AdapterLayer] = field(default_factory=dict)
    """Layers that are not modules (selective swaps), by adapter name."""


def adapter_set(model: nn.Module) -> AdapterSet:
    """The model's adapter set (created empty on first use)."""
    found = model.__dict__.get(_ATTR)
    if found is None:
        found = AdapterSet()
        model.__dict__[_ATTR] = found
    return found


def has_adapters(model: nn.Module) -> bool:
    found = model.__dict__.get(_ATTR)
    return found is not None and bool(found.adapters)


def list_adapters(model: nn.Module) -> dict[str, AdapterInfo]:
    """Name -> AdapterInfo of every adapter on the model, in the order they were added."""
    return dict(adapter_set(model).adapters)


def active_adapter(model: nn.Module) -> AdapterInfo | None:
    """The adapter the model runs with now (None when there is none or they are disabled)."""
    found = adapter_set(model)
    if found.active is None or found.disabled:
        return None
    return found.adapters[found.active]


def register(model: nn.Module, info: AdapterInfo, extra: AdapterLayer | None = None) -> None:
    """Record a new adapter (called by the methods' `apply_*` and loaders) and make it the active one."""
    found = adapter_set(model)
    if info.name in found.adapters:
        raise ConfigError(
            f"the model already has an adapter named {info.name!r}; pick another name or unload it first"
        )
    found.adapters[info.name] = info
    if extra is not None:
        found.extra_layers[info.name] = extra
    set_active_adapter(model, info.name)


def check_new_name(model: nn.Module, name: str) -> None:
    """Refuse a name already in use, before anything is injected."""
    if not name or not isinstance(name, str):
        raise ConfigError(f"an adapter name must be a non-empty string, got {name!r}")
    if name in adapter_set(model).adapters:
        raise ConfigError(
            f"the model already has an adapter named {name!r}; pick another name or unload it first"
        )


def adapter_layers(model: nn.Module) -> Iterator[tuple[str, AdapterLayer]]:
    """(module name, layer) for every adapter layer, modules first, then the non-module ones."""
    for name, module in model.named_modules():
        if isinstance(module, AdapterLayer):
            yield name, module
    for name, layer in adapter_set(model).extra_layers.items():
        yield f"<{name}>", layer


def _apply_active(model: nn.Module) -> None:
    found = adapter_set(model)
    current = None if found.disabled else found.active
    for _, layer in adapter_layers(model):
        layer.set_active_adapter(current)


def set_active_adapter(model: nn.Module, name: str | None) -> None:
    """Switch the adapter the model runs with (None: the base model until another is chosen)."""
    found = adapter_set(model)
    if name is not None and name not in found.adapters:
        known = ", ".join(found.adapters) or "none"
        raise ConfigError(f"no adapter named {name!r} on this model; loaded adapters: {known}")
    found.active = name
    _apply_active(model)


@contextmanager
def disable_adapters(model: nn.Module) -> Iterator[nn.Module]:
    """Run the bare base model inside the block (RLHF's reference policy), then the active adapter again.

    A merged LoRA layer is unmerged for the block (exactly: the base weight was kept) and merged again after.
    No optimizer step should run inside the block: a selective adapter's trained values are swapped out.
    """
    found = adapter_set(model)
    was = found.disabled
    found.disabled = True
    _apply_active(model)
    try:
        yield model
    finally:
        found.disabled = was
        _apply_active(model)


def adapter_parameters(model: nn.Module, name: str) -> dict[str, nn.Parameter]:
    """Parameter name -> parameter of one adapter (its trainable tensors)."""
    if name not in adapter_set(model).adapters:
        raise ConfigError(f"no adapter named {name!r} on this model")
    wanted = {id(p): p for _, layer in adapter_layers(model) for p in layer.adapter_parameters(name)}
    named = {n: p for n, p in model.named_parameters() if id(p) in wanted}
    return named


def set_trainable(model: nn.Module, name: str) -> list[str]:
    """Freeze every parameter except adapter `name`'s; return the names of the trainable ones."""
    trained = adapter_parameters(model, name)
    for param in model.parameters():
        param.requires_grad_(False)
    for param in trained.values():
        param.requires_grad_(True)
    return list(trained)


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Name -> parameter for every parameter with requires_grad (what an optimizer should get)."""
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def delete_adapter(model: nn.Module, name: str) -> None:
    """Remove one adapter; a layer left with no adapter gives its place back to the plain base module."""
    found = adapter_set(model)
    if name not in found.adapters:
        known = ", ".join(found.adapters) or "none"
        raise ConfigError(f"no adapter named {name!r} on this model; loaded adapters: {known}")
    for module_name, layer in list(adapter_layers(model)):
        if name in layer.adapter_names():
            layer.delete_adapter(name)
            if not layer.adapter_names() and isinstance(layer, nn.Module):
                _remove_layer(model, module_name, layer)
    found.extra_layers.pop(name, None)
    del found.adapters[name]
    if found.active == name:
        found.active = None
    _apply_active(model)


def unload(model: nn.Module) -> nn.Module:
    """Remove every adapter: the model is the plain base model again (same keys, same modules)."""
    for name in list(adapter_set(model).adapters):
        delete_adapter(model, name)
    return model


def _remove_layer(model: nn.Module, module_name: str, layer: nn.Module) -> None:
    parent_name, _, attr = module_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    remove = getattr(layer, "remove_from", None)
    if remove is None:
        raise ConfigError(f"{type(layer).__name__} cannot be removed from {module_name}")
    remove(parent, attr)
