from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))
# Emulating an AVX2 CPU (`ATEN_CPU_CAPABILITY=avx2` or `default`) on one with AVX512-BF16/AMX: limit oneDNN too,
# as on a real AVX2 CPU. With PyTorch's kernels alone lowered, PyTorch 2.13's bf16 attention still sees oneDNN's
# bf16 support and calls an AVX-512-only routine: "RuntimeError: pack_vnni2 is only supported when avx512 is
# supported" (MiniLM, the sizing tests). oneDNN reads the variable on first use, so this is early enough.
if os.environ.get("ATEN_CPU_CAPABILITY", "").lower() in ("default", "avx2"):
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX2")


def pytest_report_header() -> str:
    """The kernels in use: model outputs differ between them (tests/docs/test_docs_examples.py)."""
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "?")
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "all")
    return f"cpu: {cpu}; PyTorch kernels {torch.backends.cpu.get_cpu_capability()}, oneDNN ISA {onednn}"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


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
