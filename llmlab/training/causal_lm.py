"""Next-token cross-entropy for decoder-only models, computed on the target positions only.

    loss_sum = Σ_{t : y_t ≠ -100} −log softmax(W_out h_t)[y_t]        h = the decoder's last hidden states

`targets` are already shifted (targets[t] is the token after input t, -100 where nothing is learned; see
`llmlab.data.packing`). The output projection runs only on the N target positions, (N, H) @ (H, V), rather
than on all B·T positions: prompt tokens of instruction data and padding cost no vocabulary-sized logits, and
the logits are upcast to fp32 for the softmax. When the N × V logits would be large (more than CHUNK_LOGITS
values), they are computed a chunk of rows at a time, with their gradients (`chunked_losses`): the same
sum, with the logits never all held at once and the output projection never run twice. A soft prompt
(prompt tuning) goes in front of the inputs as the model's own call would put it, and its positions are
left out of the loss. Models whose logits
are more than `lm_head(hidden)` (soft-capped or scaled logits) take the plain path: the full forward, then
the same selection.

Batches carry `input_ids`, `targets` and `position_ids` (B, T); the position ids restart at every packed
document, so transformers builds a block-diagonal causal mask (no attention across documents).
Parity: tests/training/test_causal_lm.py::test_matches_transformers_loss (equals the model's own loss from
`labels`, times the number of targets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from llmlab.data.packing import IGNORE
from llmlab.peft.lora import compute_dtype
from llmlab.training.objective import Batch, LossOutput

if TYPE_CHECKING:
    from torch import nn

# Config attributes that mean logits are not just lm_head(hidden_states).
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def _unwrap(model: Any) -> Any:
    return getattr(model, "module", model)  # DistributedDataParallel and similar wrappers


def split_head(model: Any) -> tuple[Any, Any] | None:
    """(decoder body returning hidden states, output projection), or None when logits need the full forward."""
    model = _unwrap(model)
    config = getattr(model, "config", None)
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS):
        return None
    body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if body is None or head is None or body is model:
        return None
    return body, head


def hidden_states(body: Any, batch: Batch, model: Any = None) -> torch.Tensor:
    """(B, P + T, H) last hidden states; no KV cache, so packed position ids give the block-diagonal mask.
    P > 0 when `model` has an active soft prompt (prompt tuning), put in front as the model's own call would."""
    from llmlab.peft.prompt_tuning import prompt_inputs

    inputs = {"input_ids": batch["input_ids"], "position_ids": batch.get("position_ids"), "use_cache": False}
    out = body(**(prompt_inputs(_unwrap(model), inputs) if model is not None else inputs))
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


def target_hidden(body: Any, batch: Batch, model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(last hidden states (N, H) at the N target positions, their targets (N,))."""
    targets = batch["targets"]  # (B, T)
    T = targets.shape[1]  # outputs may have soft-prompt positions in front: the last T are the tokens'
    keep = targets != IGNORE  # (B, T)
    return hidden_states(body, batch, model)[:, -T:][keep], targets[keep]


def target_logits(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, V) at the N target positions, their targets (N,)); the head runs on those positions only."""
    parts = split_head(model)
    if parts is not None:
        body, head = parts
        hidden, y = target_hidden(body, batch, model)
        return head(hidden), y
    targets = batch["targets"]
    out = _unwrap(model)(
        input_ids=batch["input_ids"], position_ids=batch.get("position_ids"), use_cache=False
    )
    return out.logits[:, -targets.shape[1] :][targets != IGNORE], targets[targets != IGNORE]


def token_losses(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed loss over target positions, per-target argmax-correct flags (N,)); long batches go through the
    head in chunks (`chunked_losses`), so the (N, V) logits are never held at once."""
    parts = split_head(model)
    if parts is None:
        return _plain_loss(*target_logits(model, batch))
    body, head = parts
    return head_losses(head, *target_hidden(body, batch, model))


def head_losses(head: Any, hidden: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`token_losses` of hidden states (N, H) and their targets (N,) through the output projection `head`:
    in chunks (`chunked_losses`) when the N × V logits would be large, else at once."""
    if hidden.shape[0] * head.weight.shape[0] > CHUNK_LOGITS:
        return chunked_losses(head, hidden, y)
    return _plain_loss(head(hidden), y)  # (N, V) logits


def _plain_loss(logits: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ −log softmax(logits)[y] in fp32, argmax-correct flags)."""
    return F.cross_entropy(logits.float(), y, reduction="sum"), logits.detach().argmax(-1) == y


CHUNK_LOGITS = 2**24  # logits held at once by the chunked loss: 64 MB in fp32


class _HeadLoss(torch.autograd.Function):
    """Σ −log softmax(h W^T + b)[y] over the rows of h, a chunk of rows at a time, with the gradients computed
    in the forward pass, chunk by chunk (softmax − one-hot, times W for h, and times h for W when W trains):
    the (N, V) logits are never held at once and never recomputed. The backward only scales the stored
    gradients by the incoming one (the loss is a sum, so that is exact). Under autocast the matmuls run in the
    autocast dtype and the softmax in fp32, as `F.cross_entropy(head(h).float(), y)` runs them.
    Liger-Kernel's fused linear cross-entropy does the same on GPUs."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        y: torch.Tensor,
        rows: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        device = hidden.device.type
        dtype = compute_dtype(hidden, weight)
        with torch.autocast(device, enabled=False):
            h, w = hidden.to(dtype), weight.to(dtype)
            b = bias.to(dtype) if bias is not None else None
            grads: dict[str, torch.Tensor] = {}  # what the backward returns: for hidden, weight, bias
            if ctx.needs_input_grad[0]:
                grads["hidden"] = torch.empty_like(h)
            if ctx.needs_input_grad[1]:
                grads["weight"] = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
            if bias is not None and ctx.needs_input_grad[2]:
                grads["bias"] = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device)
            total = torch.zeros((), dtype=torch.float32, device=hidden.device)
            correct = []
            for start in range(0, h.shape[0], rows):
                hc, yc = h[start : start + rows], y[start : start + rows]
                logits = F.linear(hc, w, b).float()  # (C, V)
                correct.append(logits.argmax(-1) == yc)
                lse = torch.logsumexp(logits, -1)
                total += (lse - logits.gather(1, yc[:, None]).squeeze(1)).sum()
                # d loss / d logits = softmax - one-hot, computed in place in the logits' buffer
                probs = logits.sub_(lse[:, None]).exp_()
                probs[torch.arange(yc.shape[0], device=yc.device), yc] -= 1.0
                g = probs.to(dtype)
                if "hidden" in grads:
                    torch.mm(g, w, out=grads["hidden"][start : start + rows])
                if "weight" in grads and dtype == torch.float32:
                    grads["weight"].addmm_(g.t(), hc)  # accumulated by the matmul itself
                elif "weight" in grads:
                    grads["weight"] += (g.t() @ hc).float()
                if "bias" in grads:
                    grads["bias"] += probs.sum(0)
        ctx.save_for_backward(*grads.values())
        ctx.keys = tuple(grads)
        ctx.dtypes = {
            "hidden": hidden.dtype,
            "weight": weight.dtype,
            "bias": bias.dtype if bias is not None else None,
        }
        return total, torch.cat(correct)

    @staticmethod
    def backward(ctx: Any, grad_loss: torch.Tensor, _grad_correct: Any) -> tuple[torch.Tensor | None, ...]:
        stored = dict(zip(ctx.keys, ctx.saved_tensors, strict=True))
        out = [
            (stored[k] * grad_loss).to(ctx.dtypes[k]) if k in stored else None
            for k in ("hidden", "weight", "bias")
        ]
        return out[0], out[1], out[2], None, None


def chunked_losses(head: Any, hidden: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The same sum over target positions, CHUNK_LOGITS / V rows at a time (`_HeadLoss`): N × V fp32 logits,
    their softmax and gradient would dominate the memory of a small-model step. Without a gradient to compute
    (validation, or nothing trains), the chunks only compute the loss."""
    rows = max(1, CHUNK_LOGITS // head.weight.shape[0])
    trained = [t for t in (hidden, head.weight, head.bias) if t is not None and t.requires_grad]
    if torch.is_grad_enabled() and trained:
        return _HeadLoss.apply(hidden, head.weight, head.bias, y, rows)
    parts = [
        _plain_loss(head(hidden[i : i + rows]), y[i : i + rows]) for i in range(0, hidden.shape[0], rows)
    ]
    return torch.stack([loss for loss, _ in parts]).sum(), torch.cat([ok for _, ok in parts])


class CausalLMObjective:
    """Language modelling on the unmasked target tokens; reports perplexity and next-token accuracy."""

    perplexity = True

    def units(self, batch: Batch) -> int:
        return int((batch["targets"] != IGNORE).sum())

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"]) if "tokens" in batch else batch["input_ids"].numel()

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        loss, correct = token_losses(model, batch)
        return LossOutput(loss, {"accuracy": float(correct.sum())})
