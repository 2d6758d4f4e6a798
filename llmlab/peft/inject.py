"""Injecting adapters into a plain model by module name or regex: `apply_lora(model, targets=("q_proj", "v_proj"))`.

Target rules (peft's `check_target_module_exists`, plus one convenience):
- a list of names: a module matches when its full name equals the target or ends with "." + target
  (`q_proj` matches `model.layers.0.self_attn.q_proj`; `layers.0.self_attn.q_proj` matches that one only);
- a string that is not a plain dotted name is a regex matched against the full name (`re.fullmatch`), as peft
  does with a string; a list entry with regex characters is matched the same way (llmlab's convenience);
- "all-linear": every nn.Linear except the output layer (`get_output_embeddings()`) and a classification head
  (`classifier`, `score`) or span head (`qa_outputs`), as peft's `_maybe_include_all_linear_layers` with task type SEQ_CLS.

Every target must match at least one layer (peft only checks that something matched): a typo is an error
that lists the model's linear layer names, not a silently smaller adapter.
Tests: tests/peft/test_inject.py.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from torch import nn

from llmlab.errors import ConfigError
from llmlab.peft.lora import LoraConfig, LoRALinear, wrap_linear
from llmlab.peft.registry import AdapterInfo, AdapterLayer, check_new_name, register, set_trainable

ALL_LINEAR = "all-linear"
_PLAIN = re.compile(r"[\w.]+")
CLASSIFIER_HEADS = ("classifier", "score", "qa_outputs")
# Query and value projections as each model family names them (peft's per-family LoRA defaults).
DEFAULT_TARGETS: tuple[tuple[str, ...], ...] = (("q_proj", "v_proj"), ("q", "v"), ("query", "value"))

Targets = str | Sequence[str] | None


def as_targets(targets: Targets) -> tuple[str, ...] | str | None:
    """Targets in a config's form: a string (regex or all-linear), a tuple of names, or None."""
    return targets if targets is None or isinstance(targets, str) else tuple(targets)


def _linear_names(model: nn.Module) -> list[str]:
    """Linear layers of the base model (a LoRALinear counts; the adapters' own small layers do not)."""
    inside = tuple(
        n + "." for n, m in model.named_modules() if n and isinstance(m, AdapterLayer | LoRALinear)
    )
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, nn.Linear | LoRALinear) and not (inside and n.startswith(inside))
    ]


def _matches(target: str, name: str) -> bool:
    if _PLAIN.fullmatch(target):
        return name == target or name.endswith("." + target)
    return re.fullmatch(target, name) is not None


def _head_names(model: nn.Module) -> set[str]:
    """The output layer and classification heads, which all-linear leaves out."""
    heads: set[object] = set()
    get_output = getattr(model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    if output is not None:
        heads.add(id(output))
    for attr in CLASSIFIER_HEADS:
        head = getattr(model, attr, None)
        if isinstance(head, nn.Module):
            heads.update(id(m) for m in head.modules())
    return {n for n, m in model.named_modules() if id(m) in heads}


def layer_summary(model: nn.Module) -> str:
    """The distinct last name parts of the model's linear layers, with one full name as an example."""
    names = _linear_names(model)
    leaves = sorted({n.rsplit(".", 1)[-1] for n in names})
    example = f" (e.g. {names[0]})" if names else ""
    return f"{', '.join(leaves) or 'none'}{example}"


def default_targets(model: nn.Module) -> tuple[str, ...]:
    """The query and value projections, under the first naming this model uses."""
    leaves = {n.rsplit(".", 1)[-1] for n in _linear_names(model)}
    for candidate in DEFAULT_TARGETS:
        if set(candidate) <= leaves:
            return candidate
    raise ConfigError(
        f"no default LoRA targets for {type(model).__name__}: give --targets (names or all-linear); "
        f"its linear layers are named {layer_summary(model)}"
    )


def find_targets(model: nn.Module, targets: Targets, flag: str = "--targets") -> list[str]:
    """Full names of the nn.Linear modules that `targets` selects, in model order.

    Raises:
        ConfigError: a target matches nothing, or matches modules that are not linear layers.
    """
    if targets is None:
        targets = default_targets(model)
    names = _linear_names(model)
    if isinstance(targets, str) and targets.lower() == ALL_LINEAR:
        heads = _head_names(model)
        return [n for n in names if n not in heads]
    patterns = [targets] if isinstance(targets, str) else list(targets)
    if not patterns:
        raise ConfigError(f"{flag} is empty; give module names, a regex or all-linear")
    all_modules = [n for n, _ in model.named_modules() if n]
    chosen: set[str] = set()
    for pattern in patterns:
        hits = [n for n in names if _matches(pattern, n)]
        if not hits:
            others = [n for n in all_modules if _matches(pattern, n)]
            if others:
                kind = type(model.get_submodule(others[0])).__name__
                raise ConfigError(
                    f"{flag} {pattern!r} matches {others[0]} ({kind}), which is not a linear layer; "
                    f"linear layers of this model: {layer_summary(model)}"
                )
            raise ConfigError(
                f"{flag} {pattern!r} matches no module of this model; its linear layers are named "
                f"{layer_summary(model)}"
            )
        chosen.update(hits)
    return [n for n in names if n in chosen]


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = name.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def apply_lora(
    model: nn.Module,
    targets: Targets = None,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    rslora: bool = False,
    name: str = "default",
    train: bool = True,
) -> list[str]:
    """Add LoRA adapter `name` on the linear layers `targets` selects; return their names.

    The adapter becomes the active one. With `train` (the default) every other parameter is frozen and only
    the new A and B matrices have requires_grad.

    Args:
        targets: module names, regexes, "all-linear", or None for the query/value projections.
        rank, alpha, dropout, rslora: see `LoraConfig`.
    """
    config = LoraConfig(rank=rank, alpha=alpha, dropout=dropout, targets=as_targets(targets), rslora=rslora)
    return add_lora(model, config, name=name, train=train)


def add_lora(
    model: nn.Module,
    config: LoraConfig,
    name: str = "default",
    train: bool = True,
    ranks: dict[str, int] | None = None,
    alphas: dict[str, float] | None = None,
) -> list[str]:
    """`apply_lora` from a config; `ranks`/`alphas` override rank and alpha per module name (imports)."""
    check_new_name(model, name)
    modules = find_targets(model, config.targets)
    ranks, alphas = ranks or {}, alphas or {}
    for module_name in modules:
        layer = wrap_linear(*_parent(model, module_name))
        layer.add_adapter(
            name,
            ranks.get(module_name, config.rank),
            alphas.get(module_name, config.alpha),
            config.dropout,
            config.rslora,
        )
    register(model, AdapterInfo(name, "lora", config, modules))
    if train:
        set_trainable(model, name)
    return modules


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Module name -> LoRALinear."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}
