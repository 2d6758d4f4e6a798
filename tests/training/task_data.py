"""Synthetic tasks and tiny checkpoint folders for the encoder-only and encoder-decoder training tests.

- sentiment-like classification: a text of 7 words drawn from positive, negative and neutral words; the label
  is the majority of the positive and negative words (odd count of those, so never a tie);
- reverse: the source is 4 letters, the target the same letters reversed.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

POSITIVE = ["good", "great", "tasty", "friendly", "fresh"]
NEGATIVE = ["bad", "cold", "rude", "stale", "slow"]
NEUTRAL = ["the", "food", "was", "and", "service", "table", "we", "ate"]
LETTERS = list("abcdefgh")


def sentiment_records(n: int, seed: int) -> list[dict[str, str]]:
    """Texts whose label is the majority of their positive vs negative words (3 or 5 of them)."""
    rng = random.Random(seed)
    records = []
    for _ in range(n):
        polar = rng.choice([3, 5])
        pos = rng.randint(0, polar)
        words = [rng.choice(POSITIVE) for _ in range(pos)] + [
            rng.choice(NEGATIVE) for _ in range(polar - pos)
        ]
        words += [rng.choice(NEUTRAL) for _ in range(7 - polar)]
        rng.shuffle(words)
        records.append({"text": " ".join(words), "label": "positive" if pos > polar - pos else "negative"})
    return records


def reverse_records(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        letters = [rng.choice(LETTERS) for _ in range(4)]
        out.append({"source": " ".join(letters), "target": " ".join(reversed(letters))})
    return out


def write_jsonl(path: Path, records: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def bert_tokenizer(words: list[str] | None = None):
    """A word-level BERT-style tokenizer over `words` (default: the words above) with BERT's templates:
    [CLS] text [SEP], and for a pair [CLS] A [SEP] B [SEP] with segment ids 0 and 1."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = POSITIVE + NEGATIVE + NEUTRAL + LETTERS if words is None else words
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )  # fmt: skip


def save_tiny_bert(folder: Path, seed: int = 0, tokenizer=None) -> Path:
    """A 2-layer BERT encoder (hidden 64; no task head) and its tokenizer (default: bert_tokenizer()), as an
    HF folder."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = tokenizer or bert_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, max_position_embeddings=64, pad_token_id=0,
    )  # fmt: skip
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


T5_TINY_YAML = """\
d_model: 64
d_kv: 16
d_ff: 128
num_layers: 2
num_decoder_layers: 2
num_heads: 4
dropout_rate: 0.0
"""


def word_tokenizer():
    """A word-level tokenizer for the letters tasks of decoder-only models (plain prompts, no chat template)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<unk>", "</s>", "<pad>"]
    vocab = {w: i for i, w in enumerate(specials + LETTERS + ["Input", "Output", ":"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins the words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def save_word_llama(folder: Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A tiny Llama over `word_tokenizer()` as an HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = word_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False,
        bos_token_id=0, eos_token_id=2, pad_token_id=3,
    )  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reverse_instructions(n: int, seed: int) -> list[dict[str, str]]:
    return [{"instruction": r["source"], "output": r["target"]} for r in reverse_records(n, seed)]
