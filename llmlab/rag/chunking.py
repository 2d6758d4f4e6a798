"""Token-aware chunking: cut each unit into pieces of at most `chunk_tokens` tokens of the embedder's tokenizer,
cutting where the text allows best, with `overlap_tokens` of context repeated between neighbours.

    tokens = tokenize(unit.text) once, with character offsets
    end    = the best cut in [start + fill, start + chunk_tokens]: paragraph > sentence > line > word > token,
             the latest cut of the best level; fill = max(chunk_tokens // 2, overlap_tokens + 1)
    next   = the earliest word boundary in [end - overlap_tokens, end]  (any token boundary if none)

Like LangChain's RecursiveCharacterTextSplitter in spirit (prefer the coarsest separator that fits), but it
counts real tokens and never splits a unit's text by re-tokenizing pieces. Chunks never cross units, so a chunk
has one page and one heading path. Each chunk is `unit.text[start:end]` exactly, trimmed of whitespace at both
ends; chunks start in increasing order and together cover every non-whitespace character of the unit.

The budget is checked on the chunk's own text: `len(tokenizer(chunk.text, add_special_tokens=False)
.input_ids) <= chunk_tokens` always holds, also for a long run with no boundary (it is cut between tokens,
never inside a character). Re-tokenizing a trimmed piece can differ from its slice of the whole (a BPE token
" word" becomes "word"), so each chunk is counted once more and shrunk in the rare case it is over.
Special tokens ([CLS], [SEP]) are not counted: the defaults (200 tokens, 40 overlap) leave room for them
and a title prefix within MiniLM's 256-token window.
Tests: tests/rag/test_chunking.py (hypothesis properties and hand-made cases)
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

from llmlab.errors import ConfigError
from llmlab.rag.types import Chunk, Document, cited_metadata

DEFAULT_CHUNK_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = DEFAULT_CHUNK_TOKENS // 5

INVALID, TOKEN, WORD, LINE, SENTENCE, PARAGRAPH = -1, 0, 1, 2, 3, 4
"""Cut levels, best last. INVALID: inside a character that the tokenizer split into several tokens."""

Encoder = Callable[[str], list[tuple[int, int]]]
"""Text -> character (start, end) of each token, without special tokens, truncation or padding."""

_WHITESPACE = re.compile(r"\s+")
_BLANK_LINE = re.compile(r"\n[^\S\n]*\n")
_SENTENCE_END = frozenset(".!?…")
_CLOSERS = frozenset("\"'”’)]»")
_CJK_SENTENCE_END = frozenset("。！？")
_ENCODERS: weakref.WeakKeyDictionary[Any, Encoder] = weakref.WeakKeyDictionary()


def chunk_document(
    document: Document,
    tokenizer: Any,
    *,
    chunk_tokens: int = DEFAULT_CHUNK_TOKENS,
    overlap_tokens: int | None = None,
) -> list[Chunk]:
    """Cut every unit of `document` into chunks of at most `chunk_tokens` tokens.

    Args:
        document: a loaded Document; units with only whitespace give no chunk.
        tokenizer: the embedder's tokenizer: a transformers fast tokenizer or a `tokenizers.Tokenizer`.
        chunk_tokens: most tokens in a chunk (special tokens not counted), at least 8.
        overlap_tokens: most tokens repeated from the end of one chunk at the start of the next, in
            [0, chunk_tokens // 2]; default chunk_tokens // 5 (40 for 200).

    Returns:
        Chunks in document order, `chunk_index` 0, 1, ...; `text == unit.text[start:end]`.

    Raises:
        ConfigError: sizes out of range, or a tokenizer without character offsets (a slow tokenizer).
    """
    if overlap_tokens is None:
        overlap_tokens = chunk_tokens // 5
    check_sizes(chunk_tokens, overlap_tokens)
    encode = token_encoder(tokenizer)
    chunks: list[Chunk] = []
    for unit in document.units:
        for start, end in split_text(unit.text, encode, chunk_tokens, overlap_tokens):
            chunks.append(
                Chunk(
                    text=unit.text[start:end],
                    source=document.source,
                    source_type=document.source_type,
                    chunk_index=len(chunks),
                    page=unit.page,
                    heading_path=unit.heading_path,
                    start=start,
                    end=end,
                    title=document.title,
                    metadata=cited_metadata(document.metadata),
                )
            )
    return chunks


def check_sizes(chunk_tokens: int, overlap_tokens: int) -> None:
    """Validate the two sizes, naming the CLI flags in the message."""
    if chunk_tokens < 8:
        raise ConfigError(f"--chunk-tokens must be at least 8, got {chunk_tokens}")
    if not 0 <= overlap_tokens <= chunk_tokens // 2:
        raise ConfigError(
            f"--overlap-tokens must be in [0, {chunk_tokens // 2}] (half of --chunk-tokens {chunk_tokens}), "
            f"got {overlap_tokens}"
        )


def split_text(text: str, encode: Encoder, chunk_tokens: int, overlap_tokens: int) -> list[tuple[int, int]]:
    """Character spans (start, end) of the chunks of `text`, in order."""
    offsets = encode(text)
    pos, level = cut_points(text, offsets)
    n = len(offsets)
    spans: list[tuple[int, int]] = []
    ts = 0
    while ts < n:
        start = _skip_space(text, pos[ts])
        if start >= len(text):
            break
        te, end = _fit_end(text, encode, pos, level, ts, start, chunk_tokens, overlap_tokens)
        if end <= start:  # only whitespace tokens fit before the next cut: move on without a chunk
            ts = te
            continue
        if not spans or end > spans[-1][1]:  # a chunk shrunk inside its predecessor adds nothing
            spans.append((start, end))
        if te >= n or _skip_space(text, pos[te]) >= len(text):
            break
        nxt = _next_start(level, te, max(te - overlap_tokens, ts + 1))
        ts = nxt if _skip_space(text, pos[nxt]) > start else te
    return spans


def _fit_end(
    text: str,
    encode: Encoder,
    pos: list[int],
    level: list[int],
    ts: int,
    start: int,
    budget: int,
    overlap: int,
) -> tuple[int, int]:
    """(cut token index, end character) of the chunk starting at token `ts`, verified within budget."""
    n = len(pos) - 1
    limit = budget
    while True:
        if n - ts <= limit:
            te = n
        else:
            te = best_cut(level, ts, limit, min(limit, max(limit // 2, overlap + 1)))
        end = _trim_end(text, start, pos[te])
        over = len(encode(text[start:end])) - budget
        if over <= 0 or limit == 1:
            return te, end
        limit = max(1, min(limit, te - ts) - over)


def best_cut(level: list[int], ts: int, limit: int, fill: int) -> int:
    """The latest cut of the best level in [ts + fill, ts + limit]; else the first valid cut after ts."""
    best, best_level = -1, INVALID
    for i in range(ts + fill, min(ts + limit, len(level) - 1) + 1):
        if level[i] >= best_level and level[i] != INVALID:
            best, best_level = i, level[i]
    if best >= 0:
        return best
    for i in range(ts + 1, len(level)):
        if level[i] != INVALID:
            return i
    return len(level) - 1


def _next_start(level: list[int], te: int, lo: int) -> int:
    """The earliest word-or-better cut in [lo, te], else the earliest valid cut there (te itself is valid)."""
    fallback = te
    for i in range(lo, te + 1):
        if level[i] >= WORD:
            return i
        if level[i] == TOKEN and fallback == te:
            fallback = i
    return fallback


def cut_points(text: str, offsets: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """For each cut i in 0..n (before token i; n is the end): its character position and its level."""
    n = len(offsets)
    pos = [0] * (n + 1)
    level = [INVALID] * (n + 1)
    level[0] = level[n] = PARAGRAPH
    pos[n] = len(text)
    runs = [(m.start(), m.end()) for m in _WHITESPACE.finditer(text)]
    j = 0
    for i in range(1, n):
        p = offsets[i][0]
        pos[i] = p
        if p < offsets[i - 1][1] or p < pos[i - 1]:
            pos[i] = pos[i - 1]
            continue  # inside a character (or overlapping offsets): not a place to cut
        while j < len(runs) and runs[j][1] < p:
            j += 1
        if j < len(runs) and runs[j][0] <= p:
            level[i] = _gap_level(text, *runs[j])
        else:
            level[i] = SENTENCE if text[p - 1] in _CJK_SENTENCE_END else TOKEN
    return pos, level


def _gap_level(text: str, a: int, b: int) -> int:
    """Level of a cut in the whitespace run text[a:b]."""
    gap = text[a:b]
    if _BLANK_LINE.search(gap):
        return PARAGRAPH
    k = a - 1
    while k > 0 and text[k] in _CLOSERS:
        k -= 1
    if k >= 0 and text[k] in _SENTENCE_END:
        return SENTENCE
    return LINE if "\n" in gap else WORD


def _skip_space(text: str, i: int) -> int:
    while i < len(text) and text[i].isspace():
        i += 1
    return i


def _trim_end(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1].isspace():
        end -= 1
    return end


def token_encoder(tokenizer: Any) -> Encoder:
    """An Encoder for a transformers fast tokenizer or a `tokenizers.Tokenizer` (cached per tokenizer).

    The backend is always cloned, with truncation and padding off: sharing it would let a later
    `tokenizer(..., truncation=True)` call elsewhere (the embedder does that) silently truncate chunking.
    """
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not callable(getattr(backend, "encode", None)) or not hasattr(backend, "no_truncation"):
        raise ConfigError(
            f"chunking needs a fast tokenizer with character offsets, got {type(tokenizer).__name__}; "
            "load it with transformers.AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    cached = _ENCODERS.get(backend)
    if cached is not None:
        return cached
    from tokenizers import Tokenizer

    own = Tokenizer.from_str(backend.to_str())
    own.no_truncation()
    own.no_padding()

    def encode(text: str) -> list[tuple[int, int]]:
        return own.encode(text, add_special_tokens=False).offsets

    _ENCODERS[backend] = encode
    return encode
