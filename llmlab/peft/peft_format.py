"""LoRA adapters in the PEFT format (`adapter_config.json` + `adapter_model.safetensors`), merged into a model.

    W' = W + scale * B @ A          A: (rank, in), B: (out, rank), scale = alpha / rank  (alpha / sqrt(rank) with
                                    use_rslora); transposed for fan_in_fan_out layers (GPT-2's Conv1D, (in, out))
    E' = E + scale * (B @ A)^T      embeddings: lora_embedding_A (rank, vocab), lora_embedding_B (dim, rank)

Reads what peft's `save_pretrained` writes: the config's `r`, `lora_alpha`, `rank_pattern`, `alpha_pattern`,
`use_rslora`, `fan_in_fan_out`, and tensors named `base_model.model.<module>.lora_A.weight` / `lora_B.weight`
(plus `lora_embedding_A` / `lora_embedding_B` and a saved `<module>.base_layer.weight` for embedding targets).
Each module's rank comes from its tensors, its alpha from `alpha_pattern` (matched as peft does: the pattern
equals the module name or a dotted suffix of it) or `lora_alpha`.

Merging writes into a deep copy of the model by default (the caller's model is untouched, so base and adapted
can be evaluated side by side; `inplace=True` saves the copy), and each merged weight becomes a new parameter, so a targeted `lm_head` tied to the
embeddings does not change the embeddings. Supported: LoRA on Linear, Conv1D and Embedding layers, bias "none".
Not supported (refused with a clear error): other PEFT methods (prompt tuning, IA3, ...), DoRA, LoRA biases,
`modules_to_save`, layer replication.

Parity: tests/peft/test_peft_format.py::test_merged_logits_match_peft_model (logits of an adapter made with the
real peft library, random non-zero B) and ::test_greedy_generation_matches_merged_peft_model.
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError, DataError, ModelError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
_PREFIX = "base_model.model."
_KEY = re.compile(r"^(?P<module>.+)\.(?P<part>lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.weight)?$")


@dataclass(frozen=True)
class LoraAdapterConfig:
    """The fields of a PEFT `adapter_config.json` that decide the merged weights."""

    r: int
    lora_alpha: float
    target_modules: list[str] | str | None = None
    fan_in_fan_out: bool = False
    use_rslora: bool = False
    rank_pattern: dict[str, int] = field(default_factory=dict)
    alpha_pattern: dict[str, float] = field(default_factory=dict)
    base_model_name_or_path: str | None = None

    def alpha(self, module: str) -> float:
        """lora_alpha for a module, after `alpha_pattern` (peft's `get_pattern_key` rule)."""
        for pattern, value in self.alpha_pattern.items():
            if re.match(rf"(.*\.)?({pattern})$", module):
                return float(value)
        return float(self.lora_alpha)

    def scale(self, module: str, rank: int) -> float:
        alpha = self.alpha(module)
        return alpha / math.sqrt(rank) if self.use_rslora else alpha / rank


@dataclass
class LoraWeights:
    """One adapted module's tensors."""

    A: torch.Tensor | None = None
    """(rank, in) for Linear; (rank, vocab) for Embedding."""
    B: torch.Tensor | None = None
    """(out, rank) for Linear; (dim, rank) for Embedding."""
    embedding: bool = False
    base_weight: torch.Tensor | None = None
    """A full base weight the adapter saved (embedding targets), loaded before merging."""


def adapter_files(folder: str | Path) -> tuple[Path, Path]:
    """(config path, weights path) of an adapter folder, or a ConfigError that says what is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(
            f"adapter folder not found: {folder}; give --adapter a folder holding {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (what peft's save_pretrained and llmlab's LoRA training write)"
        )
    config, weights = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config, weights):
        if not path.is_file():
            nested = sorted(p.parent.name for p in folder.glob(f"*/{CONFIG_NAME}"))
            hint = f" (found one in sub-folder(s) {', '.join(nested)})" if nested else ""
            raise ConfigError(f"{folder} is not a PEFT adapter folder: {path.name} is missing{hint}")
    return config, weights


def read_adapter_config(path: str | Path) -> LoraAdapterConfig:
    """Parse and check an `adapter_config.json`; anything we cannot merge exactly is refused."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg}); re-save the adapter", f"{path}:{e.lineno}") from e
    if not isinstance(raw, dict):
        raise DataError("expected a JSON object", str(path))
    _check_supported(raw, path)
    try:
        return LoraAdapterConfig(
            r=int(raw["r"]),
            lora_alpha=float(raw["lora_alpha"]),
            target_modules=raw.get("target_modules"),
            fan_in_fan_out=bool(raw.get("fan_in_fan_out", False)),
            use_rslora=bool(raw.get("use_rslora", False)),
            rank_pattern=dict(raw.get("rank_pattern") or {}),
            alpha_pattern=dict(raw.get("alpha_pattern") or {}),
            base_model_name_or_path=raw.get("base_model_name_or_path"),
        )
    except KeyError as e:
        raise DataError(f"a LoRA adapter config needs {e.args[0]!r}; re-save the adapter", str(path)) from e


def _check_supported(raw: dict[str, Any], path: Path) -> None:
    peft_type = str(raw.get("peft_type", "")).upper()
    if peft_type != "LORA":
        raise ConfigError(
            f"{path}: peft_type {raw.get('peft_type')!r} is not supported; llmlab loads LoRA adapters "
            "(peft_type LORA, on Linear, Conv1D and Embedding layers) for now"
        )
    refused = {
        "use_dora": "DoRA (use_dora) adapters",
        "lora_bias": "LoRA biases (lora_bias)",
        "modules_to_save": "modules_to_save (fully trained extra modules)",
        "layer_replication": "layer_replication",
        "target_parameters": "target_parameters (LoRA on raw parameters)",
        "trainable_token_indices": "trainable_token_indices",
    }
    for key, what in refused.items():
        if raw.get(key):
            raise ConfigError(f"{path}: {what} are not supported yet; use a plain LoRA adapter")
    if raw.get("bias", "none") != "none":
        raise ConfigError(f"{path}: bias {raw['bias']!r} is not supported; only bias 'none' adapters load")


def read_adapter_weights(path: str | Path) -> dict[str, LoraWeights]:
    """Group the tensors of `adapter_model.safetensors` by the module they adapt (names as in the model)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise DataError(f"cannot read the adapter weights ({e}); re-save the adapter", str(path)) from e
    modules: dict[str, LoraWeights] = {}
    for key, tensor in tensors.items():
        name = key.removeprefix(_PREFIX)
        if name.endswith(".base_layer.weight"):
            modules.setdefault(name.removesuffix(".base_layer.weight"), LoraWeights()).base_weight = tensor
            continue
        match = _KEY.match(name)
        if match is None:
            raise DataError(f"unexpected tensor {key!r}; only LoRA A/B matrices are supported", str(path))
        weights = modules.setdefault(match["module"], LoraWeights())
        part = match["part"]
        weights.embedding = part.startswith("lora_embedding")
        setattr(weights, part[-1], tensor)
    return modules


def merge_lora_adapter(model: nn.Module, folder: str | Path, inplace: bool = False) -> nn.Module:
    """A deep copy of `model` (or `model` itself with `inplace=True`, which saves memory when the base model
    is not needed any more) with the PEFT LoRA adapter in `folder` merged into its weights.

    Raises:
        ConfigError: no such folder, not an adapter folder, or an unsupported adapter type.
        ModelError: the adapter targets modules the model does not have, or shapes do not match.
    """
    config_path, weights_path = adapter_files(folder)
    config = read_adapter_config(config_path)
    modules = read_adapter_weights(weights_path)
    lora = {name: w for name, w in modules.items() if w.A is not None or w.B is not None}
    if not lora:
        raise ModelError(f"{weights_path} holds no LoRA matrices; re-save the adapter")
    _check_targets(model, lora, config, Path(folder))
    merged = model if inplace else copy.deepcopy(model)
    found = dict(merged.named_modules())
    with torch.no_grad():
        for name, weights in modules.items():
            _merge_module(found[name], name, weights, config)
    return merged


def _check_targets(
    model: nn.Module, lora: dict[str, LoraWeights], config: LoraAdapterConfig, folder: Path
) -> None:
    names = {name for name, _ in model.named_modules()}
    missing = sorted(name for name in lora if name not in names)
    if not missing:
        return
    layer_types = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Embedding)}
    )
    base = f" (it was trained on {config.base_model_name_or_path})" if config.base_model_name_or_path else ""
    raise ModelError(
        f"adapter {folder} targets module(s) not found in the model: {', '.join(missing[:3])}"
        f"{' ...' if len(missing) > 3 else ''}{base}; target_modules {config.target_modules!r}; "
        f"this model's layers are named {', '.join(layer_types)}; load the base model the adapter was trained on"
    )


def _merge_module(module: nn.Module, name: str, weights: LoraWeights, config: LoraAdapterConfig) -> None:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ModelError(f"adapter target {name} ({type(module).__name__}) has no weight to merge into")
    new = weight.detach().clone()
    if weights.base_weight is not None:
        _check_shape(name, "saved base weight", tuple(weights.base_weight.shape), tuple(new.shape))
        new = weights.base_weight.to(new)
    if weights.A is not None or weights.B is not None:
        new = new + _delta(name, weights, config, tuple(new.shape)).to(new.dtype)
    # A new Parameter (not an in-place add): a targeted layer tied to another one (lm_head and the
    # embeddings) gets its own merged weight instead of changing both.
    module.weight = nn.Parameter(new, requires_grad=weight.requires_grad)


def _delta(
    name: str, weights: LoraWeights, config: LoraAdapterConfig, shape: tuple[int, ...]
) -> torch.Tensor:
    """scale * B @ A in the layout of the module's weight."""
    if weights.A is None or weights.B is None:
        raise ModelError(f"adapter module {name} has only one of its two LoRA matrices; re-save the adapter")
    A, B = weights.A.float(), weights.B.float()
    rank = A.shape[0]
    if B.shape[1] != rank:
        raise ModelError(f"adapter module {name}: lora_A has rank {rank} but lora_B has {B.shape[1]}")
    delta = (B @ A) * config.scale(name, rank)  # (out, in); embeddings: (dim, vocab)
    if weights.embedding or config.fan_in_fan_out:
        delta = delta.T
    _check_shape(name, "LoRA update B @ A", tuple(delta.shape), shape)
    return delta


def _check_shape(name: str, what: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    if got != want:
        raise ModelError(
            f"adapter module {name}: {what} has shape {got} but the model's weight is {want}; "
            "the adapter was trained on a different base model"
        )
