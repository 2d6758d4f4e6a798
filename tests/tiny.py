"""Tiny random models and a small trained tokenizer, built in-process for the fast tier (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

CORPUS = [
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Language models predict the next token. Greedy decoding picks the most likely token.",
    "Héllo wörld — ünïcode text, emoji 🙂 and 中文 characters are split into bytes.",
    "def add(a, b):\n    return a + b\n",
    "Question: what is two plus two? Answer: four.",
] * 20


def tiny_tokenizer(vocab_size: int = 320):
    """A byte-level BPE tokenizer trained on a few sentences, with ChatML special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>", pad_token="<pad>"
    )
    fast.chat_template = CHATML
    return fast


def tiny_llama(vocab_size: int, seed: int = 0, **overrides):
    """A 2-layer Llama with hidden size 64, GQA (4 heads / 2 KV heads), random untied weights."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        initializer_range=0.1,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=3,
    )
    cfg.update(overrides)
    # initializer_range 0.1 (not 0.02) gives peaked, varied next-token distributions, so greedy and
    # sampling tests see different tokens at each step instead of one repeated token.
    return LlamaForCausalLM(LlamaConfig(**cfg)).eval()


def tiny_t5(vocab_size: int, seed: int = 0):
    """A 2-layer encoder-decoder (T5) with d_model 64."""
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    cfg = T5Config(
        vocab_size=vocab_size,
        d_model=64,
        d_kv=16,
        d_ff=128,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=3,
        eos_token_id=2,
        pad_token_id=3,
        tie_word_embeddings=False,
    )
    model = T5ForConditionalGeneration(cfg).eval()
    # T5's default init makes a random decoder repeat one token; wider weights give varied greedy output.
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "layer_norm" not in name:
                param.normal_(0.0, 0.3)
    return model


def save_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """Write a tiny Llama checkpoint + tokenizer as an HF folder, loadable by `load_model(folder)`."""
    tok = tiny_tokenizer()
    model = tiny_llama(len(tok), seed=seed)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def tiny_bert(vocab_size: int = 320, seed: int = 0, num_labels: int | None = None):
    """A 2-layer encoder-only BERT with hidden size 64 (a sequence classifier when `num_labels` is given)."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=3,
    )
    if num_labels is None:
        return BertModel(cfg).eval()
    cfg.num_labels = num_labels
    return BertForSequenceClassification(cfg).eval()
