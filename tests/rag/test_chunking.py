"""Chunking: hand-derived cuts with a word-level tokenizer, and hypothesis properties with byte-level BPE."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmlab.errors import ConfigError
from llmlab.rag.chunking import chunk_document, token_encoder
from llmlab.rag.types import Chunk, Document, Unit


def word_tokenizer(words: list[str]):
    """One token per word or punctuation mark: cuts and counts can be derived by hand."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(dict.fromkeys(words))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return tok


def doc(*texts: str, title: str = "T") -> Document:
    units = [Unit(text=t, page=i + 1, heading_path=("H", str(i))) for i, t in enumerate(texts)]
    return Document(source="/x.txt", source_type="text", title=title, units=units, content_hash="h")


def test_word_windows_with_overlap():
    """30 words, chunk 10, overlap 3: all cuts are word cuts, so each chunk takes the full 10 tokens
    (the latest cut of the best level) and the next starts 3 tokens back: w0-w9, w7-w16, w14-w23, w21-w29."""
    words = [f"w{i}" for i in range(30)]
    chunks = chunk_document(doc(" ".join(words)), word_tokenizer(words), chunk_tokens=10, overlap_tokens=3)
    assert [c.text.split() for c in chunks] == [words[0:10], words[7:17], words[14:24], words[21:30]]
    assert [c.chunk_index for c in chunks] == [0, 1, 2, 3]
    assert (chunks[1].start, chunks[1].end) == (len(" ".join(words[:7])) + 1, len(" ".join(words[:17])))


def test_prefers_paragraph_then_sentence_over_filling():
    """Budget 10, fill 5: a paragraph break after token 6 beats word cuts up to 10; in the next window
    the sentence end after "e ." (token 14, i.e. 8 tokens in) beats the later word cuts."""
    text = "a b c d e f\n\ng h i j k l e . m n o p q r s"
    words = text.split()
    chunks = chunk_document(doc(text), word_tokenizer(words), chunk_tokens=10, overlap_tokens=0)
    assert [c.text for c in chunks] == ["a b c d e f", "g h i j k l e .", "m n o p q r s"]


def test_unit_fields_are_carried():
    words = ["alpha", "beta"]
    chunks = chunk_document(doc("alpha", "  beta \n", title="Doc"), word_tokenizer(words), chunk_tokens=8)
    assert chunks == [
        Chunk("alpha", "/x.txt", "text", 0, page=1, heading_path=("H", "0"), start=0, end=5, title="Doc"),
        Chunk("beta", "/x.txt", "text", 1, page=2, heading_path=("H", "1"), start=2, end=6, title="Doc"),
    ]


def test_whitespace_units_give_no_chunks(tiny_tok):
    assert chunk_document(doc("", " \n\n\t "), tiny_tok) == []


@pytest.mark.parametrize(
    ("size", "overlap", "flag"), [(4, 0, "--chunk-tokens"), (20, 11, "--overlap-tokens")]
)
def test_bad_sizes(tiny_tok, size, overlap, flag):
    with pytest.raises(ConfigError, match=flag):
        chunk_document(doc("text"), tiny_tok, chunk_tokens=size, overlap_tokens=overlap)


def test_slow_tokenizer_is_refused():
    class Slow:
        def __call__(self, text):
            return {"input_ids": [1]}

    with pytest.raises(ConfigError, match="fast tokenizer"):
        chunk_document(doc("text"), Slow())


def test_caller_tokenizer_keeps_its_truncation(tiny_tok):
    """A backend set to truncate at 16 would cut the unit's tokens short; chunking uses its own clone."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tiny_tok.backend_tokenizer.__class__.from_str(tiny_tok.backend_tokenizer.to_str())
    )
    tok.backend_tokenizer.enable_truncation(16)
    text = "The capital of France is Paris. " * 20
    chunks = chunk_document(doc(text), tok, chunk_tokens=40, overlap_tokens=0)
    assert chunks[-1].end == len(text.rstrip())
    assert tok.backend_tokenizer.truncation["max_length"] == 16


def test_truncation_set_after_first_use_does_not_leak_into_chunking(tiny_tok):
    """The embedder calls its tokenizer with truncation=True after chunking has cached an encoder for it;
    chunking must keep seeing whole units (regression: 12 chunks instead of 13 in the SIGKILL test)."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=tiny_tok.backend_tokenizer.__class__.from_str(tiny_tok.backend_tokenizer.to_str())
    )
    text = "The capital of France is Paris. " * 20
    before = chunk_document(doc(text), tok, chunk_tokens=40, overlap_tokens=0)
    tok("warm up", truncation=True, max_length=16)
    tok.backend_tokenizer.enable_truncation(16)
    after = chunk_document(doc(text), tok, chunk_tokens=40, overlap_tokens=0)
    assert [(c.start, c.end) for c in after] == [(c.start, c.end) for c in before]
    assert after[-1].end == len(text.rstrip())


def test_long_run_without_boundaries(tiny_tok):
    text = "x" * 3000 + "🙂" * 50
    chunks = chunk_document(doc(text), tiny_tok, chunk_tokens=16, overlap_tokens=4)
    assert all(len(count(tiny_tok, c.text)) <= 16 for c in chunks)
    assert "".join(text[c.start : c.end] for c in chunks).count("🙂") >= 50


def count(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


ALPHABET = st.sampled_from([*"abcdefg hij", " ", " ", "\n", "\n\n", ". ", "é", "🙂", "中", "。", "x" * 30])
TEXTS = st.lists(ALPHABET, max_size=400).map("".join)


@pytest.fixture(scope="module")
def minilm_tok():
    """The packaged MiniLM's WordPiece tokenizer (files only, no model): offsets skip whitespace, and its
    backend truncates at 128 tokens and pads, which chunking must not inherit."""
    from transformers import AutoTokenizer

    from llmlab.models.registry import resolve

    return AutoTokenizer.from_pretrained(resolve("minilm-l6").folder)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS, size=st.integers(8, 64), overlap_frac=st.floats(0, 0.5))
def test_chunk_properties(tiny_tok, text, size, overlap_frac):
    check_properties(tiny_tok, text, size, overlap_frac)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=TEXTS, size=st.integers(8, 64), overlap_frac=st.floats(0, 0.5))
def test_chunk_properties_wordpiece(minilm_tok, text, size, overlap_frac):
    check_properties(minilm_tok, text * 3, size, overlap_frac)


def check_properties(tok, text: str, size: int, overlap_frac: float) -> None:
    """Budget on re-tokenized text, exact offsets, trimmed, ordered, covering, overlap within the setting."""
    overlap = min(int(size * overlap_frac), size // 2)
    chunks = chunk_document(doc(text), tok, chunk_tokens=size, overlap_tokens=overlap)
    offsets = token_encoder(tok)(text)
    stripped = text.strip()
    if not stripped:
        assert chunks == []
        return
    assert chunks[0].start == len(text) - len(text.lstrip())
    assert chunks[-1].end == len(text.rstrip())
    for prev, c in zip([None, *chunks], chunks, strict=False):
        assert c.text == text[c.start : c.end] == c.text.strip() != ""
        assert len(count(tok, c.text)) <= size
        if prev is None:
            continue
        assert prev.start < c.start and prev.end < c.end
        gap = text[prev.end : c.start]
        assert c.start <= prev.end or gap.strip() == "", "chunks must cover the text"
        shared = sum(1 for s, _ in offsets if c.start <= s < prev.end)
        assert shared <= overlap
