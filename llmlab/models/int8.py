"""W8A8 linear layers for the fused Llama path: SmoothQuant scales + int8 weights + per-token int8 activations.

SmoothQuant (Xiao et al., 2022, arXiv:2211.10438) moves activation outliers into the weights before quantizing:

    s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha)        X' = X diag(s)^-1,   W' = W diag(s),   X'W'^T = XW^T

The division by s is folded into the previous operation (an RMSNorm weight, the up projection, or the value
projection), so it costs nothing at run time. Weights are then quantized symmetrically per output channel
(int8) and activations dynamically per token (asymmetric uint8) by fbgemm's `quantized::linear_dynamic`.

Departure: fbgemm quantizes activations per tensor. A single row (batch-1 decoding) is already per token; for
several rows we normalise each row affinely to [-1, 1] first, x' = (x - c) / h, and undo it on the output,
W x = h W x' + c W 1, which makes the per-tensor range equal every row's own range.

Measured on SmolLM2-135M (tests/models/test_int8.py::test_int8_perplexity_within_2_percent, slow):
perplexity +0.4% with alpha = 0.5, versus +3.7% without smoothing.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import torch

ALPHA = 0.5

# Mixed-domain text for collecting activation maxima (not the text the quality test measures).
CALIBRATION_TEXT = (
    "Python is a programming language that lets you work quickly and integrate systems effectively. "
    "The weather today is sunny with a light breeze from the west, and tomorrow brings rain. "
    "In 1492, Columbus sailed across the Atlantic; the journey took about ten weeks. "
    "<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\nMix flour, water, salt and "
    "yeast, knead the dough, let it rise for an hour, then bake it at 220 degrees for thirty minutes.<|im_end|>\n"
    "Question: What is the boiling point of water? Answer: 100 °C at sea level. def mean(xs): return sum(xs) / "
    "len(xs)  # 3.14159, 2.71828, $19.99, 50%, café, naïve, 東京"
)


@functools.cache
def int8_supported() -> bool:
    """fbgemm int8 kernels without range reduction need VNNI (AVX-512 VNNI or AVX-VNNI)."""
    if "fbgemm" not in torch.backends.quantized.supported_engines:
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


class Int8Linear:
    """y = x W^T + b with int8 weights (per output channel) and per-token int8 activations."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        weight = weight.detach().float()
        scale = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-8).double()
        zero = torch.zeros(weight.shape[0], dtype=torch.long)
        with (
            warnings.catch_warnings()
        ):  # quantized tensor creation is deprecated in torch 2.13, still the fast path
            warnings.simplefilter("ignore")
            qweight = torch.quantize_per_channel(weight, scale, zero, 0, torch.qint8)
            self.packed = torch.ops.quantized.linear_prepack(qweight, None)
        self.row_sums = qweight.dequantize().sum(dim=1)  # (out,) = W 1, to undo the row shift
        self.bias = None if bias is None else bias.detach().float()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == x.shape[-1]:  # one row: per-tensor is per-token
            y = torch.ops.quantized.linear_dynamic(x, self.packed, False)
        else:
            high, low = x.amax(dim=-1, keepdim=True), x.amin(dim=-1, keepdim=True)
            center, half = (high + low) / 2, ((high - low) / 2).clamp_min(1e-6)
            # in place where the result is fresh: a prefill's (tokens, out) temporaries cost more than the
            # matmul (bench/generate.py's time to first token); the same operations, so the same numbers
            y = torch.ops.quantized.linear_dynamic((x - center).div_(half), self.packed, False)
            y = y.mul_(half).add_(center * self.row_sums)
        return y if self.bias is None else y.add_(self.bias)


@torch.inference_mode()
def activation_maxima(model: Any, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """max |x_j| per input channel of every nn.Linear, over one forward pass of `input_ids` (1, T)."""
    maxima: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Any:
        def record(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            x = inputs[0].detach().float().abs().reshape(-1, inputs[0].shape[-1]).amax(dim=0)
            maxima[name] = torch.maximum(maxima[name], x) if name in maxima else x

        return record

    handles = [
        module.register_forward_hook(hook(name))
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    ]
    try:
        model(input_ids.to(next(model.parameters()).device))
    finally:
        for handle in handles:
            handle.remove()
    return maxima


def smooth_scales(act_max: torch.Tensor, weight: torch.Tensor, alpha: float = ALPHA) -> torch.Tensor:
    """s_j = max|X_j|^alpha / max|W_:,j|^(1 - alpha) for weight (out, in); (in,)."""
    w_max = weight.detach().float().abs().amax(dim=0).clamp_min(1e-5)
    return (act_max.float().clamp_min(1e-5) ** alpha / w_max ** (1 - alpha)).clamp_min(1e-5)


def calibration_ids(tokenizer: Any) -> torch.Tensor:
    return torch.tensor([tokenizer(CALIBRATION_TEXT, add_special_tokens=False)["input_ids"]])
