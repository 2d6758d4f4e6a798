"""A reward model: a transformer body and a scalar head, r(x, y) = w · pool(body(x ⊕ y)) + b.

    decoder bodies (SmolLM2, Llama, ...):  pool = the hidden state of the last real token (the EOS appended
                                           after the completion), as InstructGPT's reward model and trl's
                                           RewardTrainer (AutoModelForSequenceClassification) score
    encoder bodies (MiniLM, BERT, ...):    pool = the mean over the real tokens, the pooling the sentence
                                           encoder was trained with

It is trained on preference pairs with the pairwise loss (llmlab/rlhf/reward.py, recipe in reward_train.py);
the text layout is in llmlab/rlhf/pair_data.py (`encode_for_reward`). A saved reward model is a folder:

    reward_model.json           base model, kind, pooling, --seq-len, LoRA settings, held-out accuracy
    reward_model.safetensors    the trained tensors by name: the head and either the LoRA matrices (--lora)
                                or every weight of the body
    body_config.json            the body's transformers config
    tokenizer files

A LoRA reward model reloads from its base model (named in reward_model.json) plus its tensors; a fully
trained one from its own files alone. No pickle.
Tests: tests/rlhf/test_reward_model.py (save -> load gives the same scores; padding changes no score).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from llmlab.errors import ConfigError, ModelError
from llmlab.rlhf.pair_data import encode_for_reward, pad_sides
from llmlab.rlhf.policy import hidden_size

META = "reward_model.json"
WEIGHTS = "reward_model.safetensors"
BODY_CONFIG = "body_config.json"
FORMAT = "llmlab-reward-model"
POOLING = {"decoder-only": "last", "encoder-only": "mean"}


class RewardModel(nn.Module):
    """A body returning hidden states (transformers `AutoModel`) and a linear head to one score per text."""

    def __init__(self, body: nn.Module, kind: str):
        super().__init__()
        if kind not in POOLING:
            raise ConfigError(
                f"a reward model needs a decoder-only or encoder-only model, got {kind}; use e.g. "
                "smollm2-135m-instruct or minilm-l6"
            )
        self.body, self.kind, self.pooling = body, kind, POOLING[kind]
        width = hidden_size(body.config)
        self.head = nn.Linear(width, 1)
        nn.init.normal_(self.head.weight, std=1 / math.sqrt(width + 1))
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B,) float32 scores of right-padded (B, T) texts."""
        if self.kind == "decoder-only":  # causal: the last real token never sees the pads after it
            out = self.body(input_ids=input_ids, use_cache=False)
        else:
            extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
            out = self.body(input_ids=input_ids, attention_mask=attention_mask, **extra)
        hidden = out.last_hidden_state  # (B, T, H)
        if self.pooling == "last":
            last = attention_mask.sum(dim=1) - 1  # (B,)
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]  # (B, H)
        else:
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
        scores: torch.Tensor = self.head(pooled.to(self.head.weight.dtype))  # (B, 1)
        return scores.squeeze(-1).float()


def body_files(model: str) -> tuple[Path, Any, str, Any]:
    """(folder, tokenizer, kind, transformers config) of a packaged model name, HF folder or .gguf file,
    without loading the weights."""
    from transformers import AutoConfig, AutoTokenizer

    from llmlab.models.loading import model_folder, transformer_kind

    folder, _, _ = model_folder(model)
    config = AutoConfig.from_pretrained(folder)
    kind = transformer_kind(config)
    if kind not in POOLING:
        raise ConfigError(
            f"--model {model} is {kind}; a reward model needs a decoder-only or encoder-only model "
            "(e.g. smollm2-135m-instruct or minilm-l6)"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return folder, tokenizer, kind, config


def load_body(folder: Path) -> nn.Module:
    """The body (transformers `AutoModel`: hidden states, no LM head) of a checkpoint folder, in fp32."""
    import warnings

    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "lm_head.weight not used": the head is replaced, on purpose
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            body: nn.Module = AutoModel.from_pretrained(folder, dtype=torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    return body


class RewardSaver:
    """The checkpoint part of a reward model (a `ModelSaver`): its trained tensors, settings and tokenizer."""

    def __init__(self, model: RewardModel, names: Sequence[str], tokenizer: Any, meta: dict[str, Any]):
        self.model, self.names, self.tokenizer, self.meta = model, list(names), tokenizer, meta

    def save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        params = dict(self.model.named_parameters())
        save_file({n: params[n].detach().cpu().contiguous() for n in self.names}, folder / WEIGHTS)
        (folder / META).write_text(json.dumps(self.meta, indent=2) + "\n", encoding="utf-8")
        body: Any = self.model.body
        body.config.to_json_file(folder / BODY_CONFIG)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(folder)

    def load(self, folder: Path) -> None:
        load_tensors(self.model, folder, self.names)


def load_tensors(model: nn.Module, folder: Path, names: Sequence[str] | None = None) -> None:
    """Copy `reward_model.safetensors` into the model's parameters of the same names."""
    from safetensors.torch import load_file

    path = folder / WEIGHTS
    if not path.is_file():
        raise ModelError(f"{folder} is not a reward model folder: {WEIGHTS} is missing")
    state = load_file(path)
    params = dict(model.named_parameters())
    wanted = list(names) if names is not None else list(state)
    missing = [n for n in wanted if n not in state]
    unknown = [n for n in state if n not in params]
    if missing or unknown:
        raise ModelError(
            f"{path} does not fit this model (missing {missing[:2]}, unexpected {unknown[:2]}); load it on "
            "the base model it was trained from"
        )
    with torch.no_grad():
        for name in wanted:
            params[name].copy_(state[name])


def read_meta(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """(folder, reward_model.json) of a reward model folder, a run folder's top or one of its checkpoints."""
    folder = Path(path)
    if not (folder / META).is_file():
        from llmlab.training.checkpoint import list_checkpoints

        found = list_checkpoints(folder)
        if not found:
            raise ModelError(
                f"{path} is not a reward model: no {META} in it; give the --out folder of "
                "`llmlab reward train`"
            )
        folder = found[-1][1]
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise ModelError(f"{folder / META}: not an llmlab reward model (format {meta.get('format')!r})")
    return folder, meta


def load_reward_model(path: str | Path, device: str = "cpu") -> RewardScorer:
    """A trained reward model from its folder, ready to score."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from llmlab.peft import apply_lora

    folder, meta = read_meta(path)
    if meta.get("lora"):
        base, _, _, _ = body_files(meta["base_model"])
        body = load_body(base)
        lora = meta["lora"]
        apply_lora(body, targets=lora["targets"], rank=lora["rank"], alpha=lora["alpha"], train=False)
    else:
        config = AutoConfig.from_pretrained(folder / BODY_CONFIG)
        body = AutoModel.from_config(config, dtype=torch.float32)
    model = RewardModel(body, meta["kind"])
    load_tensors(model, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return RewardScorer(model.to(device).eval(), tokenizer, meta)


class RewardScorer:
    """Scores (prompt, completion) texts with a reward model, in batches."""

    def __init__(self, model: RewardModel, tokenizer: Any, meta: dict[str, Any]):
        self.model, self.tokenizer, self.meta = model, tokenizer, meta
        self.seq_len = int(meta.get("seq_len", 512))

    @torch.no_grad()
    def score(self, prompts: Sequence[str], completions: Sequence[str], batch_size: int = 16) -> list[float]:
        """One score per (prompt, completion); higher is preferred."""
        if len(prompts) != len(completions):
            raise ConfigError(f"{len(prompts)} prompts for {len(completions)} completions")
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        sides = [
            encode_for_reward(self.tokenizer, self.model.kind, p, c, self.seq_len)
            for p, c in zip(prompts, completions, strict=True)
        ]
        scores: list[float] = []
        self.model.eval()
        for start in range(0, len(sides), batch_size):
            batch = {k: v.to(device) for k, v in pad_sides(sides[start : start + batch_size], pad).items()}
            scores += self.model(**batch).tolist()
        return scores

    def __call__(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        return self.score(prompts, completions)
