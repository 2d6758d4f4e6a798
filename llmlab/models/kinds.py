"""The three transformer kinds: what each reads and writes, and what it is good for.

Vaswani et al. (2017, arXiv:1706.03762) introduced the transformer as an encoder-decoder; later families kept
only one half. The kind decides which transformers auto class loads a checkpoint (see `loading.py`) and
whether generation needs a KV cache. This table is also what `llmlab models list` and `llmlab models info`
print next to a model.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.models.registry import TransformerKind


@dataclass(frozen=True)
class KindInfo:
    """One transformer kind, described for people choosing a model."""

    kind: TransformerKind
    attention: str
    """How tokens see each other."""
    auto_class: str
    """The transformers auto class llmlab loads it with."""
    good_for: str
    """The tasks this kind is built for."""
    short: str
    """The same in three words, for tables."""
    examples: str
    """Well-known model families of this kind."""


KINDS: dict[TransformerKind, KindInfo] = {
    info.kind: info
    for info in (
        KindInfo(
            kind="encoder-only",
            attention="bidirectional: every token sees the whole input",
            auto_class="AutoModel",
            good_for="understanding text: embeddings for search and RAG, classification (sentiment, topic), "
            "named entities; it does not generate text",
            short="search embeddings, labels",
            examples="BERT, RoBERTa, MiniLM",
        ),
        KindInfo(
            kind="encoder-decoder",
            attention="bidirectional encoder over the input; causal decoder with cross-attention to it",
            auto_class="AutoModelForSeq2SeqLM",
            good_for="turning one text into another: translation, summarisation, rewriting",
            short="translate, summarise",
            examples="T5, BART, FLAN-T5",
        ),
        KindInfo(
            kind="decoder-only",
            attention="causal: each token sees only the tokens before it",
            auto_class="AutoModelForCausalLM",
            good_for="generating text: chat, instructions, completion, few-shot prompting, tool calls",
            short="chat, text generation",
            examples="GPT, Llama, SmolLM2, Mistral",
        ),
    )
}


def kind_info(kind: TransformerKind) -> KindInfo:
    """The description of one kind."""
    return KINDS[kind]
