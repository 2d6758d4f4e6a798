"""A fused inference forward for BERT encoders: the same maths as transformers' BertModel, fewer passes.

    x = LN(E_word[ids] + E_pos[t] + E_type[0])
    x = LN(x + o(attn(q, k, v, mask))),   q|k|v = W_qkv x + b_qkv              (one fused QKV matmul)
    x = LN(x + down(act(up x)))                                                 (post-LN, as in BERT)

Returns the last hidden state (B, T, C), as `BertModel(...).last_hidden_state` does; padded positions hold
values that pooling ignores. Attention is torch's `scaled_dot_product_attention` with the padding mask.

Why it exists: embedding chunks on a CPU in bf16, transformers' module spends a third of its time outside
the matrix products: an extra copy of the bias into every linear output, GELU and the residual add as
separate passes over memory. Here, for bf16 on a CPU, each linear runs as one oneDNN call with the bias and
GELU (up projection) or the residual add (output projections) fused in (`torch.ops.mkldnn._linear_pointwise`,
the kernels torch.compile's CPU backend emits). Measured with bench/rag.py (docs/rag-store.md).

- "fp32": plain torch ops in float32, equal to transformers' BertModel to ~1e-6.
- "bf16": bf16 weights, activations and residual stream; the embedding sum and every layer norm's statistics
  in float32 (layer norm accumulates in fp32 for bf16 input), softmax in float32 inside the attention kernel.

Parity: tests/rag/test_embedding.py::test_fused_bert_equals_transformers
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

Precision = Literal["fp32", "bf16"]
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}
# The same activations as oneDNN post-ops: (name, algorithm) for _linear_pointwise.
_ONEDNN_ACTIVATIONS = {
    "gelu": ("gelu", "none"),
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "relu": ("relu", ""),
}


def supports(model: Any) -> bool:
    """True for a transformers BertModel (encoder only, absolute positions) with an activation we implement."""
    config = getattr(model, "config", None)
    return (
        getattr(config, "model_type", None) == "bert"
        and hasattr(model, "embeddings")
        and hasattr(model, "encoder")
        and not getattr(config, "is_decoder", False)
        and getattr(config, "position_embedding_type", "absolute") == "absolute"
        and getattr(config, "hidden_act", None) in ACTIVATIONS
    )


def onednn_available(device: torch.device) -> bool:
    """oneDNN's fused linear ops exist in torch's x86 CPU builds; they run on CPU tensors only."""
    return (
        device.type == "cpu"
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    )


@functools.cache
def onednn_bf16_works() -> bool:
    """Whether oneDNN can build a bf16 linear here: it cannot on CPUs without AVX-512 (AVX2 only, or with
    `ONEDNN_MAX_CPU_ISA=AVX2`), where it raises "could not create a primitive descriptor"; the fused path then
    runs its bf16 linears through `F.linear` instead (issue 8: `rag ingest` crashed under AVX2 kernels)."""
    if not onednn_available(torch.device("cpu")):
        return False
    x, w = torch.ones(2, 16, dtype=torch.bfloat16), torch.ones(8, 16, dtype=torch.bfloat16)
    try:
        torch.ops.mkldnn._linear_pointwise(x, w, torch.zeros(8, dtype=torch.bfloat16), "none", [], "")
    except RuntimeError:
        return False
    return True


@dataclass
class _Layer:
    qkv_w: torch.Tensor  # (3C, C)
    qkv_b: torch.Tensor  # (3C,)
    o_w: torch.Tensor
    o_b: torch.Tensor
    norm1: tuple[torch.Tensor, torch.Tensor]
    up_w: torch.Tensor
    up_b: torch.Tensor
    down_w: torch.Tensor
    down_b: torch.Tensor
    norm2: tuple[torch.Tensor, torch.Tensor]


class FusedBert:
    """Inference-only view of a transformers BertModel; copies its weights into the chosen precision.

    Args:
        model: a BertModel (see `supports`).
        precision: "fp32" (exact) or "bf16".
    """

    def __init__(self, model: Any, precision: Precision = "fp32"):
        if not supports(model):
            raise ValueError("FusedBert needs a transformers BertModel with absolute positions")
        cfg = model.config
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.heads = cfg.num_attention_heads
        self.width = cfg.hidden_size
        self.eps = cfg.layer_norm_eps
        self.act = cfg.hidden_act
        emb = model.embeddings
        self.word = emb.word_embeddings.weight.detach().float()
        self.position = emb.position_embeddings.weight.detach().float()
        self.type0 = emb.token_type_embeddings.weight.detach()[0].float()
        self.norm0 = (emb.LayerNorm.weight.detach().float(), emb.LayerNorm.bias.detach().float())
        self.device = self.word.device
        self.onednn = self.dtype == torch.bfloat16 and onednn_available(self.device) and onednn_bf16_works()
        self.layers = [self._fuse(layer) for layer in model.encoder.layer]

    def _fuse(self, layer: Any) -> _Layer:
        def cast(*tensors: torch.Tensor) -> torch.Tensor:
            return torch.cat([t.detach() for t in tensors]).to(self.dtype).contiguous()

        a, out = layer.attention, layer.attention.output
        return _Layer(
            qkv_w=cast(a.self.query.weight, a.self.key.weight, a.self.value.weight),
            qkv_b=cast(a.self.query.bias, a.self.key.bias, a.self.value.bias),
            o_w=cast(out.dense.weight),
            o_b=cast(out.dense.bias),
            norm1=(cast(out.LayerNorm.weight), cast(out.LayerNorm.bias)),
            up_w=cast(layer.intermediate.dense.weight),
            up_b=cast(layer.intermediate.dense.bias),
            down_w=cast(layer.output.dense.weight),
            down_b=cast(layer.output.dense.bias),
            norm2=(cast(layer.output.LayerNorm.weight), cast(layer.output.LayerNorm.bias)),
        )

    def _embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        x = F.embedding(input_ids, self.word) + self.type0 + self.position[:T]  # (B, T, C) float32
        return F.layer_norm(x, (self.width,), *self.norm0, self.eps).to(self.dtype)

    def _linear_act(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            name, algorithm = _ONEDNN_ACTIVATIONS[self.act]
            return torch.ops.mkldnn._linear_pointwise(x, w, b, name, [], algorithm)
        return ACTIVATIONS[self.act](F.linear(x, w, b))

    def _linear_add(
        self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, residual: torch.Tensor
    ) -> torch.Tensor:
        """x W^T + b + residual."""
        if self.onednn:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, w, b, "add")
        return residual + F.linear(x, w, b)

    def _linear(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")
        return F.linear(x, w, b)

    @torch.inference_mode()
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last hidden state (B, T, C) in the path's dtype, for (B, T) ids and a (B, T) 0/1 mask."""
        B, T = input_ids.shape
        H, C = self.heads, self.width
        x = self._embed(input_ids)  # (B, T, C)
        keep = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): keys a query may attend to
        for layer in self.layers:
            qkv = self._linear(x, layer.qkv_w, layer.qkv_b)  # (B, T, 3C)
            q, k, v = qkv.view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # each (B, H, T, D)
            att = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # (B, H, T, D)
            att = att.transpose(1, 2).reshape(B, T, C)
            x = F.layer_norm(self._linear_add(att, layer.o_w, layer.o_b, x), (C,), *layer.norm1, self.eps)
            h = self._linear_act(x, layer.up_w, layer.up_b)  # (B, T, 4C)
            x = F.layer_norm(self._linear_add(h, layer.down_w, layer.down_b, x), (C,), *layer.norm2, self.eps)
        return x

    __call__ = forward
