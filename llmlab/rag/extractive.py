"""Extractive answers: decoding constrained to copy one span of one context block verbatim.

    blocks -> token ids t_b,0 .. t_b,n (each block tokenized on its own)
    state after generated ids g_1..g_k = { (b, p) : t_b,p-k .. t_b,p-1 = g_1..g_k }   (end positions)
    allowed(g) = { t_b,p : (b, p) in state, p < n_b }  ∪  EOS  if some (b, p) in state ends a word and the
                 span holds a letter or digit

The state is the end-position set of the generated text in the blocks, i.e. the node of the blocks' suffix
trie that the generated ids reach (a suffix automaton merges nodes with equal end-position sets; with a few
blocks of a few hundred tokens the sets are small enough to follow directly, O(|state|) per step). The
engine's `allowed_tokens` hook masks every other token, so the answer is always a contiguous run of one
block's own tokens, and its citation is that block, by construction. The model still chooses the span:
greedy decoding under the mask (its most likely allowed token at each step, ending where it puts the
end-of-sequence token first), or the likeliest of candidate spans (span_scoring.py, --span-choice likelihood).

Tokenization: a span is copied from the block's own tokenization, so a span that starts inside the block starts
with that block's leading-space token (" default"). A model opening its reply would write "default" instead,
so each start also admits the same word's no-space token when the tokenizer has it as one token (an alias);
either way the text comes from the block. Starts and ends sit only at word boundaries (never between two
letters or digits, never inside a multi-byte character), a span never opens on a heading's "#" or a table's
"|", holds a letter or digit before it may end, and stops at the end of a sentence (".", "!"
or "?" before a space): at most one sentence is quoted. The fixed NOT_FOUND reply is one more sequence,
allowed only whole, so the model can still say the documents do not hold the answer.

Tests: tests/rag/test_extractive.py (tiny random Llama: every answer is a substring of its cited block;
stop only at word ends), tests/rag/test_answer_slow.py (SmolLM2 on the guide).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from llmlab.rag.result import Answer

if TYPE_CHECKING:
    from llmlab.rag.grounded_answer import GroundedPrompt

REPLACEMENT = "\ufffd"


@dataclass
class Block:
    """One sequence that answers are copied from: its token ids, where spans may start and end, and the
    text before each token (char offsets into `text`)."""

    ids: list[int]
    text: str
    """The decoded block, `text[offsets[i]:offsets[j]]` is the text of tokens i..j-1."""
    offsets: list[int]
    """(n + 1) character offsets: offsets[p] = len(decode(ids[:p]))."""
    starts: list[bool]
    """(n,) a span may start at token p."""
    ends: list[bool]
    """(n + 1,) a span may end before token p."""
    closes: list[bool]
    """(n + 1,) a sentence ends before token p: a span may not run on past it."""
    whole: bool = False
    """Only the whole sequence may be copied (the NOT_FOUND reply)."""


def _decode(tokenizer: Any, ids: Sequence[int]) -> str:
    return str(tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False))


def _joins_a_word(left: str, right: str) -> bool:
    """True when a cut between `left` and `right` would split a word, a number or a character."""
    if not left or not right:
        return False
    if left.endswith(REPLACEMENT) or right.startswith(REPLACEMENT):
        return True  # inside a multi-byte character split across byte-level tokens
    return left[-1].isalnum() and right[0].isalnum()


def _may_open(piece: str) -> bool:
    """A span may start with this token: not blank, and not the markup that opens a heading or a table row."""
    return bool(piece.strip()) and not piece.lstrip().startswith(("#", "|"))


def make_block(tokenizer: Any, text: str, whole: bool = False) -> Block:
    """Tokenize `text` on its own; spans start and end at word boundaries (only at its two ends if `whole`)."""
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    prefixes = [_decode(tokenizer, ids[:p]) for p in range(len(ids) + 1)]
    decoded = prefixes[-1]
    offsets = [len(p) if not p.endswith(REPLACEMENT) else -1 for p in prefixes]
    cut = [
        p in (0, len(ids)) or (offsets[p] >= 0 and not _joins_a_word(prefixes[p], decoded[offsets[p] :]))
        for p in range(len(ids) + 1)
    ]
    if whole:
        cut = [p in (0, len(ids)) for p in range(len(ids) + 1)]
    for p in range(len(ids), -1, -1):  # a cut inside a character has no offset of its own: use the next one
        if offsets[p] < 0:
            offsets[p] = offsets[p + 1] if p < len(ids) else len(decoded)
    starts = [cut[p] and _may_open(decoded[offsets[p] : offsets[p + 1]]) for p in range(len(ids))]
    closes = [
        not whole
        and cut[p]
        and decoded[: offsets[p]].endswith((".", "!", "?"))
        and decoded[offsets[p] :][:1].isspace()
        for p in range(len(ids) + 1)
    ]
    return Block(ids, decoded, offsets, starts, cut, closes, whole)


@dataclass
class Span:
    """Where generated ids were copied from: tokens `start`..`end - 1` of block `block` (0-based)."""

    block: int
    start: int
    end: int
    text: str


class SpanConstraint:
    """The `allowed_tokens` hook: generated ids must copy a contiguous run of one block's tokens.

    Args:
        blocks: the sequences to copy from (the context blocks, then NOT_FOUND as a `whole` block).
        vocab_size: V, the width of the model's logits (the mask is (V,)).
        stop_ids: end-of-sequence token ids, allowed where a span may end.
        aliases: token id -> the same word's token without its leading space, admitted at starts.
    """

    def __init__(
        self,
        blocks: Sequence[Block],
        vocab_size: int,
        stop_ids: set[int],
        aliases: dict[int, int] | None = None,
    ):
        self.blocks, self.vocab_size, self.stop_ids = list(blocks), vocab_size, sorted(stop_ids)
        self.first: dict[int, list[tuple[int, int]]] = {}  # first token -> (block, start) it may open
        for b, block in enumerate(self.blocks):
            for p, token in enumerate(block.ids):
                if block.starts[p]:
                    self.first.setdefault(token, []).append((b, p))
                    alias = (aliases or {}).get(token)
                    if alias is not None and alias != token:
                        self.first.setdefault(alias, []).append((b, p))
        self._cache: dict[int, tuple[list[int], list[tuple[int, int]]]] = {}

    def state(self, ids: Sequence[int], handle: int = -1) -> list[tuple[int, int]]:
        """(block, end position) of every occurrence that `ids` (the generated tokens) copies."""
        cached = self._cache.get(handle)
        if cached is not None and cached[0] == list(ids[: len(cached[0])]) and len(cached[0]) <= len(ids):
            done, live = cached
        else:
            done, live = [], []
        for k in range(len(done), len(ids)):
            token = ids[k]
            if k == 0:
                live = [(b, p + 1) for b, p in self.first.get(token, [])]
            else:
                live = [(b, p + 1) for b, p in live if self._next(b, p) == token]
        self._cache[handle] = (list(ids), live)
        return live

    def __call__(self, handle: int, ids: Sequence[int]) -> torch.Tensor:
        """(V,) bool mask of the tokens that may come next after `ids`."""
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        if not ids:
            allowed = list(self.first)
        else:
            live = self.state(ids, handle)
            allowed = [t for t in (self._next(b, p) for b, p in live) if t is not None]
            if not live or any(self._may_end(b, p, len(ids)) for b, p in live):
                allowed += self.stop_ids  # also the way out if nothing could continue (never all masked)
        mask[[t for t in allowed if t < self.vocab_size]] = True
        return mask

    def may_stop(self, ids: Sequence[int]) -> bool:
        """True when the copied `ids` may end here (EOS is allowed next)."""
        return any(self._may_end(b, p, len(ids)) for b, p in self.state(ids))

    def is_whole(self, ids: Sequence[int]) -> bool:
        """True when `ids` can only be copied from a whole-only sequence (NOT_FOUND)."""
        live = self.state(ids)
        return bool(live) and all(self.blocks[b].whole for b, _ in live)

    def _next(self, b: int, p: int) -> int | None:
        """The token that continues a span ending before token p of block b (None: it must end here)."""
        block = self.blocks[b]
        return block.ids[p] if p < len(block.ids) and not block.closes[p] else None

    def _may_end(self, b: int, end: int, length: int) -> bool:
        """A span of `length` tokens may end before token `end` of block `b`: a word ends there and the span
        holds a letter or digit (never an answer of bare punctuation)."""
        block = self.blocks[b]
        text = block.text[block.offsets[end - length] : block.offsets[end]]
        return block.ends[end] and any(c.isalnum() for c in text)

    def span(self, ids: Sequence[int]) -> Span | None:
        """The span `ids` copies (stop ids at the end ignored), cut back to its last word end; the first
        block holding it wins. None when nothing was copied."""
        ids = list(ids)
        while ids and ids[-1] in self.stop_ids:
            ids.pop()
        for n in range(len(ids), 0, -1):
            ends = [(b, p) for b, p in self.state(ids[:n]) if self._may_end(b, p, n)]
            if ends:
                b, end = min(ends)
                block = self.blocks[b]
                start = end - n
                return Span(b, start, end, block.text[block.offsets[start] : block.offsets[end]])
        return None


def space_aliases(tokenizer: Any, blocks: Sequence[Block]) -> dict[int, int]:
    """For each start token with a leading space (" default"), the one token for the word without it."""
    texts: dict[int, str] = {}
    for block in blocks:
        for p, token in enumerate(block.ids):
            if block.starts[p] and token not in texts:
                piece = block.text[block.offsets[p] : block.offsets[p + 1]]
                if piece[:1].isspace() and piece.strip():
                    texts[token] = piece.lstrip()
    if not texts:
        return {}
    tokens = list(texts)
    encoded = tokenizer([texts[t] for t in tokens], add_special_tokens=False)["input_ids"]
    return {t: ids[0] for t, ids in zip(tokens, encoded, strict=True) if len(ids) == 1}


def span_constraint(
    tokenizer: Any, texts: Sequence[str], vocab_size: int, stop_ids: set[int], whole: Sequence[str] = ()
) -> SpanConstraint:
    """The hook for copying from `texts` (each its own block), plus `whole` replies allowed only entire."""
    blocks = [make_block(tokenizer, t) for t in texts] + [make_block(tokenizer, w, whole=True) for w in whole]
    return SpanConstraint(blocks, vocab_size, stop_ids, space_aliases(tokenizer, blocks[: len(texts)]))


def extractive_answer(
    question: str,
    text: str,
    ids: Sequence[int],
    constraint: SpanConstraint,
    prompt: GroundedPrompt,
    stop: Sequence[str],
    query: str = "",
) -> Answer:
    """The Answer (rag/result.py) for ids copied under `constraint`: the span's own text from its block (cut at a stop
    string, as the stream was), cited as that block; NOT_FOUND (the last sequence) cites nothing."""
    from llmlab.prompting.grounded import NOT_FOUND
    from llmlab.rag.citations import Attribution, Source, passages

    span = constraint.span(ids)
    answer = Answer(question, text.strip(), [], prompt.hits, query or question, dropped=prompt.dropped)
    answer.prompt_tokens = prompt.tokens
    if span is None or span.block >= len(prompt.hits):  # NOT_FOUND, or nothing copied
        answer.not_found = span is not None or not answer.text
        answer.text = NOT_FOUND if span is not None else answer.text
        return answer
    quote = span.text
    cuts = [i for i in (quote.find(s) for s in stop if s) if i > len(quote) - len(quote.lstrip())]
    answer.text = quote = quote[: min(cuts, default=len(quote))].strip()
    hit, block = prompt.hits[span.block], span.block + 1
    snippet = next((p for p in passages(hit.chunk.text) if quote in p), quote)
    answer.sources = [Source(block, hit, snippet, 1.0, [quote])]
    answer.citations = [block]
    answer.attributions = [Attribution(quote, block, 1.0, snippet, [block])]
    return answer
