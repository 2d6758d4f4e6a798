"""The three transformer kinds as tiny random models, one batch each, and peft's name for each task."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

VOCAB = 320


@dataclass(frozen=True)
class Kind:
    name: str
    build: Callable[[], torch.nn.Module]
    task_type: str
    """peft's TaskType for this kind."""
    targets: tuple[str, ...]
    """Query and value projections (peft's default LoRA targets for the family)."""

    def model(self) -> torch.nn.Module:
        return copy.deepcopy(_built(self.name, self.build))


_CACHE: dict[str, torch.nn.Module] = {}


def _built(name: str, build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    if name not in _CACHE:
        _CACHE[name] = build()
    return _CACHE[name]


def _llama() -> torch.nn.Module:
    from tiny import tiny_llama

    return tiny_llama(VOCAB, seed=5)


def _bert() -> torch.nn.Module:
    from tiny import tiny_bert

    return tiny_bert(VOCAB, seed=5)


def _t5() -> torch.nn.Module:
    from tiny import tiny_t5

    return tiny_t5(VOCAB, seed=5)


KINDS = {
    "decoder-only": Kind("decoder-only", _llama, "CAUSAL_LM", ("q_proj", "v_proj")),
    "encoder-only": Kind("encoder-only", _bert, "FEATURE_EXTRACTION", ("query", "value")),
    "encoder-decoder": Kind("encoder-decoder", _t5, "SEQ_2_SEQ_LM", ("q", "v")),
}
KIND_NAMES = list(KINDS)

IDS = torch.tensor([[5, 17, 42, 99, 7, 250, 13, 64], [11, 12, 13, 14, 15, 16, 3, 3]])
MASK = torch.tensor([[1] * 8, [1] * 6 + [0] * 2])
DECODER_IDS = torch.tensor([[3, 8, 9, 10, 11], [3, 21, 22, 23, 24]])


def batch(kind: str) -> dict[str, torch.Tensor]:
    inputs = {"input_ids": IDS, "attention_mask": MASK}
    if kind == "encoder-decoder":
        inputs["decoder_input_ids"] = DECODER_IDS
    return inputs


def output(model: torch.nn.Module, kind: str, **extra: torch.Tensor) -> torch.Tensor:
    """Logits (decoder-only, encoder-decoder) or the last hidden state (encoder-only) for the kind's batch."""
    with torch.no_grad():
        out = model(**(batch(kind) | extra))
    return out.last_hidden_state if kind == "encoder-only" else out.logits


def randomize(model: torch.nn.Module, marker: str, seed: int = 1, std: float = 0.1) -> None:
    """Give every parameter whose name contains `marker` random values (adapters start as no-ops)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if marker in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
