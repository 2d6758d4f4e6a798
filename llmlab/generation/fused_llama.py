"""A fused inference path for the Llama family: the same maths as transformers' LlamaForCausalLM, less overhead.

    h = x + o(attn(rope(q), rope(k), v)),  q|k|v = W_qkv rms_norm(x)         (one fused QKV matmul)
    y = h + down(silu(gate) * up),          gate|up = W_gu rms_norm(h)       (one fused gate/up matmul)

Why it exists: decoding a 135M model at batch 1 is memory-bound, and transformers' module code spends as long
in Python as in the matmuls. This path fuses projections, keeps a preallocated KV cache (L, B, H_kv, T, D),
and can hold its linear weights in three precisions:

- "fp32": the exact path, equal to transformers (parity: tests/generation/test_fused_llama.py).
- "bf16": bf16 weights and matmul inputs, fp32 elsewhere.
- "int8": SmoothQuant-scaled int8 weights and per-token int8 activations (models/int8.py): 4x fewer weight bytes
  per token than fp32, perplexity within 2% (tests/models/test_int8.py, slow).

Parity: tests/generation/test_engine.py::test_fused_logits_equal_transformers_forward
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from llmlab.errors import ConfigError
from llmlab.models.int8 import Int8Linear, activation_maxima, int8_supported, smooth_scales

Precision = Literal["fp32", "bf16", "int8"]
Linear = Callable[[torch.Tensor], torch.Tensor]


def supports(model: Any) -> bool:
    """True for transformers Llama models (the family this path implements)."""
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) == "llama" and hasattr(model, "model")


def _make_linear(weight: torch.Tensor, bias: torch.Tensor | None, precision: Precision) -> Linear:
    weight = weight.detach().float()
    bias = None if bias is None else bias.detach().float()
    if precision == "int8":
        return Int8Linear(weight, bias)
    if precision == "bf16":
        w16 = weight.to(torch.bfloat16)
        return lambda x: F.linear(x.to(torch.bfloat16), w16).float() + (0 if bias is None else bias)
    return lambda x: F.linear(x, weight, bias)


def _cat_bias(*linears: Any) -> torch.Tensor | None:
    if linears[0].bias is None:
        return None
    return torch.cat([lin.bias for lin in linears]).detach().float()


@dataclass
class _Layer:
    norm1: torch.Tensor
    qkv: Linear
    o: Linear
    norm2: torch.Tensor
    gate_up: Linear
    down: Linear
    sources: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """What each linear was built from (`_fingerprint`): a later build reuses it when they are unchanged."""


def _fingerprint(*tensors: torch.Tensor | None) -> tuple[Any, ...]:
    """The tensors, each as (weak reference, in-place version, storage address): equal only for the same live
    tensors, unchanged (a dead tensor's weak reference never matches; a swapped `.data` changes the address)."""
    return tuple(None if t is None else (weakref.ref(t), t._version, t.data_ptr()) for t in tensors)


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if len(a) != len(b) or not a:
        return False
    for x, y in zip(a, b, strict=True):
        if (x is None) != (y is None):
            return False
        if x is not None and (x[0]() is None or x[0]() is not y[0]() or x[1:] != y[1:]):
            return False
    return True


class KVCache:
    """Preallocated keys and values for every layer: (L, B, H_kv, T_max, D); `length` positions are filled.

    Rows are left-padded: every row's tokens end at column `length`; the engine's key mask marks padding."""

    def __init__(
        self,
        layers: int,
        batch: int,
        kv_heads: int,
        max_len: int,
        head_dim: int,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
    ):
        shape = (layers, batch, kv_heads, max_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[3]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only the given batch rows (finished sequences stop costing compute)."""
        self.k = self.k.index_select(1, rows)
        self.v = self.v.index_select(1, rows)

    def trim(self, start: int) -> None:
        """Drop the first `start` columns (padding in every row): a view, nothing is copied."""
        self.k, self.v = self.k[:, :, :, start:], self.v[:, :, :, start:]
        self.length -= start

    @staticmethod
    def join(a: KVCache, b: KVCache, capacity: int) -> KVCache:
        """a's rows then b's, right-aligned at column max(a.length, b.length); room for `capacity` columns."""
        length = max(a.length, b.length)
        L, Ba, H, _, D = a.k.shape  # (L, B, H_kv, T, D)
        out = KVCache(L, Ba + b.k.shape[1], H, max(capacity, length), D, a.k.device, a.k.dtype)
        for rows, part in ((slice(0, Ba), a), (slice(Ba, None), b)):
            cols = slice(length - part.length, length)
            out.k[:, rows, :, cols] = part.k[:, :, :, : part.length]
            out.v[:, rows, :, cols] = part.v[:, :, :, : part.length]
        out.length = length
        return out


class FusedLlama:
    """Inference-only view of a LlamaForCausalLM; shares its embedding weights.

    Args:
        precision: "fp32" (exact), "bf16", or "int8" (give `calibration_ids` for SmoothQuant scales).
        calibration_ids: (1, T) token ids of representative text; activation maxima from one fp32 forward
            pass over them set the SmoothQuant scales (a no-op on the maths: only rounding changes).
        maxima: those activation maxima, already measured (instead of `calibration_ids`).
        reuse: a FusedLlama built earlier from the same model: its layers whose weights are unchanged (the
            same tensors, not modified since) are taken over rather than built again.
    """

    layers: list[_Layer]
    lm_head: Linear

    def __init__(
        self,
        model: Any,
        precision: Precision = "fp32",
        calibration_ids: torch.Tensor | None = None,
        maxima: dict[str, torch.Tensor] | None = None,
        reuse: FusedLlama | None = None,
    ):
        if not supports(model):
            raise ValueError("FusedLlama needs a transformers Llama model")
        device = next(model.parameters()).device
        if precision == "int8" and device.type != "cpu":
            raise ConfigError(
                f"--precision int8 runs on the CPU only (fbgemm kernels), and the model is on {device}; "
                "use --precision bf16 or fp32 there"
            )
        if precision == "int8" and not int8_supported():
            raise ConfigError(
                "--precision int8 needs fbgemm with VNNI instructions on this CPU; use --precision fp32 or bf16"
            )
        cfg = model.config
        self.precision = precision
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.heads
        self.eps = cfg.rms_norm_eps
        self.inter = cfg.intermediate_size
        inner = model.model
        self.embed = inner.embed_tokens.weight.detach().float()
        self.norm = inner.norm.weight.detach().float()
        rotary = inner.rotary_emb
        self.inv_freq = rotary.inv_freq.detach().float()
        self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))
        if maxima is None and calibration_ids is not None:
            maxima = activation_maxima(model, calibration_ids)
        self.maxima = maxima
        # An engine rebuilt after an adapter switch: layers built from the same unchanged weights, precision and
        # calibration are taken over instead of quantized and packed again (int8 packing is the slow part).
        same = reuse is not None and reuse.precision == precision and reuse.maxima is maxima
        old = reuse.layers if same and reuse is not None else []
        self.layers = [
            self._fuse(layer, precision, maxima, f"model.layers.{i}.", old[i] if i < len(old) else None)
            for i, layer in enumerate(inner.layers)
        ]
        head = model.lm_head
        self.head_sources = _fingerprint(head.weight, head.bias)
        if same and reuse is not None and _same(reuse.head_sources, self.head_sources):
            self.lm_head = reuse.lm_head
        else:
            self.lm_head = _make_linear(head.weight, head.bias, precision)
        self.device = self.embed.device

    def _fuse(
        self, layer: Any, precision: Precision, maxima: dict[str, Any] | None, name: str, old: _Layer | None
    ) -> _Layer:
        a, m = layer.self_attn, layer.mlp
        # What each fused linear is computed from (with smoothing: v rows are scaled by o_proj's scales, up
        # rows by down_proj's); a linear of `old` built from the same unchanged tensors is reused as it is.
        sources = {
            "qkv": _fingerprint(*(t for lin in (a.q_proj, a.k_proj, a.v_proj, a.o_proj) for t in (lin.weight, lin.bias))),
            "o": _fingerprint(a.o_proj.weight, a.o_proj.bias),
            "gate_up": _fingerprint(*(t for lin in (m.gate_proj, m.up_proj, m.down_proj) for t in (lin.weight, lin.bias))),
            "down": _fingerprint(m.down_proj.weight, m.down_proj.bias),
        }  # fmt: skip

        def linear(part: str, weight: torch.Tensor, bias: torch.Tensor | None) -> Linear:
            if old is not None and _same(old.sources.get(part, ()), sources[part]):
                return getattr(old, part)
            return _make_linear(weight, bias, precision)

        qkv_w = torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).detach().float()
        qkv_b = _cat_bias(a.q_proj, a.k_proj, a.v_proj)
        gu_w = torch.cat([m.gate_proj.weight, m.up_proj.weight]).detach().float()
        gu_b = _cat_bias(m.gate_proj, m.up_proj)
        o_w, down_w = a.o_proj.weight.detach().float(), m.down_proj.weight.detach().float()
        norm1 = layer.input_layernorm.weight.detach().float()
        norm2 = layer.post_attention_layernorm.weight.detach().float()
        if maxima is not None:  # SmoothQuant: fold 1/s into the op before each linear, s into its weight
            s = smooth_scales(maxima[name + "self_attn.q_proj"], qkv_w)
            norm1, qkv_w = norm1 / s, qkv_w * s
            s = smooth_scales(maxima[name + "mlp.gate_proj"], gu_w)
            norm2, gu_w = norm2 / s, gu_w * s
            s = smooth_scales(maxima[name + "mlp.down_proj"], down_w)
            gu_w[self.inter :] /= s[:, None]  # up rows: silu(gate) * up / s
            gu_b = None if gu_b is None else torch.cat([gu_b[: self.inter], gu_b[self.inter :] / s])
            down_w = down_w * s
            s_kv = self._value_scales(smooth_scales(maxima[name + "self_attn.o_proj"], o_w))
            v_rows = slice((self.heads + self.kv_heads) * self.head_dim, None)
            qkv_w[v_rows] /= s_kv[:, None]
            if qkv_b is not None:
                qkv_b[v_rows] /= s_kv
            o_w = o_w * s_kv.view(self.kv_heads, 1, self.head_dim).expand(
                -1, self.heads // self.kv_heads, -1
            ).reshape(-1)
        return _Layer(
            norm1=norm1,
            qkv=linear("qkv", qkv_w, qkv_b),
            o=linear("o", o_w, a.o_proj.bias),
            norm2=norm2,
            gate_up=linear("gate_up", gu_w, gu_b),
            down=linear("down", down_w, m.down_proj.bias),
            sources=sources,
        )

    def _value_scales(self, s: torch.Tensor) -> torch.Tensor:
        """o_proj's input channel (head h, dim d) reads value channel (h // group, d): heads sharing a value
        head must share its scale, so take the group's maximum. (H D,) -> (H_kv D,)."""
        group = self.heads // self.kv_heads
        return s.view(self.kv_heads, group, self.head_dim).amax(dim=1).reshape(-1)

    def new_cache(self, batch: int, max_len: int) -> KVCache:
        return KVCache(len(self.layers), batch, self.kv_heads, max_len, self.head_dim, self.device)

    def _rope(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float()[..., None] * self.inv_freq  # (B, S, D/2)
        emb = torch.cat([freqs, freqs], dim=-1)[:, None]  # (B, 1, S, D)
        return emb.cos() * self.rope_scale, emb.sin() * self.rope_scale

    @staticmethod
    def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
        return x * cos + rotated * sin

    @torch.inference_mode()
    def forward(
        self,
        cache: KVCache,
        positions: torch.Tensor,
        key_mask: torch.Tensor | None,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        last_only: bool = True,
    ) -> torch.Tensor:
        """Run S new positions for every row, appending them to the cache.

        Args:
            cache: filled up to `cache.length`; grows by S.
            positions: (B, S) rotary positions of the new tokens.
            key_mask: (B, cache.length + S) bool, False at padding; None when no row has padding.
            input_ids: (B, S) token ids, or `inputs_embeds` (B, S, H).
            last_only: return logits for the last position only (B, V), else (B, S, V).
        """
        if inputs_embeds is None:
            assert input_ids is not None
            x = F.embedding(input_ids, self.embed)
        else:
            x = inputs_embeds.float()
        B, S, _ = x.shape  # (B, S, H)
        start, end = cache.length, cache.length + S
        cos, sin = self._rope(positions)
        attn_mask = self._attention_mask(key_mask, S, start, end)
        H, KV, D = self.heads, self.kv_heads, self.head_dim
        for i, layer in enumerate(self.layers):
            h = F.rms_norm(x, (x.shape[-1],), layer.norm1, self.eps)
            qkv = layer.qkv(h)  # (B, S, (H + 2 KV) D)
            qk = qkv[..., : (H + KV) * D].view(B, S, H + KV, D).transpose(1, 2)
            qk = self._rotate(qk, cos, sin)  # q and k heads in one rotation, (B, H + KV, S, D)
            q, k = qk[:, :H], qk[:, H:]
            v = qkv[..., (H + KV) * D :].view(B, S, KV, D).transpose(1, 2)
            cache.k[i, :, :, start:end] = k
            cache.v[i, :, :, start:end] = v
            keys, values = cache.k[i, :, :, :end], cache.v[i, :, :, :end]
            att = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=attn_mask, is_causal=attn_mask is None and S > 1, enable_gqa=True
            )  # (B, H, S, D)
            x = x + layer.o(att.transpose(1, 2).reshape(B, S, H * D))
            h = F.rms_norm(x, (x.shape[-1],), layer.norm2, self.eps)
            gu = layer.gate_up(h)
            x = x + layer.down(F.silu(gu[..., : self.inter]) * gu[..., self.inter :])
        cache.length = end
        if last_only:
            x = x[:, -1]
        return self.lm_head(F.rms_norm(x, (x.shape[-1],), self.norm, self.eps)).float()

    def _attention_mask(
        self, key_mask: torch.Tensor | None, S: int, start: int, end: int
    ) -> torch.Tensor | None:
        """(B, 1, S, end) bool: causal and not padding; a padded query may see itself (avoids NaN rows)."""
        if key_mask is None:
            if S == 1 or start == 0:
                return None  # plain decode step, or a causal prefill from position 0
            key_mask = torch.ones(1, end, dtype=torch.bool, device=self.device)
        query_pos = torch.arange(start, end, device=key_mask.device)[:, None]  # (S, 1)
        key_pos = torch.arange(end, device=key_mask.device)[None, :]  # (1, end)
        allowed = (key_pos <= query_pos)[None] & key_mask[:, None, :end]  # (B, S, end)
        allowed |= key_pos == query_pos
        return allowed[:, None]
