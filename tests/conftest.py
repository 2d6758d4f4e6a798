from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tiny_tok():
    from tiny import tiny_tokenizer

    return tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tok):
    from tiny import tiny_llama

    return tiny_llama(len(tiny_tok))


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory) -> Path:
    from tiny import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def llmlab_cache(tmp_path_factory) -> Path:
    """A session cache for converted GGUF models; slow tests share it so SmolLM2 converts once."""
    root = os.environ.get("LLMLAB_TEST_CACHE")
    path = Path(root) if root else tmp_path_factory.mktemp("llmlab-cache")
    os.environ["LLMLAB_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def smollm(llmlab_cache):
    """The real packaged SmolLM2-135M-Instruct (slow tier only)."""
    from llmlab.models import load_model

    return load_model("smollm2-135m-instruct", device="cpu")
