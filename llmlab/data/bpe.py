"""A byte-level BPE tokenizer trained on a corpus (Sennrich et al., 2016, arXiv:1508.07909; GPT-2's byte level).

HF `tokenizers` learns the merges; every byte is in the initial alphabet, so any text encodes without
unknown tokens. `<|endoftext|>` is both BOS and EOS (it ends every pretraining document) and `<pad>` pads
batches. The result is a `PreTrainedTokenizerFast` that `save_pretrained` writes next to the model, so
`llmlab generate --model RUN` loads both.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from llmlab.errors import ConfigError

SPECIAL_TOKENS = ("<|endoftext|>", "<pad>")


def train_bpe(texts: Iterable[str], vocab_size: int) -> Any:
    """Train a byte-level BPE tokenizer with `vocab_size` tokens (specials and the 256 bytes included)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    floor = 256 + len(SPECIAL_TOKENS)
    if vocab_size < floor:
        raise ConfigError(
            f"--vocab-size must be at least {floor} (256 bytes + special tokens), got {vocab_size}"
        )
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>", pad_token="<pad>"
    )
