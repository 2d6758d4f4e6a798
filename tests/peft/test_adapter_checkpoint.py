"""Adapter folders: round trips for every method, interop with the peft library both ways, merging."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from kinds import KIND_NAMES, KINDS, output, randomize
from safetensors.torch import load_file
from torch import nn

from llmlab.errors import ConfigError, ModelError
from llmlab.peft import apply_lora, list_adapters, trainable_parameters
from llmlab.peft.adapters import apply_adapters
from llmlab.peft.checkpoint import load_adapter, merge_and_unload, resolve_adapter_folder, save_adapter
from llmlab.peft.lora import LoRALinear
from llmlab.peft.prompt_tuning import apply_prompt_tuning
from llmlab.peft.selective import select_parameters


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lora(m, kind):
    apply_lora(m, targets=KINDS[kind].targets, rank=4, alpha=8)
    randomize(m, "lora_")


def _adapters(m, kind):
    apply_adapters(m, bottleneck=8)
    randomize(m, "bottleneck")


def _prompt(m, kind):
    apply_prompt_tuning(m, 3)


def _selective(m, kind):
    select_parameters(m, "norms")
    randomize(m, "norm")


METHODS = {"lora": _lora, "adapters": _adapters, "prompt-tuning": _prompt, "selective": _selective}
FILES = {
    "lora": {"adapter_config.json", "adapter_model.safetensors", "llmlab_adapter.json"},
    "prompt-tuning": {"adapter_config.json", "adapter_model.safetensors", "llmlab_adapter.json"},
    "adapters": {"llmlab_adapter.json", "llmlab_adapter.safetensors"},
    "selective": {"llmlab_adapter.json", "llmlab_adapter.safetensors"},
}


@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("kind", ["decoder-only", "encoder-decoder"])
def test_round_trip(method: str, kind: str, tmp_path) -> None:
    """Save, load on a fresh base: the same outputs; the folder holds exactly the trained tensors."""
    model = KINDS[kind].model()
    torch.manual_seed(0)
    METHODS[method](model, kind)
    expected = output(model, kind)
    trained = trainable_parameters(model)
    save_adapter(model, tmp_path / "run", base_model="tiny")
    assert {p.name for p in (tmp_path / "run").iterdir()} == FILES[method]
    weights = next((tmp_path / "run").glob("*.safetensors"))
    assert sum(t.numel() for t in load_file(weights).values()) == sum(p.numel() for p in trained.values())
    meta = json.loads((tmp_path / "run" / "llmlab_adapter.json").read_text())
    assert meta["method"] == method and meta["base_model"] == "tiny"
    fresh = KINDS[kind].model()
    info = load_adapter(fresh, tmp_path / "run", name="loaded")
    assert info.method == method and info.source == str(tmp_path / "run")
    flags = {n: p.requires_grad for n, p in fresh.named_parameters()}
    adapter = (
        set(info.targets) if method == "selective" else set(flags) - set(KINDS[kind].model().state_dict())
    )
    assert adapter and not any(flags[n] for n in adapter)  # the adapter's tensors are off
    assert all(on for n, on in flags.items() if n not in adapter)  # the base's flags are as they were
    torch.testing.assert_close(output(fresh, kind), expected, rtol=0, atol=0)


def _peft_load(base, folder):
    from peft import PeftModel

    return PeftModel.from_pretrained(copy.deepcopy(base), folder).eval()


@pytest.mark.parametrize("method", ["lora", "prompt-tuning"])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_saved_here_loads_in_peft(method: str, kind: str, tmp_path) -> None:
    base = KINDS[kind].model()
    model = copy.deepcopy(base)
    torch.manual_seed(0)
    METHODS[method](model, kind)
    save_adapter(model, tmp_path)
    torch.testing.assert_close(output(_peft_load(base, tmp_path), kind), output(model, kind))


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("lora", {"r": 4, "lora_alpha": 8}),
        ("lora", {"r": 4, "lora_alpha": 8, "use_rslora": True, "rank_pattern": {"v": 2, "value": 2, "v_proj": 2},
                  "alpha_pattern": {"q": 3, "query": 3, "q_proj": 3}}),
        ("prompt-tuning", {"num_virtual_tokens": 3}),
    ],
    ids=["lora", "lora-patterns", "prompt-tuning"],
)  # fmt: skip
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_made_by_peft_loads_here(method: str, settings: dict, kind: str, tmp_path) -> None:
    """peft's save_pretrained output (seq2seq prompts hold 2n rows there) runs here with peft's outputs."""
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    base = KINDS[kind].model()
    if method == "lora":
        config = LoraConfig(
            task_type=KINDS[kind].task_type, target_modules=list(KINDS[kind].targets), **settings
        )
    else:
        config = PromptTuningConfig(task_type=KINDS[kind].task_type, **settings)
    reference = get_peft_model(copy.deepcopy(base), config)
    randomize(reference, "lora_")
    reference.eval().save_pretrained(tmp_path)
    ours = copy.deepcopy(base)
    load_adapter(ours, tmp_path)
    torch.testing.assert_close(output(ours, kind), output(reference, kind))
    if "rank_pattern" in settings:
        ranks = {m.specs["default"].rank for n, m in ours.named_modules() if isinstance(m, LoRALinear) and n.endswith(("v", "value", "v_proj"))}  # fmt: skip
        assert ranks == {2}


def test_merge_and_unload_gives_a_plain_model() -> None:
    kind = "decoder-only"
    base = KINDS[kind].model()
    model = KINDS[kind].model()
    _lora(model, kind)
    adapted = output(model, kind)
    apply_adapters(model, bottleneck=4, name="other")
    from llmlab.peft import set_active_adapter

    set_active_adapter(model, "default")
    merged = merge_and_unload(model)
    assert list_adapters(merged) == {} and not any(isinstance(m, LoRALinear) for m in merged.modules())
    assert sorted(merged.state_dict()) == sorted(base.state_dict())
    assert type(merged.model.layers[0].self_attn.q_proj) is nn.Linear
    torch.testing.assert_close(output(merged, kind), adapted)
    model = KINDS[kind].model()
    _selective(model, kind)
    trained = output(model, kind)
    torch.testing.assert_close(output(merge_and_unload(model), kind), trained, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["adapters", "prompt-tuning"])
def test_merge_refuses_what_no_weight_can_hold(method: str) -> None:
    model = KINDS["decoder-only"].model()
    METHODS[method](model, "decoder-only")
    with pytest.raises(ConfigError, match=r"cannot be merged into a plain checkpoint: .*; run it unmerged"):
        merge_and_unload(model)


def test_run_folders_and_errors(tmp_path) -> None:
    model = KINDS["decoder-only"].model()
    _lora(model, "decoder-only")
    for step in ("checkpoint-5", "checkpoint-20", "checkpoint-100"):
        save_adapter(model, tmp_path / "run" / step)
    assert resolve_adapter_folder(tmp_path / "run") == tmp_path / "run" / "checkpoint-100"
    save_adapter(model, tmp_path / "run" / "final")
    assert resolve_adapter_folder(tmp_path / "run") == tmp_path / "run" / "final"
    with pytest.raises(ConfigError, match=r"adapter folder not found: .*nope; give --adapter a run folder"):
        resolve_adapter_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty holds no adapter: neither adapter_config.json \(peft\) nor llmlab_adapter.json"):  # fmt: skip
        resolve_adapter_folder(tmp_path / "empty")
    bert = KINDS["encoder-only"].model()
    with pytest.raises(
        ModelError, match=r"targets module.s. not found in the model: model.layers.0.self_attn.q_proj"
    ):
        load_adapter(bert, tmp_path / "run")
    wider = KINDS["decoder-only"].model()
    apply_lora(wider, rank=4, alpha=8)
    save_adapter(wider, tmp_path / "r4")
    apply_lora(model, rank=2, name="r2")
    from tiny import tiny_llama

    other = tiny_llama(320, hidden_size=32, intermediate_size=64)
    with pytest.raises(ModelError, match=r"lora_A has shape \(4, 64\) but this model needs \(4, 32\)"):
        load_adapter(other, tmp_path / "r4")
    assert list_adapters(other) == {}


def _classifier_logits(model) -> torch.Tensor:
    ids = torch.tensor([[5, 17, 42, 9, 2], [7, 7, 30, 11, 3]])
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=(ids != 3).long()).logits


def test_a_lora_adapter_with_a_saved_head_reads_its_weights_once(tmp_path, monkeypatch) -> None:
    """Loading (live or merged) an adapter with modules_to_save reads adapter_model.safetensors once: its LoRA
    matrices and its saved head come from the same read, and both arrive in the model."""
    import safetensors.torch
    from tiny import tiny_bert

    from llmlab.peft.peft_format import WEIGHTS_NAME, merge_lora_adapter
    from llmlab.training.peft_finetune import train_heads

    base = tiny_bert(seed=5, num_labels=3)
    model = copy.deepcopy(base)
    apply_lora(model, targets=("query", "value"), rank=4, alpha=8)
    train_heads(model, "default")
    randomize(model, "lora_")
    randomize(model, "classifier", seed=2, std=0.5)
    save_adapter(model, tmp_path / "ours")
    reads: list[str] = []
    real = safetensors.torch.load_file

    def counted(path, *args, **kwargs):
        reads.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(safetensors.torch, "load_file", counted)
    fresh = copy.deepcopy(base)
    load_adapter(fresh, tmp_path / "ours")
    assert [r for r in reads if r.endswith(WEIGHTS_NAME)] == [str(tmp_path / "ours" / WEIGHTS_NAME)]
    torch.testing.assert_close(_classifier_logits(fresh), _classifier_logits(model))
    reads.clear()
    merged = merge_lora_adapter(base, tmp_path / "ours")
    assert [r for r in reads if r.endswith(WEIGHTS_NAME)] == [str(tmp_path / "ours" / WEIGHTS_NAME)]
    torch.testing.assert_close(_classifier_logits(merged), _classifier_logits(model))


def test_classifier_head_travels_with_a_lora_adapter_both_ways(tmp_path) -> None:
    """A sequence classifier's head trains in full next to LoRA (peft's modules_to_save for SEQ_CLS): saved
    here, peft loads it with the same logits; saved by peft, it loads here with peft's logits. The head a
    base model is loaded with is new (random), so the adapter must bring it."""
    from peft import LoraConfig, get_peft_model
    from tiny import tiny_bert

    from llmlab.training.peft_finetune import train_heads

    base = tiny_bert(seed=5, num_labels=3)
    model = copy.deepcopy(base)
    apply_lora(model, targets=("query", "value"), rank=4, alpha=8)
    heads = train_heads(model, "default")
    assert sorted(heads) == ["classifier.bias", "classifier.weight"]
    randomize(model, "lora_")
    randomize(model, "classifier", seed=2, std=0.5)
    save_adapter(model, tmp_path / "ours")
    raw = json.loads((tmp_path / "ours" / "adapter_config.json").read_text())
    assert raw["task_type"] == "SEQ_CLS" and raw["modules_to_save"] == ["classifier"]
    assert json.loads((tmp_path / "ours" / "llmlab_adapter.json").read_text())["labels"] == [
        "LABEL_0", "LABEL_1", "LABEL_2"
    ]  # fmt: skip
    assert not torch.allclose(_classifier_logits(base), _classifier_logits(model))
    torch.testing.assert_close(
        _classifier_logits(_peft_load(base, tmp_path / "ours")), _classifier_logits(model)
    )
    fresh = copy.deepcopy(base)
    load_adapter(fresh, tmp_path / "ours")
    torch.testing.assert_close(_classifier_logits(fresh), _classifier_logits(model))

    reference = get_peft_model(
        copy.deepcopy(base),
        LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"]),
    )
    randomize(reference, "lora_", seed=3)
    randomize(reference, "modules_to_save", seed=4, std=0.5)
    reference.eval().save_pretrained(tmp_path / "peft")
    ours = copy.deepcopy(base)
    load_adapter(ours, tmp_path / "peft")
    torch.testing.assert_close(_classifier_logits(ours), _classifier_logits(reference))
    assert list_adapters(ours)["default"].modules_to_save == ["classifier"]

    wrong = tiny_bert(seed=5, num_labels=2)  # another number of labels: a clear error, not a silent mix
    with pytest.raises(ModelError, match=r"classifier.bias has shape \(3,\) but this model has \(2,\)"):
        load_adapter(wrong, tmp_path / "ours")
