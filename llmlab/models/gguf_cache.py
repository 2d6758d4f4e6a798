"""GGUF files dequantized once into a Hugging Face checkpoint folder, cached, verified on every use.

transformers parses and dequantizes a GGUF file in about 14 s (mostly Python metadata parsing); the cached
safetensors folder loads in about 2 s. The cache folder is keyed by the GGUF file's SHA-256, written under a
temporary name, fsynced and renamed into place, and carries a manifest of every file's size and SHA-256 that
is checked before use: a half-written or corrupted cache is removed and rebuilt, never loaded.

`LLMLAB_CACHE` overrides the cache root (default `~/.cache/llmlab`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

from llmlab.errors import ModelError

MANIFEST = "llmlab-manifest.json"
LOADS = "llmlab-loads.json"


def cache_root() -> Path:
    return Path(os.environ.get("LLMLAB_CACHE") or Path.home() / ".cache" / "llmlab")


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def cache_folder(gguf_path: Path) -> Path:
    """Where the converted checkpoint of this exact GGUF file lives (keyed by content hash)."""
    return cache_root() / "gguf" / f"{gguf_path.stem}-{file_sha256(gguf_path)[:16]}"


def is_valid(folder: Path) -> bool:
    """True only if the manifest exists and every file it lists has the recorded size and hash."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        for name, meta in manifest["files"].items():
            path = folder / name
            if path.stat().st_size != meta["size"] or file_sha256(path) != meta["sha256"]:
                return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return True


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def convert(gguf_path: Path, target: Path) -> float:
    """Dequantize `gguf_path` into an HF folder at `target` atomically; return the seconds it took."""
    from unittest import mock

    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    start = time.perf_counter()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # transformers' GGUF reader draws its own tqdm bar, which disable_progress_bar does not reach.
        with warnings.catch_warnings(), mock.patch.object(gguf_utils, "tqdm", lambda items, **_: items):
            warnings.simplefilter("ignore")
            gguf_model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
            tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        config = gguf_model.config
        # save_pretrained refuses GGUF-quantized models; a fresh model of the same class with the
        # dequantized state dict saves as a plain fp32 checkpoint.
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = type(gguf_model)(config)
        missing, unexpected = plain.load_state_dict(gguf_model.state_dict(), strict=False)
        if missing or unexpected:
            raise ModelError(
                f"{gguf_path}: GGUF tensors do not match the model ({missing[:3]} {unexpected[:3]})"
            )
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        seconds = time.perf_counter() - start
        files = {
            p.name: {"size": p.stat().st_size, "sha256": file_sha256(p)}
            for p in sorted(tmp.iterdir())
            if p.is_file()
        }
        manifest = {"source": gguf_path.name, "convert_seconds": round(seconds, 2), "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _fsync_tree(tmp)
        if target.exists():
            shutil.rmtree(target)
        try:
            os.rename(tmp, target)
        except OSError:
            if not is_valid(target):  # another process won the race with a broken result: retry once
                raise
        return seconds
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def record_cached_load(folder: Path, seconds: float) -> None:
    """Note how long the last load from this cache folder took, next to the manifest (best effort).

    The manifest is not touched (it guards the files); a read-only cache just skips the note.
    """
    note = folder / LOADS
    tmp = folder / f".{LOADS}.{os.getpid()}"
    try:
        tmp.write_text(json.dumps({"cached_load_seconds": round(seconds, 2)}))
        os.replace(tmp, note)
    except OSError:
        tmp.unlink(missing_ok=True)


def load_timings(folder: Path) -> dict[str, float]:
    """`convert_seconds` (the first load's GGUF conversion) and `cached_load_seconds`, where recorded."""
    timings: dict[str, float] = {}
    for name, key in ((MANIFEST, "convert_seconds"), (LOADS, "cached_load_seconds")):
        try:
            value = json.loads((folder / name).read_text())[key]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(value, int | float):
            timings[key] = float(value)
    return timings


def converted_folder(gguf_path: Path) -> tuple[Path, bool]:
    """The verified HF folder for a GGUF file, converting it first if needed.

    Returns:
        (folder, from_cache): from_cache is False when this call did the conversion.
    """
    target = cache_folder(gguf_path)
    if is_valid(target):
        return target, True
    if target.exists():
        shutil.rmtree(target)  # corrupt or half-written: never used
    convert(gguf_path, target)
    return target, False
