"""What `llmlab peft merge | export | import | info` do: whole adapter folders in, folders out.

- merge: base model + adapter -> a plain HF checkpoint folder (LoRA folded in, selective values kept),
  written to a temporary folder and renamed into place.
- export --format peft: the two files peft reads (LoRA, prompt tuning), without llmlab's metadata.
- import: a folder made by the peft library -> an llmlab adapter folder: checked (supported method, both
  LoRA matrices present), a seq2seq soft prompt cut to the n rows prompt tuning uses, llmlab_adapter.json
  added. Tensors are copied unchanged otherwise.
Tests: tests/peft/test_peft_cli.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from llmlab.errors import ConfigError
from llmlab.peft import peft_format
from llmlab.peft.checkpoint import (
    LLMLAB_CONFIG,
    LLMLAB_WEIGHTS,
    adapter_method,
    read_llmlab_config,
    resolve_adapter_folder,
    write_json,
    write_tensors,
)

PEFT_METHODS = ("lora", "prompt-tuning")


def describe(folder: str | Path) -> dict[str, Any]:
    """Method, settings, targets and tensor count of an adapter folder (llmlab's or peft's)."""
    from safetensors import safe_open

    folder = resolve_adapter_folder(folder)
    method = adapter_method(folder)
    raw = read_llmlab_config(folder)
    weights = folder / (LLMLAB_WEIGHTS if method not in PEFT_METHODS else peft_format.WEIGHTS_NAME)
    with safe_open(str(weights), framework="pt") as f:
        parameters = sum(int(_numel(f.get_slice(k).get_shape())) for k in f.keys())  # noqa: SIM118
        size = weights.stat().st_size
    info: dict[str, Any] = {"folder": str(folder), "method": method, "parameters": parameters, "bytes": size}
    if raw is not None:
        info |= {
            "config": raw.get("config"),
            "targets": raw.get("targets"),
            "base_model": raw.get("base_model"),
        }
    if method in PEFT_METHODS:
        peft = peft_format.peft_config_raw(folder)
        keys = ("r", "lora_alpha", "use_rslora", "target_modules", "num_virtual_tokens", "task_type")
        info["peft"] = {k: peft[k] for k in keys if k in peft}
        info.setdefault("base_model", peft.get("base_model_name_or_path"))
        info["made_by"] = (
            "peft" if raw is None else "peft, imported" if raw.get("imported_from") else "llmlab"
        )
    return info


def _numel(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def base_model_of(folder: str | Path) -> str | None:
    """The base model an adapter folder names (llmlab's base_model, else peft's base_model_name_or_path)."""
    found = describe(folder).get("base_model")
    return str(found) if found else None


def export_peft(run: str | Path, out: str | Path) -> Path:
    """Copy a LoRA or prompt-tuning adapter's peft files to `out` (peft, vLLM and others load them)."""
    folder = resolve_adapter_folder(run)
    method = adapter_method(folder)
    if method not in PEFT_METHODS:
        raise ConfigError(
            f"{folder} holds a {method} adapter, which the peft library has no format for; "
            "export LoRA or prompt-tuning adapters, or merge selective training into a checkpoint with "
            "`llmlab peft merge`"
        )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (peft_format.CONFIG_NAME, peft_format.WEIGHTS_NAME):
        shutil.copyfile(folder / name, out / name)
    return out


def import_peft(peft_dir: str | Path, out: str | Path) -> Path:
    """Check a folder made by the peft library and write it to `out` as an llmlab adapter folder."""
    from safetensors.torch import load_file

    folder = Path(peft_dir)
    peft_format.adapter_files(folder)
    method = adapter_method(folder)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    raw = peft_format.peft_config_raw(folder)
    if method == "lora":
        config, modules, _, _ = peft_format.read_lora_for_loading(folder)
        tensors = load_file(str(folder / peft_format.WEIGHTS_NAME))
        settings = {"rank": config.r, "alpha": config.lora_alpha, "dropout": float(raw.get("lora_dropout") or 0.0),
                    "targets": raw.get("target_modules"), "rslora": config.use_rslora}  # fmt: skip
        targets = sorted(modules)
    else:
        n, prompt = peft_format.read_prompt_for_loading(folder)
        tensors = {"prompt_embeddings": prompt.contiguous()}
        raw = raw | {"num_transformer_submodules": 1}
        settings, targets = {"virtual_tokens": n, "init": "random"}, []
    write_tensors(out / peft_format.WEIGHTS_NAME, tensors)
    write_json(out / peft_format.CONFIG_NAME, raw)
    write_json(
        out / LLMLAB_CONFIG,
        {
            "format": "llmlab-adapter",
            "version": 1,
            "method": method,
            "config": settings,
            "targets": targets,
            "base_model": raw.get("base_model_name_or_path"),
            "parameters": sum(t.numel() for t in tensors.values()),
            "imported_from": str(folder),
        },
    )
    return out


def merge_to_checkpoint(
    model: str, adapter: str | Path, out: str | Path, device: str = "cpu"
) -> dict[str, Any]:
    """Load `model`, put the adapter on it, fold it in, and save a plain HF checkpoint (with the tokenizer)
    at `out`. Returns what was merged."""
    from llmlab.models import load_model
    from llmlab.peft.checkpoint import load_adapter, merge_and_unload

    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out} exists and is not empty; give a new folder")
    loaded = load_model(model, device=device)
    info = load_adapter(loaded.model, adapter)
    merged: Any = merge_and_unload(loaded.model)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        merged.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        for path in tmp.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    files = sorted(p.name for p in out.iterdir())
    return {
        "model": loaded.name,
        "adapter": info.source,
        "method": info.method,
        "out": str(out),
        "files": files,
    }
