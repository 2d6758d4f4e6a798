"""Models: the registry of packaged models, loading by name or path, sizing and memory estimates, and the
model code of the fast inference paths (fused_bert.py, int8.py; fused Llama decoding is generation/fused_llama.py)."""

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
