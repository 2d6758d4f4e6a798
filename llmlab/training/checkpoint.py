"""Checkpoints: written atomically, kept by step (the last K and the best), read back for an exact resume.

    RUN/checkpoints/step-00000120/
        config.json, model.safetensors, tokenizer files    the model part, written by a `ModelSaver`:
                                                           an HF folder transformers loads (full training), or
                                                           trainable.safetensors (+ the method's own files)
        training_state.safetensors                        AdamW moments and step per parameter *name*, RNGs
        trainer_state.json                                step, epoch, data position, best loss, counters

A checkpoint is filled under a temporary name (`.step-00000120.tmp`), every file and the folder are fsynced,
then it is renamed into place and the parent fsynced: a crash at any moment leaves either the whole
checkpoint or none (half-written temporary folders are deleted at the next start). No pickle anywhere:
tensors go to safetensors, everything else to JSON.
Tests: tests/training/test_checkpoint.py, tests/training/test_resume.py (SIGKILL, then resume).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from llmlab.errors import ConfigError

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "training_state.safetensors"
TRAINABLE = "trainable.safetensors"
CHECKPOINTS = "checkpoints"
_STEP_DIR = re.compile(r"^step-(\d{8})$")


# ---- atomic files and folders ------------------------------------------------------------------------------


def fsync_path(path: Path) -> None:
    """fsync a file or a folder (the folder's entries: a rename inside it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_folder_atomically(final: Path, fill: Callable[[Path], None]) -> Path:
    """Create `final` by filling a temporary sibling, fsyncing it, and renaming it into place."""
    tmp = final.with_name(f".{final.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    fill(tmp)
    for file in tmp.rglob("*"):
        if file.is_file():
            fsync_path(file)
    fsync_path(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    fsync_path(final.parent)
    return final


# ---- the model part ------------------------------------------------------------------------------------------


class ModelSaver(Protocol):
    """Writes the model part of a checkpoint and reads it back into the live model on resume."""

    def save(self, folder: Path) -> None: ...

    def load(self, folder: Path) -> None: ...


def _load_safetensors(folder: Path, name: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    index = folder / f"{name}.index.json"
    if index.is_file():  # a sharded checkpoint
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        tensors: dict[str, torch.Tensor] = {}
        for shard in shards:
            tensors.update(load_file(folder / shard))
        return tensors
    if not (folder / name).is_file():
        raise ConfigError(f"{folder} has no {name}; it is not a complete checkpoint")
    return load_file(folder / name)


class FullModelSaver:
    """Every weight, as an HF checkpoint folder (`save_pretrained` + the tokenizer)."""

    def __init__(self, model: nn.Module, tokenizer: Any = None):
        self.model, self.tokenizer = model, tokenizer

    def save(self, folder: Path, state: Mapping[str, torch.Tensor] | None = None) -> None:
        """`state`: the model's whole state dict when its parameters are sharded (gathered by the caller)."""
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Writing model shards" bars would cut through the progress bar
        self.model.save_pretrained(folder, state_dict=state)  # type: ignore[operator]
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder)

    def load(self, folder: Path) -> None:
        from llmlab.training.distributed import copy_into

        state = _load_safetensors(folder, "model.safetensors")
        params = dict(self.model.named_parameters(remove_duplicate=False))
        targets = params | dict(self.model.named_buffers())
        unexpected = [k for k in state if k not in targets]
        loaded = {id(params[k]) for k in state if k in params}
        missing = [k for k in params if k not in state]
        for name, value in state.items():  # in place: also into this process's shard of a sharded weight
            if name in targets:
                copy_into(targets[name], value)
        untied = [k for k in missing if id(params[k]) not in loaded]
        if unexpected or untied:
            raise ConfigError(
                f"{folder}: checkpoint does not match the model (missing {untied[:3]}, unexpected "
                f"{list(unexpected)[:3]}); resume with the same model and settings"
            )


class SubsetSaver:
    """Only the trainable parameters, by name, in `trainable.safetensors` (PEFT methods build on this)."""

    def __init__(self, model: nn.Module, names: Sequence[str], tokenizer: Any = None, base: str = ""):
        self.model, self.names, self.tokenizer, self.base = model, list(names), tokenizer, base

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        params = dict(self.model.named_parameters())
        save_file({n: params[n].detach().contiguous() for n in self.names}, folder / TRAINABLE)
        meta = {"base_model": self.base, "parameters": len(self.names)}
        (folder / "trainable.json").write_text(json.dumps(meta, indent=2) + "\n")
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder)

    def load(self, folder: Path) -> None:
        state = _load_safetensors(folder, TRAINABLE)
        params = dict(self.model.named_parameters())
        missing = [n for n in self.names if n not in state]
        if missing:
            raise ConfigError(f"{folder}: {TRAINABLE} lacks {missing[:3]}; resume with the same method")
        with torch.no_grad():
            for n in self.names:
                params[n].copy_(state[n])


# ---- optimizer and RNG state -------------------------------------------------------------------------------


def _flat_params(optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def optimizer_tensors(optimizer: torch.optim.Optimizer, names: dict[int, str]) -> dict[str, torch.Tensor]:
    """AdamW state as `optimizer/NAME/exp_avg`-style tensors (keyed by parameter name, not position); the
    moments of sharded parameters are gathered whole, so every process must call this when they are."""
    from llmlab.training.distributed import full_tensor

    out = {}
    for p in _flat_params(optimizer):
        for key, value in optimizer.state.get(p, {}).items():
            if isinstance(value, torch.Tensor):
                out[f"optimizer/{names[id(p)]}/{key}"] = full_tensor(value.detach()).cpu().contiguous()
    return out


def load_optimizer(optimizer: torch.optim.Optimizer, names: dict[int, str], tensors: dict[str, Any]) -> None:
    """The reverse of `optimizer_tensors`; the moments of a sharded parameter are split as it is."""
    from llmlab.training.distributed import shard_like

    state = optimizer.state_dict()
    for index, p in enumerate(_flat_params(optimizer)):
        prefix = f"optimizer/{names[id(p)]}/"
        entry = {k[len(prefix) :]: shard_like(v, p) for k, v in tensors.items() if k.startswith(prefix)}
        if entry:
            state["state"][index] = entry
    optimizer.load_state_dict(state)


RngState = tuple[dict[str, torch.Tensor], dict[str, Any]]


def rng_state() -> RngState:
    """(tensors, JSON) for torch (CPU and CUDA), Python's `random` and NumPy's global generators."""
    tensors = {"rng/torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda{i}"] = s
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng/torch"])
    if torch.cuda.is_available():
        cuda = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng/cuda"))]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = meta["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))


def save_training_state(
    folder: Path,
    optimizer: torch.optim.Optimizer | dict[str, torch.Tensor],
    names: dict[int, str],
    state: dict[str, Any],
    rng: RngState | None = None,
) -> None:
    """Optimizer tensors (or `optimizer_tensors` gathered before) and RNG states (now, or `rng` captured
    earlier) + the loop's counters as JSON."""
    from safetensors.torch import save_file

    tensors, rng_meta = rng or rng_state()
    moments = optimizer if isinstance(optimizer, dict) else optimizer_tensors(optimizer, names)
    save_file(moments | tensors, folder / STATE_TENSORS)
    (folder / STATE_JSON).write_text(json.dumps(state | {"rng": rng_meta}) + "\n")


def load_training_state(
    folder: Path, optimizer: torch.optim.Optimizer, names: dict[int, str]
) -> dict[str, Any]:
    """Restore the optimizer and the RNGs; return the loop's counters."""
    from safetensors.torch import load_file

    tensors = load_file(folder / STATE_TENSORS)
    state = json.loads((folder / STATE_JSON).read_text())
    load_optimizer(optimizer, names, {k: v for k, v in tensors.items() if k.startswith("optimizer/")})
    restore_rng(tensors, state.pop("rng"))
    return dict(state)


# ---- the checkpoint folders of a run -------------------------------------------------------------------------


def list_checkpoints(run: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first."""
    root = run / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return sorted(f for f in found if (f[1] / STATE_JSON).is_file())


def checkpoint_dir(run: Path, step: int) -> Path:
    return run / CHECKPOINTS / f"step-{step:08d}"


def remove_partial(run: Path) -> None:
    """Delete temporary checkpoint folders a crash left behind."""
    root = run / CHECKPOINTS
    if root.is_dir():
        for p in root.iterdir():
            if p.name.startswith(".") and p.name.endswith(".tmp"):
                shutil.rmtree(p, ignore_errors=True)


def prune(run: Path, keep_last: int, best_step: int | None) -> None:
    """Keep the newest `keep_last` checkpoints and the best one; delete the others."""
    found = list_checkpoints(run)
    keep = {step for step, _ in found[-keep_last:]} | ({best_step} if best_step is not None else set())
    for step, path in found:
        if step not in keep:
            shutil.rmtree(path)


def export_model(checkpoint: Path, run: Path) -> None:
    """Put a checkpoint's model files at the top of the run folder (each replaced atomically), so that
    `llmlab generate --model RUN` loads the run's final model."""
    for file in sorted(checkpoint.iterdir()):
        if not file.is_file() or file.name in (STATE_JSON, STATE_TENSORS):
            continue
        tmp = run / f".{file.name}.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(file, tmp)  # no copy: the checkpoint's file is never changed after it is written
        except OSError:
            shutil.copyfile(file, tmp)
            fsync_path(tmp)
        os.replace(tmp, run / file.name)
    fsync_path(run)
