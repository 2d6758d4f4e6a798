"""The bytes each token id stands for, and the indexes the token masker searches (json_constraint.py).

Byte-level BPE tokenizers (GPT-2, Llama 3, SmolLM2, Qwen) write each byte as one printable character; the
table below undoes that (it is GPT-2's `bytes_to_unicode`). SentencePiece tokenizers write a space as '▁'
and raw bytes as `<0xAB>`. Special tokens (BOS, EOS, chat markers) map to None: a constraint never allows
them inside structured text, only the end-of-sequence ids when the text may end.
Tests: tests/agents/test_json_constraint.py::test_token_bytes_decode_like_the_tokenizer.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

BYTE_TOKEN = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _unicode_to_bytes() -> dict[str, int]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars, n = list(printable), 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


BYTE_DECODER = _unicode_to_bytes()


def _decoder_kind(tokenizer: Any) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return "decode"
    decoder = json.loads(backend.to_str()).get("decoder") or {}
    kinds = {decoder.get("type")} | {d.get("type") for d in decoder.get("decoders", [])}
    if "ByteLevel" in kinds:
        return "bytelevel"
    if "Metaspace" in kinds or "Replace" in kinds or "ByteFallback" in kinds:
        return "sentencepiece"
    return "decode"


def token_bytes(tokenizer: Any, vocab_size: int | None = None) -> list[bytes | None]:
    """bytes for every token id below `vocab_size` (default: the tokenizer's length); None for special ids
    and for ids the tokenizer does not know (padding rows of the embedding)."""
    size = vocab_size or len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special |= {i for i, t in added.items() if getattr(t, "special", False)}  # e.g. <|im_start|> everywhere
    kind = _decoder_kind(tokenizer)
    known = min(size, len(tokenizer))
    pieces = tokenizer.convert_ids_to_tokens(list(range(known)))
    out: list[bytes | None] = []
    for i, piece in enumerate(pieces):
        if i in special or piece is None:
            out.append(None)
        elif kind == "bytelevel" and all(c in BYTE_DECODER for c in piece):
            out.append(bytes(BYTE_DECODER[c] for c in piece))
        elif kind == "sentencepiece":
            m = BYTE_TOKEN.match(piece)
            out.append(bytes([int(m.group(1), 16)]) if m else piece.replace("▁", " ").encode("utf-8"))
        else:
            out.append(tokenizer.decode([i]).encode("utf-8"))
    out += [None] * (size - known)
    return out


class TokenVocab:
    """Token bytes plus what the masker needs: tokens sorted by their bytes (a trie in one list, searched with
    bisect), masks of the tokens that keep a JSON string or free text going, and the 'risky' rest."""

    def __init__(self, pieces: Sequence[bytes | None]):
        self.pieces = list(pieces)
        self.size = len(pieces)
        order = sorted((p, i) for i, p in enumerate(pieces) if p)
        self.sorted_bytes = [p for p, _ in order]
        self.sorted_ids = [i for _, i in order]
        self.usable = np.zeros(self.size, dtype=np.bool_)
        self.usable[[i for i, p in enumerate(pieces) if p]] = True
        # In a JSON string, bytes other than '"', '\' and control bytes keep the automaton in the same state.
        self.string_plain = self.usable.copy()
        self.string_risky: list[tuple[int, int]] = []  # (token id, index of its first non-plain byte)
        for i, p in enumerate(pieces):
            if p:
                first = next((j for j, b in enumerate(p) if b in (0x22, 0x5C) or b < 0x20), -1)
                if first >= 0:
                    self.string_plain[i] = False
                    self.string_risky.append((i, first))
        self._containing: dict[int, list[int]] = {}

    def containing(self, byte: int) -> list[int]:
        """Token ids whose bytes contain `byte`."""
        found = self._containing.get(byte)
        if found is None:
            found = self._containing[byte] = [i for i, p in enumerate(self.pieces) if p and byte in p]
        return found

    def starting_with(self, prefix: bytes) -> list[int]:
        """Token ids whose bytes start with `prefix`."""
        lo = bisect.bisect_left(self.sorted_bytes, prefix)
        hi = lo
        while hi < len(self.sorted_bytes) and self.sorted_bytes[hi].startswith(prefix):
            hi += 1
        return self.sorted_ids[lo:hi]


_CACHE: dict[tuple[int, int], tuple[Any, TokenVocab]] = {}


def vocab_for(tokenizer: Any, vocab_size: int | None = None) -> TokenVocab:
    """The TokenVocab of a tokenizer, built once per tokenizer object (about 0.3 s for 49k tokens)."""
    key = (id(tokenizer), vocab_size or len(tokenizer))
    found = _CACHE.get(key)
    if found is None or found[0] is not tokenizer:
        found = _CACHE[key] = (tokenizer, TokenVocab(token_bytes(tokenizer, vocab_size)))
    return found[1]
