"""Adapter folders: save only the trained tensors, load them onto a base model, merge into a plain checkpoint.

Formats (a folder per adapter; every file written atomically: temporary name, fsync, rename):
- LoRA and prompt tuning: peft's own (`adapter_config.json` + `adapter_model.safetensors`, peft's key names),
  so `peft.PeftModel.from_pretrained` and vLLM load them (peft_format.py).
- Bottleneck adapters and selective training: llmlab's own, since peft has neither —
  `llmlab_adapter.safetensors` holds only the trained tensors, named as in the model
  (`<module>.down.weight`, `<module>.up.bias` for adapters; the base parameter names for selective), and
  `llmlab_adapter.json` the method, its config, the adapted names and the base model.
- Every folder gets `llmlab_adapter.json` (for peft-format ones it only records the method and provenance).

Merging (`merge_and_unload`): LoRA folds W0 + scale B A into plain nn.Linear layers; selective keeps the
trained values; bottleneck adapters and soft prompts cannot become base weights and are refused.
Tests: tests/peft/test_adapter_checkpoint.py (round trips, and interop with the peft library both ways).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError, DataError, ModelError
from llmlab.peft import peft_format
from llmlab.peft.adapters import BottleneckConfig, add_adapters, bottleneck_banks
from llmlab.peft.inject import add_lora, lora_layers
from llmlab.peft.lora import LoraConfig, move_hooks
from llmlab.peft.prompt_tuning import BANK, PromptTuningConfig, add_prompt
from llmlab.peft.registry import (
    AdapterInfo,
    active_adapter,
    adapter_parameters,
    adapter_set,
    delete_adapter,
    list_adapters,
    unload,
)
from llmlab.peft.selective import SelectiveConfig, SelectiveSwap, add_selective

LLMLAB_CONFIG = "llmlab_adapter.json"
LLMLAB_WEIGHTS = "llmlab_adapter.safetensors"
FORMAT_VERSION = 1
CONFIGS: dict[str, type] = {
    "lora": LoraConfig,
    "adapters": BottleneckConfig,
    "prompt-tuning": PromptTuningConfig,
    "selective": SelectiveConfig,
}
PREFERRED_SUBFOLDERS = ("final", "best", "adapter")


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: dict[str, Any]) -> None:
    _atomic_write(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    _atomic_write(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}))


def _info(model: nn.Module, name: str | None) -> AdapterInfo:
    adapters = list_adapters(model)
    if name is None:
        info = active_adapter(model)
        if info is None:
            raise ConfigError("the model has no active adapter to save; name one, or add one first")
        return info
    if name not in adapters:
        raise ConfigError(f"no adapter named {name!r} on this model; loaded: {', '.join(adapters) or 'none'}")
    return adapters[name]


def adapter_tensors(model: nn.Module, name: str) -> dict[str, torch.Tensor]:
    """The trained tensors of an llmlab-format adapter (bottleneck or selective), named as saved."""
    info = list_adapters(model)[name]
    if info.method == "adapters":
        return {
            f"{module}.{key}": value
            for module, bank in bottleneck_banks(model).items()
            if name in bank.adapters
            for key, value in bank.adapters[name].state_dict().items()
        }
    if info.method == "selective":
        swap = adapter_set(model).extra_layers[name]
        assert isinstance(swap, SelectiveSwap)
        return {n: (p.data if swap.active else swap.trained[n]) for n, p in swap.params.items()}
    raise ConfigError(f"{info.method} adapters are saved in peft's format")


def save_adapter(
    model: nn.Module, folder: str | Path, name: str | None = None, base_model: str | None = None
) -> Path:
    """Write adapter `name` (default: the active one) to `folder`: only its tensors and a small config."""
    info = _info(model, name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    task = peft_format.peft_task_type(model)
    if info.method == "lora":
        raw, tensors = peft_format.lora_peft_files(
            lora_layers(model), info.name, info.config, task, base_model, _saved_modules(model, info)
        )
    elif info.method == "prompt-tuning":
        prompt = getattr(model, BANK).embeddings[info.name]
        raw, tensors = peft_format.prompt_peft_files(prompt, model, task, base_model)
    else:
        raw, tensors = {}, adapter_tensors(model, info.name)
    weights = peft_format.WEIGHTS_NAME if raw else LLMLAB_WEIGHTS
    write_tensors(folder / weights, tensors)
    if raw:
        write_json(folder / peft_format.CONFIG_NAME, raw)
    write_json(folder / LLMLAB_CONFIG, _llmlab_config(info, base_model, tensors, _labels(model)))
    return folder


def _saved_modules(model: nn.Module, info: AdapterInfo) -> dict[str, torch.Tensor]:
    """The tensors of the modules trained in full with the adapter, by their name in the model."""
    return {
        f"{module}.{key}": value
        for module in info.modules_to_save
        for key, value in model.get_submodule(module).state_dict().items()
    }


def _labels(model: nn.Module) -> list[str] | None:
    """A sequence classifier's label names in order (what `llmlab classify` rebuilds the head with)."""
    config = getattr(model, "config", None)
    if peft_format.peft_task_type(model) != "SEQ_CLS" or config is None:
        return None
    return [str(config.id2label[i]) for i in range(config.num_labels)]


def _llmlab_config(
    info: AdapterInfo, base_model: str | None, tensors: dict[str, torch.Tensor], labels: list[str] | None
) -> dict[str, Any]:
    config = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(info.config).items()}
    extra: dict[str, Any] = {"labels": labels, "modules_to_save": info.modules_to_save} if labels else {}
    return extra | {
        "format": "llmlab-adapter",
        "version": FORMAT_VERSION,
        "method": info.method,
        "config": config,
        "targets": info.targets,
        "base_model": base_model,
        "parameters": sum(t.numel() for t in tensors.values()),
    }


def saved_parameters(model: nn.Module, name: str | None = None) -> dict[str, torch.Tensor]:
    """Key in the saved file -> the live parameter it holds, for adapter `name` (default: the active one):
    the names `save_adapter` writes."""
    info = _info(model, name)
    if info.method == "lora":
        out: dict[str, torch.Tensor] = {}
        for module, layer in lora_layers(model).items():
            if info.name in layer.specs:
                A, B = layer.matrices(info.name)
                out[f"{peft_format.PREFIX}{module}.lora_A.weight"] = A.weight
                out[f"{peft_format.PREFIX}{module}.lora_B.weight"] = B.weight
        for module in info.modules_to_save:
            for key, param in model.get_submodule(module).named_parameters():
                out[f"{peft_format.PREFIX}{module}.{key}"] = param
        return out
    if info.method == "prompt-tuning":
        return {"prompt_embeddings": getattr(model, BANK).embeddings[info.name]}
    if info.method == "adapters":
        return {
            f"{module}.{key}": param
            for module, bank in bottleneck_banks(model).items()
            if info.name in bank.adapters
            for key, param in bank.adapters[info.name].named_parameters()
        }
    swap = adapter_set(model).extra_layers[info.name]
    assert isinstance(swap, SelectiveSwap)
    return dict(swap.params)


def restore_adapter(model: nn.Module, folder: str | Path, name: str | None = None) -> None:
    """Copy the tensors `save_adapter` wrote to `folder` back into the live adapter `name` (same method and
    settings), in place: parameters and the optimizer's references to them stay the same (resuming a run).

    Raises:
        ConfigError: the folder's tensors are not those of this adapter (other names or shapes).
    """
    from safetensors.torch import load_file

    folder = Path(folder)
    live = saved_parameters(model, name)
    path = folder / (
        peft_format.WEIGHTS_NAME if (folder / peft_format.WEIGHTS_NAME).is_file() else LLMLAB_WEIGHTS
    )
    if not path.is_file():
        raise ConfigError(f"{folder} holds no adapter tensors; resume with the run folder that wrote it")
    saved = load_file(str(path))
    if set(saved) != set(live) or any(saved[k].shape != live[k].shape for k in live):
        missing = sorted(set(live) - set(saved))[:3]
        raise ConfigError(
            f"{path} does not hold this adapter's tensors (missing {missing}); resume with the same method "
            "and settings"
        )
    with torch.no_grad():
        for key, param in live.items():
            param.copy_(saved[key])


def resolve_adapter_folder(path: str | Path) -> Path:
    """The adapter folder itself, or the one inside a run folder (final/, best/, else the latest step)."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(
            f"adapter folder not found: {path}; give --adapter a run folder or a folder holding "
            f"{peft_format.CONFIG_NAME} (peft) or {LLMLAB_CONFIG} (llmlab)"
        )
    if _is_adapter(path):
        return path
    inside = sorted((p for p in path.iterdir() if p.is_dir() and _is_adapter(p)), key=_step_key)
    for preferred in PREFERRED_SUBFOLDERS:
        if (path / preferred) in inside:
            return path / preferred
    if inside:
        return inside[-1]
    raise ConfigError(
        f"{path} holds no adapter: neither {peft_format.CONFIG_NAME} (peft) nor {LLMLAB_CONFIG} (llmlab) "
        "is in it or in a sub-folder"
    )


def _is_adapter(folder: Path) -> bool:
    return (folder / LLMLAB_CONFIG).is_file() or (folder / peft_format.CONFIG_NAME).is_file()


def _step_key(folder: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", folder.name)
    return (int(digits[-1]) if digits else -1, folder.name)


def read_llmlab_config(folder: Path) -> dict[str, Any] | None:
    """`llmlab_adapter.json` as a dict, or None when the folder has none (made by peft)."""
    path = folder / LLMLAB_CONFIG
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON ({e.msg}); re-save the adapter", f"{path}:{e.lineno}") from e
    if not isinstance(raw, dict) or raw.get("method") not in CONFIGS:
        raise DataError(
            f"expected an llmlab adapter config with method one of {', '.join(CONFIGS)}", str(path)
        )
    return raw


def adapter_method(folder: Path) -> str:
    """lora, adapters, prompt-tuning or selective, from llmlab's config or peft's peft_type."""
    raw = read_llmlab_config(folder)
    if raw is not None:
        return str(raw["method"])
    peft_type = str(peft_format.peft_config_raw(folder).get("peft_type", "")).upper()
    methods = {"LORA": "lora", "PROMPT_TUNING": "prompt-tuning"}
    if peft_type not in methods:
        raise ConfigError(
            f"{folder}: peft_type {peft_type or None!r} is not supported; llmlab loads peft LORA and "
            "PROMPT_TUNING adapters (and its own bottleneck and selective adapters)"
        )
    return methods[peft_type]


def load_adapter(
    model: nn.Module, path: str | Path, name: str = "default", train: bool = False
) -> AdapterInfo:
    """Load the adapter in `path` (an adapter folder or a run folder) as adapter `name`, and make it active.

    With `train`, its tensors have requires_grad and everything else is frozen (resuming training);
    otherwise the model's requires_grad flags are left as they were and the adapter's are off.
    """
    folder = resolve_adapter_folder(path)
    method = adapter_method(folder)
    loader = {
        "lora": _load_lora,
        "prompt-tuning": _load_prompt,
        "adapters": _load_adapters,
        "selective": _load_selective,
    }
    loader[method](model, folder, name, train)
    info = list_adapters(model)[name]
    info.source = str(folder)
    if not train:
        for param in adapter_parameters(model, name).values():
            param.requires_grad_(False)
    return info


def _load_lora(model: nn.Module, folder: Path, name: str, train: bool) -> None:
    config, modules, saved, raw = peft_format.read_lora_for_loading(folder)
    missing = [m for m in modules if m not in dict(model.named_modules())]
    if missing:
        raise ModelError(
            f"adapter {folder} targets module(s) not found in the model: {', '.join(missing[:3])}; "
            "load the base model the adapter was trained on"
        )
    ranks = {m: int(w.A.shape[0]) for m, w in modules.items() if w.A is not None}
    alphas = {m: config.alpha(m) for m in modules}
    lora = LoraConfig(
        rank=config.r, alpha=config.lora_alpha, dropout=float(raw.get("lora_dropout") or 0.0),
        targets=tuple(modules), rslora=config.use_rslora,
    )  # fmt: skip
    add_lora(model, lora, name=name, train=train, ranks=ranks, alphas=alphas)
    layers = lora_layers(model)
    with torch.no_grad():
        for module, weights in modules.items():
            A, B = layers[module].matrices(name)
            for part, target in (("A", A.weight), ("B", B.weight)):
                value = getattr(weights, part)
                if tuple(value.shape) != tuple(target.shape):
                    delete_adapter(model, name)
                    raise ModelError(
                        f"adapter module {module}: lora_{part} has shape {tuple(value.shape)} but this model "
                        f"needs {tuple(target.shape)}; the adapter was trained on a different base model"
                    )
                target.copy_(value)
    if config.modules_to_save:
        peft_format.copy_saved_modules(model, saved, folder)
        heads = sorted({key.split(".")[0] for key in saved})
        list_adapters(model)[name].modules_to_save = heads
        for head in heads:
            model.get_submodule(head).requires_grad_(train)


def _load_prompt(model: nn.Module, folder: Path, name: str, train: bool) -> None:
    n, values = peft_format.read_prompt_for_loading(folder)
    add_prompt(model, PromptTuningConfig(virtual_tokens=n), values, name=name, train=train)


def _llmlab_tensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = folder / LLMLAB_WEIGHTS
    if not path.is_file():
        raise ConfigError(f"{folder} is not a complete llmlab adapter folder: {LLMLAB_WEIGHTS} is missing")
    return load_file(str(path))


def _config(raw: dict[str, Any]) -> Any:
    cls = CONFIGS[raw["method"]]
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in (raw.get("config") or {}).items()}
    try:
        return cls(**values)
    except TypeError as e:
        raise DataError(f"llmlab_adapter.json: config does not fit {cls.__name__} ({e})") from e


def _load_adapters(model: nn.Module, folder: Path, name: str, train: bool) -> None:
    raw = read_llmlab_config(folder)
    assert raw is not None
    config = _config(raw)
    tensors = _llmlab_tensors(folder)
    modules = sorted({k.rsplit(".", 2)[0] for k in tensors})
    add_adapters(model, dataclasses.replace(config, targets=tuple(modules)), name=name, train=train)
    banks = bottleneck_banks(model)
    with torch.no_grad():
        for module in modules:
            adapter = banks[module].adapters[name]
            state = {
                k.removeprefix(module + "."): v for k, v in tensors.items() if k.rsplit(".", 2)[0] == module
            }
            try:
                adapter.load_state_dict(state)
            except RuntimeError as e:
                delete_adapter(model, name)
                raise ModelError(
                    f"adapter module {module}: {e}; load the base model it was trained on"
                ) from e


def _load_selective(model: nn.Module, folder: Path, name: str, train: bool) -> None:
    raw = read_llmlab_config(folder)
    assert raw is not None
    add_selective(model, _config(raw), name=name, freeze=train, values=_llmlab_tensors(folder))


def merge_and_unload(model: nn.Module) -> nn.Module:
    """The plain base model with the active adapter folded into its weights; every adapter is removed.

    Raises:
        ConfigError: the active adapter is a bottleneck adapter or a soft prompt (no base weight holds them).
    """
    info = active_adapter(model)
    if info is not None and info.method in ("adapters", "prompt-tuning"):
        what = {
            "adapters": "bottleneck adapters add a nonlinear layer, W_up σ(W_down h), that no base weight "
            "can absorb",
            "prompt-tuning": "a soft prompt is an input, not a weight",
        }[info.method]
        raise ConfigError(
            f"adapter {info.name!r} cannot be merged into a plain checkpoint: {what}; run it unmerged "
            "(`llmlab generate --adapter DIR`)"
        )
    if info is not None and info.method == "lora":
        for module_name, layer in lora_layers(model).items():
            if info.name in layer.specs:
                parent_name, _, attr = module_name.rpartition(".")
                parent = model.get_submodule(parent_name) if parent_name else model
                linear = layer.to_linear(merge=True)
                move_hooks(layer, linear)
                setattr(parent, attr, linear)
    found = adapter_set(model)
    if info is not None:
        if info.method == "selective":
            swap = found.extra_layers[info.name]
            assert isinstance(swap, SelectiveSwap)
            swap.params = {}  # the trained values stay in the model: nothing to swap back
        del found.adapters[info.name]
        found.extra_layers.pop(info.name, None)
        found.active = None
    return unload(model)
