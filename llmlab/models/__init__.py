"""Models: the registry of packaged models, loading by name or path, sizing and memory estimates."""

from llmlab.models.loading import LoadedModel, load_config, load_model, transformer_kind
from llmlab.models.registry import DEFAULT_CHAT_MODEL, DEFAULT_EMBEDDER, REGISTRY, ModelSpec, resolve

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "DEFAULT_EMBEDDER",
    "REGISTRY",
    "LoadedModel",
    "ModelSpec",
    "load_config",
    "load_model",
    "resolve",
    "transformer_kind",
]
