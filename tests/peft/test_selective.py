"""Selective training: what each selection picks, that only it changes, and that it acts as an adapter."""

from __future__ import annotations

import pytest
import torch
from kinds import KIND_NAMES, KINDS, batch, output

from llmlab.errors import ConfigError
from llmlab.peft import disable_adapters, trainable_parameters
from llmlab.peft.selective import select_parameters


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_selections_pick_what_they_say() -> None:
    bert = KINDS["encoder-only"].model()
    names = select_parameters(bert, "bias")
    assert (
        names == [n for n, _ in bert.named_parameters() if n.endswith(".bias")] and len(names) == 18
    )  # LN + 8 per layer + pooler
    llama = KINDS["decoder-only"].model()
    assert select_parameters(llama, "norms", name="n") == [
        "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
        "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
        "model.norm.weight",
    ]  # fmt: skip
    last = select_parameters(llama, "last-layers:1", name="l")
    assert last and all(n.startswith("model.layers.1.") for n in last) and len(last) == 9
    t5 = KINDS["encoder-decoder"].model()
    last = select_parameters(t5, ["last-layers:1", r"^decoder\.final_layer_norm\."], name="l")
    assert (
        all(n.startswith("decoder.block.1.") for n in last[:-1])
        and last[-1] == "decoder.final_layer_norm.weight"
    )
    assert select_parameters(t5, r"layer_norm", name="r") == [
        n for n, _ in t5.named_parameters() if "layer_norm" in n
    ]


def test_selection_errors_list_the_parameter_names() -> None:
    llama = KINDS["decoder-only"].model()
    with pytest.raises(ConfigError, match=r"--train 'bias' selects nothing: this model has no bias parameters; its parameters are named model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight"):  # fmt: skip
        select_parameters(llama, "bias")
    with pytest.raises(
        ConfigError, match=r"--train 'last-layers:0': write last-layers:N with N a positive integer"
    ):
        select_parameters(llama, "last-layers:0")
    with pytest.raises(
        ConfigError, match=r"--train last-layers:3: the model has only 2 blocks in model.layers"
    ):
        select_parameters(llama, "last-layers:3")
    with pytest.raises(ConfigError, match=r"--train 'q_proj\(' is not a valid regex"):
        select_parameters(llama, "q_proj(")


def test_only_the_selection_changes_and_disable_restores_the_base() -> None:
    """3 AdamW steps on the norms: exactly they move; disabled equals the base, enabled the trained model."""
    base = KINDS["encoder-decoder"].model()
    model = KINDS["encoder-decoder"].model().train()
    names = select_parameters(model, "norms")
    assert list(trainable_parameters(model)) == names
    optimizer = torch.optim.AdamW(trainable_parameters(model).values(), lr=1e-2)
    for _ in range(3):
        model(**batch("encoder-decoder")).logits.square().mean().backward()
        assert {n for n, p in model.named_parameters() if p.grad is not None} == set(names)
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, base.state_dict()[n])}
    assert changed == set(names)
    trained = output(model, "encoder-decoder")
    with disable_adapters(model):
        torch.testing.assert_close(
            output(model, "encoder-decoder"), output(base, "encoder-decoder"), rtol=0, atol=0
        )
    torch.testing.assert_close(output(model, "encoder-decoder"), trained, rtol=0, atol=0)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_norms_match_peft_ln_tuning(kind: str) -> None:
    """Selective "norms" is peft's LN tuning (Zhao et al., 2023, arXiv:2312.11420: train only the
    normalisation layers): the same number of trainable parameters, and 3 AdamW steps on the same loss from
    the same weights give the same outputs and the same trained norm weights. peft has no BitFit,
    last-layers or regex selection; those are checked above by what they pick."""
    from peft import LNTuningConfig, get_peft_model

    targets = ["LayerNorm"] if kind == "encoder-only" else None  # peft knows Llama's and T5's norms by name
    reference = get_peft_model(
        KINDS[kind].model(), LNTuningConfig(task_type=KINDS[kind].task_type, target_modules=targets)
    ).eval()  # trained in eval mode: no dropout, so both see the same function
    ours = KINDS[kind].model().eval()
    names = select_parameters(ours, "norms")
    trained = {"ours": list(trainable_parameters(ours).values())}
    trained["peft"] = [p for p in reference.parameters() if p.requires_grad]
    assert sum(p.numel() for p in trained["ours"]) == reference.get_nb_trainable_parameters()[0] > 0
    for model, key in ((ours, "ours"), (reference, "peft")):
        optimizer = torch.optim.AdamW(trained[key], lr=1e-2)
        for _ in range(3):
            out = model(**batch(kind))
            (out.last_hidden_state if kind == "encoder-only" else out.logits).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
    torch.testing.assert_close(output(ours, kind), output(reference, kind))
    peft_norms = {
        n.replace("base_model.model.", "").replace(".ln_tuning_layers.default", ""): p
        for n, p in reference.named_parameters()
        if p.requires_grad
    }
    assert sorted(peft_norms) == sorted(names)
    for name, param in ours.named_parameters():
        if name in names:
            torch.testing.assert_close(param, peft_norms[name])
