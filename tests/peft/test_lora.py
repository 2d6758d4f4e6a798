"""LoRA layers: parity with peft on the three transformer kinds, and the invariants of lora.py."""

from __future__ import annotations

import copy

import pytest
import torch
from kinds import KIND_NAMES, KINDS, batch, output, randomize

from llmlab.peft import apply_lora, disable_adapters, trainable_parameters
from llmlab.peft.lora import LoRALinear, merge_lora, merged_lora, unmerge_lora

PEFT_PREFIX = "base_model.model."


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def peft_lora(base, kind: str, **kwargs):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type=KINDS[kind].task_type, **kwargs)
    model = get_peft_model(copy.deepcopy(base), config)
    randomize(model, "lora_")
    return model.eval()


def copy_lora_from_peft(ours, peft_model) -> None:
    """peft's in-memory names are ours behind the `base_model.model.` prefix."""
    tensors = {k.removeprefix(PEFT_PREFIX): v for k, v in peft_model.state_dict().items() if ".lora_" in k}
    missing, unexpected = ours.load_state_dict(tensors, strict=False)
    assert not unexpected and not [k for k in missing if "lora_" in k]


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize(
    "settings",
    [
        {"r": 4, "lora_alpha": 8},
        {"r": 8, "lora_alpha": 4, "use_rslora": True},
        {"r": 2, "lora_alpha": 16, "target_modules": "all-linear"},
    ],
    ids=["qv", "rslora", "all-linear"],
)
def test_lora_matches_peft(kind: str, settings: dict) -> None:
    """Same A and B: our forward and merged weights equal peft's (fp32 default tolerances)."""
    base = KINDS[kind].model()
    settings = {"target_modules": list(KINDS[kind].targets)} | settings
    reference = peft_lora(base, kind, **settings)
    ours = copy.deepcopy(base)
    modules = apply_lora(
        ours,
        targets=settings["target_modules"],
        rank=settings["r"],
        alpha=settings["lora_alpha"],
        rslora=settings.get("use_rslora", False),
    )
    expected_modules = sorted(
        n.removeprefix(PEFT_PREFIX) for n, m in reference.named_modules() if hasattr(m, "lora_A") and n
    )
    assert sorted(modules) == expected_modules
    copy_lora_from_peft(ours, reference)
    expected = output(reference, kind)
    assert not torch.allclose(expected, output(base, kind), atol=1e-3)  # the adapters really act
    torch.testing.assert_close(output(ours, kind), expected)
    merged_reference = reference.merge_and_unload()
    merge_lora(ours)
    layers = {n: m for n, m in ours.named_modules() if isinstance(m, LoRALinear)}
    for name, layer in layers.items():
        torch.testing.assert_close(layer.weight, merged_reference.get_submodule(name).weight)
    torch.testing.assert_close(output(ours, kind), output(merged_reference, kind))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_invariants(kind: str) -> None:
    """No-op at init (exactly); merged == unmerged; unmerge restores W0 bit for bit; disabled == base."""
    base = KINDS[kind].model()
    before = output(base, kind)
    model = copy.deepcopy(base)
    apply_lora(model, targets="all-linear", rank=4, alpha=8)
    torch.testing.assert_close(output(model, kind), before, rtol=0, atol=0)
    randomize(model, "lora_")
    unmerged = output(model, kind)
    assert not torch.allclose(unmerged, before, atol=1e-3)
    layers = [m for m in model.modules() if isinstance(m, LoRALinear)]
    originals = [layer.weight for layer in layers]
    with merged_lora(model) as names:
        assert len(names) == len(layers)
        assert all(layer.weight is not w for layer, w in zip(layers, originals, strict=True))
        # W x + s B A x and (W + s B A) x round differently, and the tiny T5's wide random weights amplify
        # it: up to 2.6e-5 of the largest output there, as with peft's own merge_and_unload (measured).
        torch.testing.assert_close(output(model, kind), unmerged, rtol=0, atol=1e-4 * unmerged.abs().max())
        with disable_adapters(model):  # a merged layer is unmerged while disabled
            torch.testing.assert_close(output(model, kind), before, rtol=0, atol=0)
        assert all(layer.merged == "default" for layer in layers)  # merged again after the block
    for layer, original, base_layer in zip(layers, originals, _base_linears(base, model), strict=True):
        assert layer.weight is original and torch.equal(layer.weight, base_layer.weight)
    with disable_adapters(model):
        torch.testing.assert_close(output(model, kind), before, rtol=0, atol=0)
    torch.testing.assert_close(output(model, kind), unmerged, rtol=0, atol=0)


def _base_linears(base, model):
    names = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    return [base.get_submodule(n) for n in names]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_only_lora_matrices_train(kind: str) -> None:
    """After 3 AdamW steps exactly the A and B matrices have gradients and changed; nothing else moved."""
    model = KINDS[kind].model().train()
    modules = apply_lora(model, targets=KINDS[kind].targets, rank=4, alpha=8)
    trainable = trainable_parameters(model)
    assert sorted(trainable) == sorted(f"{m}.lora_{ab}.default.weight" for m in modules for ab in "AB")
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.AdamW(trainable.values(), lr=1e-2)
    for _ in range(3):
        out = model(**batch(kind))
        hidden = out.last_hidden_state if kind == "encoder-only" else out.logits
        hidden.square().mean().backward()
        for name, param in model.named_parameters():
            assert (param.grad is not None) == (name in trainable), name
        optimizer.step()
        optimizer.zero_grad()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(trainable)


def test_base_checkpoint_still_loads(tiny_tok) -> None:
    """The base layers keep their keys: a base state dict loads; only the LoRA matrices are missing."""
    kind = KINDS["decoder-only"]
    model = kind.model()
    other = kind.model()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.5)
    apply_lora(model, targets="all-linear")
    keys = set(model.state_dict())
    assert set(other.state_dict()) <= keys
    missing, unexpected = model.load_state_dict(other.state_dict(), strict=False)
    assert not unexpected and missing and all(".lora_" in k for k in missing)
    for name, param in other.state_dict().items():
        assert torch.equal(model.state_dict()[name], param), name


def test_dropout_only_in_training() -> None:
    kind = KINDS["decoder-only"]
    model = kind.model()
    apply_lora(model, rank=4, alpha=8, dropout=0.5)
    randomize(model, "lora_")
    torch.manual_seed(0)
    evaluated = output(model, "decoder-only")
    torch.testing.assert_close(output(model, "decoder-only"), evaluated, rtol=0, atol=0)
    model.train()
    assert not torch.allclose(output(model, "decoder-only"), evaluated, atol=1e-4)


def test_scale_and_init() -> None:
    """scale = alpha / r (alpha / sqrt(r) with rsLoRA); B = 0 and A ~ U(-1/sqrt(in), 1/sqrt(in)) at init."""
    model = KINDS["decoder-only"].model()
    apply_lora(model, rank=4, alpha=8, name="plain")
    apply_lora(model, rank=4, alpha=8, rslora=True, name="rs")
    layer = model.model.layers[0].self_attn.q_proj
    assert layer.specs["plain"].scale == 2.0 and layer.specs["rs"].scale == 4.0
    A, B = layer.lora_A["plain"].weight, layer.lora_B["plain"].weight
    assert A.shape == (4, 64) and B.shape == (64, 4) and not B.any()
    assert A.abs().max() <= 1 / 64**0.5 and A.std() > 0.3 / 64**0.5
    unmerge_lora(model)  # a no-op on unmerged layers


def _train_loss(model: torch.nn.Module, kind: str, autocast: bool = False) -> torch.Tensor:
    torch.manual_seed(0)  # the same dropout masks in the model's own layers (T5)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = model(**batch(kind))
        hidden = out.last_hidden_state if kind == "encoder-only" else out.logits
        return hidden.float().square().mean()


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("autocast", [False, True], ids=["fp32", "bf16-autocast"])
def test_lora_gradients_match_peft(kind: str, autocast: bool) -> None:
    """Training (the lean branch, `lora.lora_delta`): the loss and the A and B gradients equal peft's, fp32
    to float tolerance and under bf16 autocast to bf16's."""
    base = KINDS[kind].model()
    reference = peft_lora(base, kind, r=4, lora_alpha=8, target_modules=list(KINDS[kind].targets)).train()
    ours = copy.deepcopy(base).train()
    apply_lora(ours, targets=KINDS[kind].targets, rank=4, alpha=8)
    copy_lora_from_peft(ours, reference)
    expected, got = _train_loss(reference, kind, autocast), _train_loss(ours, kind, autocast)
    expected.backward()
    got.backward()
    tolerance = {"rtol": 2e-2, "atol": 1e-4} if autocast else {}
    torch.testing.assert_close(got, expected, **tolerance)
    grads = {
        n.removeprefix(PEFT_PREFIX): p.grad for n, p in reference.named_parameters() if p.grad is not None
    }
    mine = {n: p.grad for n, p in ours.named_parameters() if p.grad is not None}
    assert mine.keys() == grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(mine[name], grad, **tolerance, msg=name)


def test_lora_dropout_gradient_uses_the_forward_mask() -> None:
    """With dropout, the gradients equal autograd's on the forward's mask (drawn from torch's generator)."""
    from llmlab.peft.lora import lora_delta

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, 16, generator=gen, requires_grad=True)
    a = torch.randn(4, 16, generator=gen, requires_grad=True)
    b = torch.randn(8, 4, generator=gen, requires_grad=True)
    grad = torch.randn(2, 5, 8, generator=gen)
    torch.manual_seed(11)
    out = lora_delta(x, a, b, 2.0, 0.4)
    out.backward(grad)
    torch.manual_seed(11)
    mask = (torch.rand(x.shape) >= 0.4) / 0.6
    assert 0.3 < (mask == 0).float().mean() < 0.5 and torch.all((mask == 0) | (mask == 1 / 0.6))
    x2, a2, b2 = (t.detach().clone().requires_grad_() for t in (x, a, b))
    expected = (x2 * mask) @ a2.t() @ b2.t() * 2.0
    expected.backward(grad)
    torch.testing.assert_close(out, expected)
    for mine, ref in ((x.grad, x2.grad), (a.grad, a2.grad), (b.grad, b2.grad)):
        torch.testing.assert_close(mine, ref)


def test_lora_keeps_less_for_backward_than_peft() -> None:
    """Under bf16 autocast with dropout, q and v keep one bf16 copy of their shared input and a bool mask each;
    peft keeps, per adapter, the cast dropped input (2 bytes per input element) and, on the CPU, the fp32
    dropout noise (4 bytes)."""
    kind = "decoder-only"
    base = KINDS[kind].model()
    reference = peft_lora(
        base, kind, r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"]
    )
    ours = copy.deepcopy(base)
    apply_lora(ours, targets=("q_proj", "v_proj"), rank=4, alpha=8, dropout=0.1)
    copy_lora_from_peft(ours, reference)
    sizes = {}
    for name, model in (("peft", reference.train()), ("ours", ours.train())):
        params = {p.untyped_storage().data_ptr() for p in model.parameters()}
        storages: dict[int, int] = {}

        def pack(t: torch.Tensor, storages=storages, params=params) -> torch.Tensor:
            if t.untyped_storage().data_ptr() not in params:  # what the backward pass adds to memory
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            _train_loss(model, kind, autocast=True)
        sizes[name] = sum(storages.values())
    layers, hidden = base.config.num_hidden_layers, base.config.hidden_size
    tokens = batch(kind)["input_ids"].numel()
    # per input element: peft keeps, per adapter, the cast dropped input (2 bytes) and, where the input needs a
    # gradient (every block but the first: the embeddings are frozen), the fp32 noise (4 bytes); ours keeps 2
    # bytes per block and 1 per adapter. Beyond that, peft keeps bf16 casts of A and B (small).
    expected = tokens * hidden * ((2 * 2 - 4) + (layers - 1) * (2 * 6 - 4))
    saved = sizes["peft"] - sizes["ours"]
    assert expected <= saved < expected + 4096, sizes
