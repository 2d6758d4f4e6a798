"""LoRA: Low-Rank Adaptation of Large Language Models (Hu et al., 2021, arXiv:2106.09685).

    h = W0 x + b + scale * B(A(dropout(x)))     A: (rank, in), B: (out, rank)
    scale = alpha / rank,  or alpha / sqrt(rank) with rsLoRA (Kalajdzievski, 2023, arXiv:2312.03732)

A is initialised as nn.Linear's weight (kaiming-uniform, a = sqrt(5)) and B = 0, so an adapter is a no-op at
init (peft's `init_lora_weights=True`). `LoRALinear` replaces an nn.Linear and keeps its `weight` and `bias`
as its own parameters, so the state-dict keys of the base model do not change (a base checkpoint still loads;
peft inserts `base_layer.`). One layer holds any number of named adapters; at most one is active.

Merge: W = W0 + scale * B @ A, computed in fp32, held in a *new* tensor while the base weight W0 is kept, so
unmerge restores W0 exactly (bit for bit; peft subtracts the delta instead, exact only to rounding). The cost
is a second copy of each targeted weight while merged. Adapter tensors stay fp32 on a bf16/fp16 base, as
peft's `autocast_adapter_dtype`.

Training runs the adapter's branch through `lora_delta` (`_LoraDelta`): the same values as peft's branch,
keeping less for the backward pass: the input once in the autocast dtype for all adapters that read it (q
and v read the same hidden states) and the dropout mask as bools, where peft keeps per adapter the cast
dropped input and (on the CPU) the fp32 dropout noise (tests/peft/test_lora.py measures both).

Matches peft's LoRA Linear (forward, merged weights, training gradients). Parity:
tests/peft/test_lora.py::test_lora_matches_peft and ::test_lora_gradients_match_peft (decoder-only,
encoder-only, encoder-decoder). Structure after torchtune's `modules/peft/lora.py`.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.errors import ConfigError


@dataclass(frozen=True)
class LoraConfig:
    """LoRA settings (the flags of `llmlab finetune lora`)."""

    rank: int = 8
    """LoRA rank r: the inner size of the update B @ A."""
    alpha: float = 16.0
    """LoRA alpha: the update is scaled by alpha / rank (alpha / sqrt(rank) with --rslora)."""
    dropout: float = 0.0
    """Dropout on the adapter's input during training."""
    targets: tuple[str, ...] | str | None = None
    """Linear layers to adapt: names (q_proj,v_proj), regexes, or all-linear (default: the query and value
    projections as the model family names them)."""
    rslora: bool = False
    """Rank-stabilised scaling alpha / sqrt(rank) (rsLoRA)."""

    def __post_init__(self) -> None:
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"--rank must be a positive integer, got {self.rank!r}")
        if not self.alpha > 0:
            raise ConfigError(f"--alpha must be > 0, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout must be in [0, 1), got {self.dropout!r}")

    @property
    def scale(self) -> float:
        return lora_scale(self.rank, self.alpha, self.rslora)


def lora_scale(rank: int, alpha: float, rslora: bool = False) -> float:
    """alpha / rank, or alpha / sqrt(rank) for rsLoRA."""
    return alpha / math.sqrt(rank) if rslora else alpha / rank


@dataclass
class _Spec:
    """One adapter's hyperparameters on one layer (ranks and alphas may differ per layer after an import)."""

    rank: int
    alpha: float
    rslora: bool
    dropout: float

    @property
    def scale(self) -> float:
        return lora_scale(self.rank, self.alpha, self.rslora)


class LoRALinear(nn.Linear):
    """An nn.Linear with named low-rank adapters; `weight` and `bias` are the base layer's own parameters.

    A subclass of nn.Linear, so code that looks for linear layers (int8 calibration, "all-linear") still
    finds it; its forward is the adapted one.
    """

    def __init__(self, base: nn.Linear):
        nn.Module.__init__(self)  # not nn.Linear's __init__: it would allocate a second weight
        if not isinstance(base, nn.Linear):
            raise ConfigError(f"LoRA adapts nn.Linear layers, got {type(base).__name__}")
        self.in_features, self.out_features = base.in_features, base.out_features
        self.weight = base.weight
        self.bias = base.bias
        self.lora_A = nn.ModuleDict()  # name -> Linear(in, rank): A (rank, in)
        self.lora_B = nn.ModuleDict()  # name -> Linear(rank, out): B (out, rank)
        self.lora_dropout = nn.ModuleDict()
        self.specs: dict[str, _Spec] = {}
        self.active: str | None = None
        self.merged: str | None = None
        self._base_weight: torch.Tensor | None = None  # W0 while an adapter is merged
        self._remerge: str | None = None  # merged before being switched off: merge again when back

    # -- adapters ---------------------------------------------------------------------------------------
    def add_adapter(
        self, name: str, rank: int, alpha: float, dropout: float = 0.0, rslora: bool = False
    ) -> None:
        """A new adapter: A kaiming-uniform (a = sqrt(5)), B = 0."""
        if name in self.specs:
            raise ConfigError(f"this layer already has a LoRA adapter named {name!r}")
        kwargs = {"device": self.weight.device, "dtype": _adapter_dtype(self.weight.dtype)}
        A = nn.Linear(self.in_features, rank, bias=False, **kwargs)
        B = nn.Linear(rank, self.out_features, bias=False, **kwargs)
        nn.init.kaiming_uniform_(A.weight, a=math.sqrt(5))
        nn.init.zeros_(B.weight)
        self.lora_A[name], self.lora_B[name] = A, B
        self.lora_dropout[name] = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.train(self.training)  # new modules start in training mode; follow the model's mode
        self.specs[name] = _Spec(rank, float(alpha), rslora, dropout)

    def adapter_names(self) -> list[str]:
        return list(self.specs)

    def set_active_adapter(self, name: str | None) -> None:
        """Switch adapters; a merged adapter is unmerged when switched off and merged again when back."""
        name = name if name in self.specs else None
        if self.merged is not None and self.merged != name:
            remerge = self.merged
            self.unmerge()
            self._remerge = remerge
        self.active = name
        if name is not None and name == self._remerge:
            self.merge()

    def matrices(self, name: str) -> tuple[nn.Linear, nn.Linear]:
        """(A, B) of adapter `name` as linear layers: A (in -> rank), B (rank -> out)."""
        A, B = self.lora_A[name], self.lora_B[name]
        assert isinstance(A, nn.Linear) and isinstance(B, nn.Linear)
        return A, B

    def adapter_parameters(self, name: str) -> list[nn.Parameter]:
        if name not in self.specs:
            return []
        A, B = self.matrices(name)
        return [p for p in (A.weight, B.weight) if isinstance(p, nn.Parameter)]

    def delete_adapter(self, name: str) -> None:
        if self.merged == name:
            self.unmerge()
        for bank in (self.lora_A, self.lora_B, self.lora_dropout):
            del bank[name]
        del self.specs[name]
        if self.active == name:
            self.active = None

    # -- maths ------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight, self.bias)
        name = self.active
        if name is None or self.merged is not None:
            return out
        A, B = self.matrices(name)
        spec = self.specs[name]
        if torch.is_grad_enabled() and (A.weight.requires_grad or B.weight.requires_grad):
            p = spec.dropout if self.training else 0.0
            return out + lora_delta(x, A.weight, B.weight, spec.scale, p).to(out.dtype)
        x = self.lora_dropout[name](x.to(A.weight.dtype))
        return out + (B(A(x)) * spec.scale).to(out.dtype)

    def delta_weight(self, name: str | None = None) -> torch.Tensor:
        """scale * B @ A in fp32, (out, in): the adapter's change to the weight."""
        name = name or self.active
        if name is None or name not in self.specs:
            raise ConfigError(f"no LoRA adapter {name!r} on this layer")
        A, B = self.matrices(name)
        return (B.weight.float() @ A.weight.float()) * self.specs[name].scale

    def merged_weight(self, name: str | None = None) -> torch.Tensor:
        """W0 + scale * B @ A in the base weight's dtype, as a new tensor (W0 untouched)."""
        base = self._base_weight if self._base_weight is not None else self.weight
        return (base.detach().float() + self.delta_weight(name)).to(base.dtype)

    def merge(self) -> None:
        """Fold the active adapter into `weight` (W0 is kept for `unmerge`); a no-op when none is active."""
        if self.active is None or self.merged == self.active:
            return
        if self.merged is not None:
            self.unmerge()
        self._base_weight = self.weight
        self.weight = nn.Parameter(self.merged_weight(self.active), requires_grad=False)
        self.merged = self.active
        self._remerge = None

    def unmerge(self) -> None:
        """Put W0 back, exactly (the same tensor)."""
        self._remerge = None
        if self.merged is None:
            return
        assert self._base_weight is not None
        self.weight = self._base_weight
        self._base_weight = None
        self.merged = None

    def to_linear(self, merge: bool = False) -> nn.Linear:
        """A plain nn.Linear with the base weight (or the active adapter merged in), sharing the tensors."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        if merge and self.active is not None:
            linear.weight = nn.Parameter(self.merged_weight(self.active), requires_grad=False)
        else:
            linear.weight = self._base_weight if self._base_weight is not None else self.weight
        linear.bias = self.bias
        return linear

    def remove_from(self, parent: nn.Module, attr: str) -> None:
        """Give the place back to a plain nn.Linear (called when the last adapter is deleted)."""
        linear = self.to_linear()
        move_hooks(self, linear)
        setattr(parent, attr, linear)

    def extra_repr(self) -> str:
        adapters = ", ".join(f"{n}: r={s.rank} alpha={s.alpha:g}" for n, s in self.specs.items())
        return f"in_features={self.in_features}, out_features={self.out_features}, adapters=[{adapters}]"


def _adapter_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 adapters on a bf16/fp16 base (small tensors, stable updates), the base dtype otherwise."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


def move_hooks(old: nn.Module, new: nn.Module) -> None:
    """Keep forward hooks and extra children (bottleneck adapters) when a module is swapped for another."""
    new._forward_hooks.update(old._forward_hooks)
    new._forward_pre_hooks.update(old._forward_pre_hooks)
    for attr, child in old.named_children():
        if attr not in ("lora_A", "lora_B", "lora_dropout") and not hasattr(new, attr):
            new.add_module(attr, child)


def wrap_linear(parent: nn.Module, attr: str) -> LoRALinear:
    """Replace `parent.attr` (an nn.Linear) by a LoRALinear sharing its parameters, or return the one there."""
    module = getattr(parent, attr)
    if isinstance(module, LoRALinear):
        return module
    layer = LoRALinear(module).train(module.training)
    move_hooks(module, layer)
    setattr(parent, attr, layer)
    return layer


def merge_lora(model: nn.Module) -> list[str]:
    """Merge the active adapter of every LoRA layer into its weight (reversible); return the merged names."""
    merged = []
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear) and module.active is not None and module.merged is None:
            module.merge()
            merged.append(name)
    return merged


def unmerge_lora(model: nn.Module) -> None:
    """Restore every LoRA layer's base weight exactly."""
    for module in model.modules():
        if isinstance(module, LoRALinear):
            module.unmerge()


@contextmanager
def merged_lora(model: nn.Module) -> Iterator[list[str]]:
    """Inside the block the active LoRA adapters are merged (a plain W x per layer); unmerged after.

    The fused decoding path copies weights when it is built: built inside this block, it holds W0 + scale B A.
    """
    names = merge_lora(model)
    try:
        yield names
    finally:
        layers = dict(model.named_modules())
        for name in names:
            layer = layers.get(name)
            if isinstance(layer, LoRALinear):
                layer.unmerge()


# -- training: the adapter's branch with a lean backward --------------------------------------------------
_CAST: list[tuple[weakref.ref[torch.Tensor], int, torch.dtype, torch.Tensor] | None] = [None]


def _shared_cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x in `dtype`, one copy for all the adapters that read the same tensor (q and v read the same
    normalised hidden states): the last cast is kept, keyed by the tensor itself (a weak reference, so a
    freed tensor never matches) and its version counter (so an in-place change never matches)."""
    if x.dtype == dtype:
        return x
    slot = _CAST[0]
    if slot is not None and slot[0]() is x and slot[1] == x._version and slot[2] == dtype:
        return slot[3]
    cast = x.to(dtype)
    _CAST[0] = (weakref.ref(x), x._version, dtype, cast)
    return cast


def compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    """The dtype a matmul of `x` with `weight` runs in: autocast's when it is on for x's device, else the
    weight's (what F.linear would do; custom autograd functions switch autocast off and cast themselves)."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def _keep_mask(like: torch.Tensor, p: float) -> torch.Tensor:
    """Dropout's kept positions (bool, 1 byte each), drawn from torch's generator as nn.Dropout draws."""
    return torch.rand(like.shape, device=like.device) >= p


class _LoraDelta(torch.autograd.Function):
    """scale * B(A(dropout(x))) in the autocast dtype, keeping for the backward only x in that dtype (one
    copy shared by the adapters that read the same tensor), the dropout mask as bools, and the rank-sized
    A(x). peft keeps, per adapter, the cast dropped input and, on the CPU, the fp32 dropout noise."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float, p: float
    ) -> torch.Tensor:
        dtype = compute_dtype(x, a)
        with torch.autocast(x.device.type, enabled=False):
            xc = _shared_cast(x, dtype)
            keep = _keep_mask(xc, p) if p > 0 else None
            # dropout's 1 / (1 - p) goes into the scale: B(A(x * keep / (1 - p))) = B(A(x * keep)) / (1 - p)
            scale = scale / (1.0 - p)
            h = F.linear(xc * keep if keep is not None else xc, a.to(dtype))
            out = F.linear(h, b.to(dtype)) * scale
        ctx.save_for_backward(xc, keep, h, a, b)
        ctx.scale, ctx.x_dtype = scale, x.dtype
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xc, keep, h, a, b = ctx.saved_tensors
        dtype = xc.dtype
        gs = grad.to(dtype) * ctx.scale
        grad_x = grad_a = grad_b = None
        if ctx.needs_input_grad[2]:
            grad_b = gs.reshape(-1, gs.shape[-1]).t().mm(h.reshape(-1, h.shape[-1])).to(b.dtype)
        gh = gs.matmul(b.to(dtype))
        if ctx.needs_input_grad[1]:
            xd = xc * keep if keep is not None else xc
            grad_a = gh.reshape(-1, gh.shape[-1]).t().mm(xd.reshape(-1, xd.shape[-1])).to(a.dtype)
        if ctx.needs_input_grad[0]:
            gx = gh.matmul(a.to(dtype))
            grad_x = (gx * keep if keep is not None else gx).to(ctx.x_dtype)
        return grad_x, grad_a, grad_b, None, None


def lora_delta(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, scale: float, p: float) -> torch.Tensor:
    """The adapter's branch scale * B(A(dropout(x))) for training (see `_LoraDelta`)."""
    return _LoraDelta.apply(x, a, b, scale, p)
