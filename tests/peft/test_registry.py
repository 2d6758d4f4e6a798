"""Several named adapters on one base model: switch, disable, delete, unload; targets and their errors."""

from __future__ import annotations

import pytest
import torch
from kinds import KINDS, output, randomize
from torch import nn

from llmlab.errors import ConfigError
from llmlab.peft import (
    active_adapter,
    apply_lora,
    delete_adapter,
    disable_adapters,
    find_targets,
    list_adapters,
    set_active_adapter,
    set_trainable,
    trainable_parameters,
    unload,
)
from llmlab.peft.adapters import apply_adapters
from llmlab.peft.lora import LoRALinear
from llmlab.peft.prompt_tuning import apply_prompt_tuning
from llmlab.peft.selective import select_parameters

KIND = "decoder-only"


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def alone(setup) -> torch.Tensor:
    """The output of a fresh base model with only this adapter (same seed, so the same random values)."""
    model = KINDS[KIND].model()
    setup(model)
    return output(model, KIND)


SETUPS = {
    "lora-a": lambda m: (apply_lora(m, rank=4, name="lora-a"), randomize(m, "lora_A.lora-a", 1), randomize(m, "lora_B.lora-a", 2)),
    "lora-b": lambda m: (apply_lora(m, targets="all-linear", rank=2, name="lora-b"), randomize(m, ".lora-b.", 3)),
    "bottleneck": lambda m: (apply_adapters(m, bottleneck=8, name="bottleneck"), randomize(m, ".bottleneck.", 4)),
    "prompt": lambda m: apply_prompt_tuning(m, 3, name="prompt"),
    "norms": lambda m: (select_parameters(m, "norms", name="norms"), randomize(m, "norm", 5)),
}  # fmt: skip


def test_switching_adapters_on_one_base() -> None:
    """Five adapters of four methods on one model: each, when active, gives the output it gives alone;
    None and disable_adapters give the base; deleting one leaves the others; unload restores the base."""
    base = KINDS[KIND].model()
    before = output(base, KIND)
    expected = {}
    for name, setup in SETUPS.items():
        torch.manual_seed(11)
        expected[name] = alone(setup)
    model = KINDS[KIND].model()
    for setup in SETUPS.values():
        torch.manual_seed(11)
        setup(model)
    assert list(list_adapters(model)) == list(SETUPS)
    for name in ["lora-b", "prompt", "lora-a", "norms", "bottleneck", "lora-a"]:
        set_active_adapter(model, name)
        assert active_adapter(model).name == name
        torch.testing.assert_close(output(model, KIND), expected[name], rtol=0, atol=0)
        with disable_adapters(model):
            assert active_adapter(model) is None
            torch.testing.assert_close(output(model, KIND), before, rtol=0, atol=0)
    set_active_adapter(model, None)
    torch.testing.assert_close(output(model, KIND), before, rtol=0, atol=0)
    delete_adapter(model, "lora-a")
    set_active_adapter(model, "lora-b")
    torch.testing.assert_close(output(model, KIND), expected["lora-b"], rtol=0, atol=0)
    unload(model)
    assert list_adapters(model) == {}
    assert sorted(model.state_dict()) == sorted(base.state_dict())
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    torch.testing.assert_close(output(model, KIND), before, rtol=0, atol=0)
    for name, param in model.state_dict().items():
        assert torch.equal(param, base.state_dict()[name]), name


def test_set_trainable_picks_one_adapter() -> None:
    model = KINDS[KIND].model()
    apply_lora(model, name="a")
    apply_prompt_tuning(model, 2, name="b")
    assert list(trainable_parameters(model)) == ["soft_prompt.embeddings.b"]
    assert all(n.endswith(".a.weight") for n in set_trainable(model, "a"))
    assert all(".lora_" in n for n in trainable_parameters(model))


def test_names_are_checked() -> None:
    model = KINDS[KIND].model()
    apply_lora(model, name="a")
    with pytest.raises(ConfigError, match="the model already has an adapter named 'a'; pick another name"):
        apply_adapters(model, name="a")
    with pytest.raises(ConfigError, match="no adapter named 'b' on this model; loaded adapters: a"):
        set_active_adapter(model, "b")


def test_targets_by_name_suffix_regex_and_all_linear() -> None:
    llama = KINDS[KIND].model()
    assert find_targets(llama, ["q_proj"]) == [
        "model.layers.0.self_attn.q_proj",
        "model.layers.1.self_attn.q_proj",
    ]
    assert find_targets(llama, ["layers.1.self_attn.q_proj"]) == ["model.layers.1.self_attn.q_proj"]
    assert find_targets(llama, r".*\.1\.mlp\.(up|down)_proj") == [
        "model.layers.1.mlp.up_proj",
        "model.layers.1.mlp.down_proj",
    ]
    assert find_targets(llama, ["q_proj", r".*0\.mlp\.up_proj"]) == [
        "model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj", "model.layers.1.self_attn.q_proj"
    ]  # fmt: skip
    linear = [n for n, m in llama.named_modules() if isinstance(m, nn.Linear)]
    assert find_targets(llama, "all-linear") == [n for n in linear if n != "lm_head"]
    from tiny import tiny_bert

    classifier = tiny_bert(num_labels=2)
    chosen = find_targets(classifier, "all-linear")
    assert "classifier" not in chosen and "bert.pooler.dense" in chosen
    with pytest.raises(ConfigError, match=r"--targets 'q_prj' matches no module of this model; its linear layers are named down_proj, gate_proj, k_proj, lm_head, o_proj, q_proj, up_proj, v_proj \(e\.g\. model\.layers\.0\.self_attn\.q_proj\)"):  # fmt: skip
        find_targets(llama, ["q_prj"])
    with pytest.raises(ConfigError, match=r"--targets 'self_attn' matches model.layers.0.self_attn \(LlamaAttention\), which is not a linear layer"):  # fmt: skip
        find_targets(llama, ["self_attn"])
