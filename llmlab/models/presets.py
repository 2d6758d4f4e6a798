"""Configs for models built from scratch: Llama-style decoders (pretraining) and T5-style encoder-decoders
(`finetune full --task seq2seq --model t5-tiny`), from named presets or a YAML file of the config's fields.

    tiny    hidden 128, 4 layers, 4 heads (2 KV), MLP 352    ~0.8M parameters + embeddings (tied)
    small   hidden 384, 6 layers, 6 heads (2 KV), MLP 1024   ~8.5M parameters + embeddings (tied)

RMSNorm, SwiGLU MLP, rotary positions, grouped-query attention, tied input/output embeddings: the SmolLM2 /
Llama recipe at toy scale. The vocabulary size and special-token ids come from the tokenizer, the context
length from the training sequence length (at least 256).

    t5-tiny   d_model 128, 2 + 2 layers, 4 heads, gated-GELU MLP 256     ~0.9M parameters + embeddings
    t5-small  d_model 384, 4 + 4 layers, 6 heads, gated-GELU MLP 1024    ~17M parameters + embeddings

T5 v1.1 / FLAN-T5 layout (Raffel et al., 2020, arXiv:1910.10683): relative position buckets, RMS layer norm,
gated-GELU feed-forward, untied input and output embeddings; the decoder starts from the pad token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmlab.errors import ConfigError

PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(
        hidden_size=128,
        intermediate_size=352,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "small": dict(
        hidden_size=384,
        intermediate_size=1024,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=2,
    ),
}
COMMON: dict[str, Any] = dict(
    rope_theta=10000.0, tie_word_embeddings=True, initializer_range=0.02, rms_norm_eps=1e-5, hidden_act="silu"
)


def decoder_config(name_or_file: str, tokenizer: Any, seq_len: int) -> Any:
    """A `LlamaConfig` for a preset name or a YAML file, sized to the tokenizer and the sequence length.

    Raises:
        ConfigError: unknown preset, unreadable file, or fields LlamaConfig does not know.
    """
    from transformers import LlamaConfig

    if name_or_file in PRESETS:
        fields = dict(PRESETS[name_or_file])
    else:
        fields = _read_yaml(Path(name_or_file), "--model-config", "LlamaConfig")
    special = {
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    fields = (
        COMMON
        | {"vocab_size": len(tokenizer), "max_position_embeddings": max(256, seq_len)}
        | special
        | fields
    )
    if fields["vocab_size"] < len(tokenizer):
        raise ConfigError(
            f"--model-config vocab_size {fields['vocab_size']} is smaller than the tokenizer's {len(tokenizer)}"
        )
    unknown = sorted(set(fields) - set(LlamaConfig().to_dict()) - {"rope_theta"})
    if unknown:
        raise ConfigError(f"--model-config {name_or_file}: unknown LlamaConfig field(s) {', '.join(unknown)}")
    return LlamaConfig(**fields)


def _read_yaml(path: Path, flag: str, kind: str) -> dict[str, Any]:
    import yaml

    presets = PRESETS if kind == "LlamaConfig" else SEQ2SEQ_PRESETS
    if not path.is_file():
        raise ConfigError(
            f"{flag} {path}: not a preset ({', '.join(presets)}) and no such file; "
            f"give a preset name or a YAML file of {kind} fields"
        )
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a model config must be a mapping of {kind} fields to values")
    return data


SEQ2SEQ_PRESETS: dict[str, dict[str, Any]] = {
    "t5-tiny": dict(d_model=128, d_kv=32, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4),
    "t5-small": dict(d_model=384, d_kv=64, d_ff=1024, num_layers=4, num_decoder_layers=4, num_heads=6),
}
SEQ2SEQ_COMMON: dict[str, Any] = dict(
    feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.1, initializer_factor=1.0
)


def is_seq2seq_config(name: str) -> bool:
    """True when `--model` names a new encoder-decoder: a preset or a YAML file."""
    return name in SEQ2SEQ_PRESETS or name.endswith((".yaml", ".yml"))


def seq2seq_config(name_or_file: str, tokenizer: Any) -> Any:
    """A `T5Config` for a preset name or a YAML file of T5Config fields, sized to the tokenizer.

    Raises:
        ConfigError: unknown preset, unreadable file, or fields T5Config does not know.
    """
    from transformers import T5Config

    fields = (
        dict(SEQ2SEQ_PRESETS[name_or_file])
        if name_or_file in SEQ2SEQ_PRESETS
        else _read_yaml(Path(name_or_file), "--model", "T5Config")
    )
    special = {
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "decoder_start_token_id": tokenizer.pad_token_id,
    }
    fields = SEQ2SEQ_COMMON | {"vocab_size": len(tokenizer)} | special | fields
    if fields["vocab_size"] < len(tokenizer):
        raise ConfigError(
            f"--model {name_or_file}: vocab_size {fields['vocab_size']} is smaller than the tokenizer's "
            f"{len(tokenizer)}"
        )
    unknown = sorted(set(fields) - set(T5Config().to_dict()) - {"decoder_start_token_id", "bos_token_id"})
    if unknown:
        raise ConfigError(f"--model {name_or_file}: unknown T5Config field(s) {', '.join(unknown)}")
    return T5Config(**fields)
