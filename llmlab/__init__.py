"""llmlab: one toolkit for the whole life of a language model, CPU-first and offline."""

from llmlab.errors import ConfigError, DataError, LlmlabError, ModelError

__version__ = "0.1.0"
__all__ = ["ConfigError", "DataError", "LlmlabError", "ModelError", "__version__"]
