"""The peft library's adapter format (`adapter_config.json` + `adapter_model.safetensors`): LoRA merged into a
model copy (`merge_lora_adapter`), and LoRA and prompt tuning read and written for live, unmerged adapters.

    W' = W + scale * B @ A          A: (rank, in), B: (out, rank), scale = alpha / rank  (alpha / sqrt(rank) with
                                    use_rslora); transposed for fan_in_fan_out layers (GPT-2's Conv1D, (in, out))
    E' = E + scale * (B @ A)^T      embeddings: lora_embedding_A (rank, vocab), lora_embedding_B (dim, rank)

Reads what peft's `save_pretrained` writes: the config's `r`, `lora_alpha`, `rank_pattern`, `alpha_pattern`,
`use_rslora`, `fan_in_fan_out`, and tensors named `base_model.model.<module>.lora_A.weight` / `lora_B.weight`
(plus `lora_embedding_A` / `lora_embedding_B` and a saved `<module>.base_layer.weight` for embedding targets).
Each module's rank comes from its tensors, its alpha from `alpha_pattern` (matched as peft does: the pattern
equals the module name or a dotted suffix of it) or `lora_alpha`.

Merging writes into a deep copy of the model by default (the caller's model is untouched, so base and adapted
can be evaluated side by side; `inplace=True` saves the copy), and each merged weight becomes a new
parameter, so a targeted `lm_head` tied to the embeddings does not change the embeddings. Supported: LoRA on Linear, Conv1D and Embedding layers, bias "none".
Not supported (refused with a clear error): other PEFT methods (prompt tuning, IA3, ...), DoRA, LoRA biases,
`modules_to_save`, layer replication.

Live adapters (checkpoint.py saves and loads through these): LoRA as above, without embedding or Conv1D
targets (those only merge); PROMPT_TUNING with its `prompt_embeddings` (n, d) tensor — peft's seq2seq adapters
hold 2n rows of which prompt tuning reads the first n; llmlab writes n rows and num_transformer_submodules 1.
The config written carries the fields peft needs to rebuild the adapter (task type from the model class,
`rank_pattern`/`alpha_pattern` for modules whose rank or alpha differ from the most common one, target names
shortened to the last name parts when those pick exactly the adapted layers).

Parity: tests/peft/test_peft_format.py::test_merged_logits_match_peft_model (logits of an adapter made with the
real peft library, random non-zero B) and ::test_greedy_generation_matches_merged_peft_model; live adapters
both ways: tests/peft/test_adapter_checkpoint.py::test_saved_here_loads_in_peft, ::test_made_by_peft_loads_here.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError, DataError, ModelError

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PREFIX = "base_model.model."  # peft's key prefix: PeftModel -> LoraModel -> the model
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
    modules_to_save: tuple[str, ...] = ()
    """Whole modules trained with the adapter and saved in full (a sequence classifier's new head)."""

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
            modules_to_save=tuple(raw.get("modules_to_save") or ()),
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
        "layer_replication": "layer_replication",
        "target_parameters": "target_parameters (LoRA on raw parameters)",
        "trainable_token_indices": "trainable_token_indices",
    }
    for key, what in refused.items():
        if raw.get(key):
            raise ConfigError(f"{path}: {what} are not supported yet; use a plain LoRA adapter")
    if raw.get("bias", "none") != "none":
        raise ConfigError(f"{path}: bias {raw['bias']!r} is not supported; only bias 'none' adapters load")


def _load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise DataError(f"cannot read the adapter weights ({e}); re-save the adapter", str(path)) from e


def _in_modules(name: str, modules: Sequence[str]) -> bool:
    return any(name.startswith(f"{m}.") for m in modules)


def read_adapter_weights(path: str | Path, saved: Sequence[str] = ()) -> dict[str, LoraWeights]:
    """Group the tensors of `adapter_model.safetensors` by the module they adapt (names as in the model),
    leaving out those of the `saved` modules (modules_to_save)."""
    return read_adapter_tensors(path, saved)[0]


def read_adapter_tensors(
    path: str | Path, saved: Sequence[str] = ()
) -> tuple[dict[str, LoraWeights], dict[str, torch.Tensor]]:
    """`adapter_model.safetensors`, read once and split: its LoRA tensors grouped by the module they adapt, and
    the tensors of the `saved` modules (peft's modules_to_save: `classifier.weight`, ...); names as in the
    model."""
    modules: dict[str, LoraWeights] = {}
    kept: dict[str, torch.Tensor] = {}
    for key, tensor in _load_weights(path).items():
        name = key.removeprefix(PREFIX)
        if _in_modules(name, saved):
            kept[name] = tensor
            continue
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
    return modules, kept


@torch.no_grad()
def copy_saved_modules(model: nn.Module, tensors: dict[str, torch.Tensor], folder: Path) -> None:
    """Copy the saved modules' tensors into `model` (its classifier head), checking names and shapes."""
    state = dict(model.named_parameters()) | dict(model.named_buffers())
    for name, value in tensors.items():
        if name not in state or tuple(state[name].shape) != tuple(value.shape):
            got = tuple(state[name].shape) if name in state else "no such tensor"
            raise ModelError(
                f"adapter {folder}: {name} has shape {tuple(value.shape)} but this model has {got}; load the "
                "base model with as many labels as the adapter was trained on"
            )
        state[name].copy_(value)


def classifier_heads(model: nn.Module) -> list[str]:
    """The new head of a sequence classifier (`classifier` for BERT, `score` for decoders): the module a PEFT
    method trains in full next to its adapter, as peft's SEQ_CLS task does; [] for other models."""
    task = peft_task_type(model)
    names = {"SEQ_CLS": ("classifier", "score"), "QUESTION_ANS": ("qa_outputs",)}.get(task, ())
    return [h for h in names if isinstance(getattr(model, h, None), nn.Module)]


def merge_lora_adapter(model: nn.Module, folder: str | Path, inplace: bool = False) -> nn.Module:
    """A deep copy of `model` (or `model` itself with `inplace=True`, which saves memory when the base model
    is not needed any more) with the PEFT LoRA adapter in `folder` merged into its weights.

    Raises:
        ConfigError: no such folder, not an adapter folder, or an unsupported adapter type.
        ModelError: the adapter targets modules the model does not have, or shapes do not match.
    """
    config_path, weights_path = adapter_files(folder)
    config = read_adapter_config(config_path)
    modules, saved = read_adapter_tensors(weights_path, config.modules_to_save)
    lora = {name: w for name, w in modules.items() if w.A is not None or w.B is not None}
    if not lora:
        raise ModelError(f"{weights_path} holds no LoRA matrices; re-save the adapter")
    _check_targets(model, lora, config, Path(folder))
    merged = model if inplace else copy.deepcopy(model)
    found = dict(merged.named_modules())
    with torch.no_grad():
        for name, weights in modules.items():
            _merge_module(found[name], name, weights, config)
    copy_saved_modules(merged, saved, Path(folder))
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


# -- live adapters: save and load LoRA and prompt tuning in peft's format ---------------------------------

PEFT_TASK_TYPES = {"decoder-only": "CAUSAL_LM", "encoder-decoder": "SEQ_2_SEQ_LM"}


def peft_task_type(model: nn.Module) -> str:
    """peft's TaskType for a transformers model (it decides how peft's PeftModel runs prompt tuning)."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        return "SEQ_2_SEQ_LM"
    name = type(model).__name__
    if name.endswith(("ForCausalLM", "LMHeadModel")):
        return "CAUSAL_LM"
    for suffix, task in (
        ("ForSequenceClassification", "SEQ_CLS"),
        ("ForTokenClassification", "TOKEN_CLS"),
        ("ForQuestionAnswering", "QUESTION_ANS"),
    ):
        if name.endswith(suffix):
            return task
    return "FEATURE_EXTRACTION"


def peft_config_raw(folder: str | Path) -> dict[str, Any]:
    """The JSON object of a peft `adapter_config.json` (only checked to be an object)."""
    path = Path(folder) / CONFIG_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg}); re-save the adapter", f"{path}:{e.lineno}") from e
    if not isinstance(raw, dict):
        raise DataError("expected a JSON object", str(path))
    return raw


def lora_peft_files(
    layers: dict[str, Any],
    name: str,
    config: Any,
    task_type: str,
    base: str | None,
    saved: dict[str, torch.Tensor] | None = None,
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(adapter_config.json object, tensors) for LoRA adapter `name` of LoRALinear layers {module: layer},
    with the `saved` modules' tensors (a classifier head, `classifier.weight`: ...) as peft's modules_to_save."""
    specs = {module: layer.specs[name] for module, layer in layers.items() if name in layer.specs}
    tensors: dict[str, torch.Tensor] = {}
    for module, layer in layers.items():
        if module in specs:
            tensors[f"{PREFIX}{module}.lora_A.weight"] = layer.lora_A[name].weight.detach().contiguous()
            tensors[f"{PREFIX}{module}.lora_B.weight"] = layer.lora_B[name].weight.detach().contiguous()
    rank = _most_common([s.rank for s in specs.values()])
    alpha = _most_common([s.alpha for s in specs.values()])
    raw = {
        "peft_type": "LORA",
        "task_type": task_type,
        "base_model_name_or_path": base,
        "r": rank,
        "lora_alpha": alpha,
        "lora_dropout": float(config.dropout),
        "use_rslora": bool(config.rslora),
        "target_modules": short_target_names(list(specs), list(layers)),
        "rank_pattern": {m: s.rank for m, s in specs.items() if s.rank != rank},
        "alpha_pattern": {m: s.alpha for m, s in specs.items() if s.alpha != alpha},
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": sorted({key.split(".")[0] for key in saved}) if saved else None,
        "use_dora": False,
    }
    for key, value in (saved or {}).items():
        tensors[f"{PREFIX}{key}"] = value.detach().contiguous()
    return raw, tensors


def prompt_peft_files(
    prompt: torch.Tensor, model: nn.Module, task_type: str, base: str | None
) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(adapter_config.json object, tensors) for a soft prompt (n, d)."""
    config = getattr(model, "config", None)
    raw = {
        "peft_type": "PROMPT_TUNING",
        "task_type": task_type,
        "base_model_name_or_path": base,
        "num_virtual_tokens": int(prompt.shape[0]),
        "token_dim": int(prompt.shape[1]),
        # One submodule: peft's seq2seq default (2) keeps decoder rows that prompt tuning never reads.
        "num_transformer_submodules": 1,
        "num_attention_heads": getattr(config, "num_attention_heads", None),
        "num_layers": getattr(config, "num_hidden_layers", None),
        # The init only matters when training starts; peft's TEXT init would need a tokenizer path to load.
        "prompt_tuning_init": "RANDOM",
        "inference_mode": True,
    }
    return raw, {"prompt_embeddings": prompt.detach().float().contiguous()}


def short_target_names(chosen: list[str], candidates: list[str]) -> list[str]:
    """Last name parts (q_proj, v_proj) when they pick exactly `chosen` among `candidates`, else full names."""
    leaves = sorted({m.rsplit(".", 1)[-1] for m in chosen})
    picked = {c for c in candidates if c.rsplit(".", 1)[-1] in leaves}
    return leaves if picked == set(chosen) else sorted(chosen)


def _most_common(values: list[Any]) -> Any:
    return max(set(values), key=values.count) if values else None


def runs_only_merged(folder: str | Path) -> bool:
    """Whether `folder` is a peft LoRA adapter on layers only merging handles (an embedding, GPT-2's Conv1D):
    `merge_lora_adapter` runs it, `load_adapter` refuses it."""
    folder = Path(folder)
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        return False
    try:
        raw = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False  # load_adapter reports what is wrong with the file
    if not isinstance(raw, dict) or raw.get("peft_type") != "LORA":
        return False
    if raw.get("fan_in_fan_out"):
        return True
    modules = read_adapter_weights(folder / WEIGHTS_NAME, raw.get("modules_to_save") or ())
    return any(w.embedding or w.base_weight is not None for w in modules.values())


def read_lora_for_loading(
    folder: Path,
) -> tuple[LoraAdapterConfig, dict[str, LoraWeights], dict[str, torch.Tensor], dict[str, Any]]:
    """Config, per-module weights, the saved modules' tensors (modules_to_save) and raw JSON of a peft LoRA
    adapter that can run live (unmerged); the weights file is read once."""
    config_path, weights_path = adapter_files(folder)
    config = read_adapter_config(config_path)
    modules, saved = read_adapter_tensors(weights_path, config.modules_to_save)
    for module, weights in modules.items():
        if weights.embedding or weights.base_weight is not None or config.fan_in_fan_out:
            raise ConfigError(
                f"{folder}: LoRA on {module} (an embedding or a GPT-2 Conv1D layer) cannot run unmerged in "
                "llmlab yet; merge it into the base model with `llmlab peft merge` instead"
            )
        if weights.A is None or weights.B is None:
            raise ModelError(
                f"adapter module {module} has only one of its two LoRA matrices; re-save the adapter"
            )
    return config, modules, saved, peft_config_raw(folder)


def read_prompt_for_loading(folder: Path) -> tuple[int, torch.Tensor]:
    """(number of virtual tokens, the soft prompt (n, d)) of a peft PROMPT_TUNING adapter."""
    from safetensors.torch import load_file

    _, weights_path = adapter_files(folder)
    raw = peft_config_raw(folder)
    try:
        n = int(raw["num_virtual_tokens"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError("a prompt-tuning config needs num_virtual_tokens", str(folder / CONFIG_NAME)) from e
    tensors = load_file(str(weights_path))
    if "prompt_embeddings" not in tensors:
        raise DataError(f"no prompt_embeddings tensor (found {', '.join(tensors)})", str(weights_path))
    # Seq2seq adapters made by peft hold n encoder rows then n decoder rows; prompt tuning reads the first n.
    return n, tensors["prompt_embeddings"][:n]
