"""Prompt tuning: The Power of Scale for Parameter-Efficient Prompt Tuning (Lester et al., 2021, arXiv:2104.08691).

    X' = [P; E(x)]        P: (n_virtual, d) trainable, E the frozen input embeddings; mask [1...1; m]

The soft prompt is prepended to the input embeddings of a frozen model: decoder-only and encoder-only models
at their input, encoder-decoder models at the encoder's input (the decoder is unchanged). In a batch the
attention mask gets n ones in front, labels of the same length as the input get n × -100 (no loss on virtual
positions), token_type_ids n zeros, and explicit position_ids are shifted by n (peft drops them). Outputs have
n extra positions in front, as with peft: `virtual_tokens(model)` says how many to drop.

Init as peft's PromptTuningInit: "random" (N(0, 1), nn.Embedding's init), "vocab" (embeddings of token ids
drawn uniformly from the vocabulary) or "text" (embeddings of the tokenized text, with its special tokens,
cut or repeated to n tokens).

The prompt is a child (`soft_prompt`) of the model, prepended by a forward pre-hook, so the model is still
called as before. The hook acts only on a call with `input_ids` and no KV cache (no `cache` /
`past_key_values`; for encoder-decoder models no `encoder_outputs`): a caller that manages a cache manages the
prefix. The decoding engine takes it as `prefix_embeds=soft_prompt(model)`.

Matches peft's PromptEmbedding forward for causal LM, feature extraction and seq2seq LM (peft keeps n
decoder rows for seq2seq that prompt tuning never uses; only the encoder's n rows exist here).
Parity: tests/peft/test_prompt_tuning.py::test_forward_matches_peft.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError
from llmlab.peft.registry import AdapterInfo, check_new_name, register, set_trainable

INITS = ("random", "vocab", "text")
BANK = "soft_prompt"


@dataclass(frozen=True)
class PromptTuningConfig:
    """Prompt tuning settings (the flags of `llmlab finetune prompt-tuning`)."""

    virtual_tokens: int = 20
    """Number of trainable virtual tokens put before every input."""
    init: str = "random"
    """How the virtual tokens start: random, vocab (embeddings of random tokens), or text:TEXT (embeddings
    of TEXT's tokens, repeated or cut to length)."""

    def __post_init__(self) -> None:
        if not isinstance(self.virtual_tokens, int) or self.virtual_tokens < 1:
            raise ConfigError(f"--virtual-tokens must be a positive integer, got {self.virtual_tokens!r}")
        kind, _, text = self.init.partition(":")
        if kind not in INITS or (kind == "text") != bool(text.strip()):
            raise ConfigError(
                f'--init must be random, vocab or text:"some words", got {self.init!r}'
                + ("; give the text after text:" if kind == "text" else "")
            )

    @property
    def init_kind(self) -> str:
        return self.init.partition(":")[0]

    @property
    def init_text(self) -> str | None:
        return self.init.partition(":")[2] or None


def init_prompt(embeddings: nn.Embedding, config: PromptTuningConfig, tokenizer: Any = None) -> torch.Tensor:
    """The starting soft prompt (n, d), fp32, drawn from the global torch RNG as peft does."""
    n = config.virtual_tokens
    weight = embeddings.weight
    if config.init_kind == "random":
        return torch.randn(n, weight.shape[1], device=weight.device)
    if config.init_kind == "vocab":
        ids = torch.randint(0, weight.shape[0], (n,), device=weight.device)
    else:
        if tokenizer is None:
            raise ConfigError("--init text:... needs the model's tokenizer to turn the text into tokens")
        tokens = list(tokenizer(config.init_text)["input_ids"])
        if not tokens:
            raise ConfigError(f"--init text {config.init_text!r} gives no tokens; write a few words")
        tokens = (tokens * -(-n // len(tokens)))[:n]
        ids = torch.tensor(tokens, dtype=torch.long, device=weight.device)
    return weight.detach()[ids].float().clone()


class SoftPromptBank(nn.Module):
    """The named soft prompts of one model; at most one is active."""

    def __init__(self) -> None:
        super().__init__()
        self.embeddings = nn.ParameterDict()  # name -> (n, d)
        self.active: str | None = None

    def prompt(self) -> torch.Tensor | None:
        """The active soft prompt (n, d), or None."""
        return None if self.active is None else self.embeddings[self.active]

    def adapter_names(self) -> list[str]:
        return list(self.embeddings)

    def set_active_adapter(self, name: str | None) -> None:
        self.active = name if name is not None and name in self.embeddings else None

    def adapter_parameters(self, name: str) -> list[nn.Parameter]:
        return [self.embeddings[name]] if name in self.embeddings else []

    def delete_adapter(self, name: str) -> None:
        del self.embeddings[name]
        if self.active == name:
            self.active = None

    def remove_from(self, parent: nn.Module, attr: str) -> None:
        for key, hook in list(parent._forward_pre_hooks.items()):
            if hook is _prepend_prompt:
                del parent._forward_pre_hooks[key]
                parent._forward_pre_hooks_with_kwargs.pop(key, None)
        delattr(parent, attr)


def _named(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Positional arguments of `module.forward` turned into keyword arguments."""
    if not args:
        return dict(kwargs)
    names = [
        p.name
        for p in inspect.signature(module.forward).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return dict(zip(names, args, strict=False)) | kwargs


def _prepend_prompt(
    module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
    """Forward pre-hook: [P; E(x)] with the mask, labels, token types and positions lengthened to match."""
    bank: SoftPromptBank = getattr(module, BANK)
    prompt = bank.prompt()
    if prompt is None:
        return None
    kw = _named(module, args, kwargs)
    ids = kw.get("input_ids")
    seq2seq = bool(getattr(getattr(module, "config", None), "is_encoder_decoder", False))
    cached = kw.get("encoder_outputs") if seq2seq else kw.get("cache", kw.get("past_key_values"))
    if ids is None or kw.get("inputs_embeds") is not None or cached is not None:
        return None
    B, n = ids.shape[0], prompt.shape[0]  # ids: (B, T)
    embeds = _input_embeddings(module)(ids)  # (B, T, d)
    kw["input_ids"] = None
    kw["inputs_embeds"] = torch.cat([prompt.to(embeds.dtype).expand(B, -1, -1), embeds], dim=1)
    ones = torch.ones(B, n, dtype=torch.long, device=ids.device)
    if kw.get("attention_mask") is not None:
        kw["attention_mask"] = torch.cat([ones.to(kw["attention_mask"].dtype), kw["attention_mask"]], dim=1)
    if kw.get("token_type_ids") is not None:
        kw["token_type_ids"] = torch.cat([ones * 0, kw["token_type_ids"]], dim=1)
    if kw.get("position_ids") is not None:
        prefix = torch.arange(n, device=ids.device).expand(kw["position_ids"].shape[0], -1)
        kw["position_ids"] = torch.cat([prefix, kw["position_ids"] + n], dim=1)
    labels = kw.get("labels")
    if not seq2seq and labels is not None and labels.dim() == 2 and labels.shape[1] == ids.shape[1]:
        kw["labels"] = torch.cat([torch.full_like(ones, -100).to(labels.dtype), labels], dim=1)
    return (), kw


def prompt_inputs(model: nn.Module, inputs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for a call that bypasses the model's own forward (e.g. its decoder body alone), with
    the active soft prompt put in front as the pre-hook would; unchanged when no prompt is active."""
    if not isinstance(getattr(model, BANK, None), SoftPromptBank):
        return inputs
    changed = _prepend_prompt(model, (), dict(inputs))
    return inputs if changed is None else changed[1]


def apply_prompt_tuning(
    model: nn.Module,
    virtual_tokens: int = 20,
    init: str = "random",
    tokenizer: Any = None,
    name: str = "default",
    train: bool = True,
) -> nn.Parameter:
    """Add soft prompt `name` (n virtual tokens) to the model's inputs; return it, shape (n, d).

    The prompt becomes the active adapter; with `train`, it is the only parameter with requires_grad.

    Args:
        init: "random", "vocab" or "text:SOME TEXT" (needs `tokenizer`).
    """
    config = PromptTuningConfig(virtual_tokens=virtual_tokens, init=init)
    return add_prompt(model, config, init_prompt(_input_embeddings(model), config, tokenizer), name, train)


def add_prompt(
    model: nn.Module,
    config: PromptTuningConfig,
    values: torch.Tensor,
    name: str = "default",
    train: bool = True,
) -> nn.Parameter:
    """Add a soft prompt with the given values (n, d)."""
    check_new_name(model, name)
    dim = _input_embeddings(model).weight.shape[1]
    if tuple(values.shape) != (config.virtual_tokens, dim):
        raise ConfigError(
            f"a soft prompt for this model must have shape ({config.virtual_tokens}, {dim}), "
            f"got {tuple(values.shape)}; it was made for another model"
        )
    bank = getattr(model, BANK, None)
    if bank is None:
        bank = SoftPromptBank()
        model.add_module(BANK, bank)
        model.register_forward_pre_hook(_prepend_prompt, with_kwargs=True)
    param = nn.Parameter(values.detach().clone().float())
    bank.embeddings[name] = param
    register(model, AdapterInfo(name, "prompt-tuning", config, []))
    if train:
        set_trainable(model, name)
    return param


def _input_embeddings(model: nn.Module) -> nn.Embedding:
    get = getattr(model, "get_input_embeddings", None)
    embeddings = get() if callable(get) else None
    if not isinstance(embeddings, nn.Embedding):
        raise ConfigError(f"{type(model).__name__} has no input embedding layer to put virtual tokens before")
    return embeddings


def soft_prompt(model: nn.Module) -> torch.Tensor | None:
    """The active soft prompt (n, d), detached, for the decoding engine's `prefix_embeds`; else None."""
    bank = getattr(model, BANK, None)
    prompt = bank.prompt() if isinstance(bank, SoftPromptBank) else None
    return None if prompt is None else prompt.detach()


def virtual_tokens(model: nn.Module) -> int:
    """How many positions the active soft prompt adds in front of every output (0 when none)."""
    prompt = soft_prompt(model)
    return 0 if prompt is None else int(prompt.shape[0])
