"""Citations in a generated answer: parse and validate `[n]` markers, detect "not in the documents" replies,
and attribute each answer sentence to the context chunk that supports it best.

    answer -> sentences s_1..s_m (citation markers stripped)
    chunk j -> passages p_j1..p_jn (its sentences and lines)
    support(s_i, j) = max_k cos(E(s_i), E(p_jk)) over passages p_jk holding the key terms of s_i
    source(s_i) = argmax_j support(s_i, j)   if the max >= min_support, else unsupported
    key terms: every number of s_i, and one of its names if it has any (`code`, snake_case, --flags,
               top-p, E-204)

The sources shown are the chunks that support at least one sentence, so they never depend on the model's
numbering alone: a cited number that names no context block is dropped and reported, and a sentence's
citation only breaks near-ties (within `CITED_MARGIN`) in favour of the chunk the model named. Passage-level
maxima (rather than one vector per chunk) keep a one-sentence answer from being diluted by a long chunk, and
give the supporting snippet shown next to each source. Closeness in meaning alone would let "top-p sets the
number of tokens" borrow a passage about min-p, or "1.5 to 2.5 bar" a passage that says 1 to 1.5 bar: a
passage only supports a sentence when it also holds the sentence's numbers (compared as numbers) and, when
the sentence names things, one of those names (`_` and `-` alike), so a quote shown as a source never
contradicts the sentence's numbers or speaks of something else.
Tests: tests/rag/test_answer_citations.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from llmlab.prompting.grounded import NOT_FOUND  # noqa: F401 - the reply is_not_found detects
from llmlab.rag.types import Hit

CITED_MARGIN = 0.03
"""A sentence's own citation wins over the best-scoring chunk when its support is within this margin."""

_CITATION = re.compile(r"\[\s*(?:(?:doc(?:ument)?|source)\s*)?(\d+(?:\s*[,;]\s*\d+)*)\s*\]", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[`*]?[A-Z0-9])")
_NOT_FOUND_FORMS = (
    "i don't know based on the documents",
    "i do not know based on the documents",
    "the documents do not contain",
    "the documents don't contain",
    "not in the documents",
)
_WORD = re.compile(r"\w+")
_BLOCK_START = re.compile(r"(?:[-*+]|\d+[.)])\s|[|#]|```")

Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Citation:
    """One cited block number and where its marker sits in the answer text."""

    number: int
    start: int
    end: int


def parse_citations(text: str) -> list[Citation]:
    """Every number in `[1]`, `[1, 3]`, `[2; 4]`, `[Document 2]` markers, in order of appearance."""
    found = []
    for match in _CITATION.finditer(text):
        for number in re.findall(r"\d+", match.group(1)):
            found.append(Citation(int(number), match.start(), match.end()))
    return found


def validate_citations(citations: Sequence[Citation], blocks: int) -> tuple[list[int], list[int]]:
    """(valid, invalid) cited numbers, each once in order of first appearance; valid means 1..blocks."""
    valid: list[int] = []
    invalid: list[int] = []
    for c in citations:
        target = valid if 1 <= c.number <= blocks else invalid
        if c.number not in target:
            target.append(c.number)
    return valid, invalid


def strip_citations(text: str) -> str:
    """The text without citation markers (and the space before them)."""
    return re.sub(r"\s*" + _CITATION.pattern, "", text, flags=re.IGNORECASE).strip()


def _normalize(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return " ".join(text.split())


def is_not_found(text: str) -> bool:
    """True when the answer says the documents do not hold the answer: the fixed phrase, a close form, or a
    reply that ends in "I don't know"."""
    norm = _normalize(strip_citations(text))
    if not norm:
        return True
    bare = norm.rstrip(" .!")
    return any(form in norm for form in _NOT_FOUND_FORMS) or bare.endswith(("i don't know", "i do not know"))


def _logical_lines(text: str) -> list[str]:
    """Lines with hard-wrapped prose joined: a line continues the previous one unless either is blank, or it
    starts a list item, table row, heading or code fence (Markdown wraps paragraphs at a fixed width)."""
    out: list[str] = []
    joinable = False
    for raw in text.splitlines():
        line = raw.strip()
        starts_block = bool(_BLOCK_START.match(line))
        if line and joinable and not starts_block:
            out[-1] += " " + line
        else:
            out.append(line)
        joinable = bool(line) and not line.startswith(("|", "#", "```"))
    return out


def split_sentences(text: str) -> list[str]:
    """Sentences of prose, one per item for lists and table rows; markdown bullets and empty pieces removed.

    Sentences end at `.`, `!` or `?` followed by space and a capital letter or digit, so "e.g. this" and
    "file.md" stay whole."""
    sentences: list[str] = []
    for line in _logical_lines(text):
        line = re.sub(r"^(?:[-*+]|\d+[.)])\s+", "", line).strip()
        if not line or line.startswith("```"):
            continue
        sentences += [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
    return sentences


def passages(text: str, min_words: int = 3) -> list[str]:
    """The pieces of a chunk that a sentence can be matched against: its sentences and list items of at
    least `min_words` words (headings left out), or the whole text when nothing qualifies."""
    pieces = [
        s for s in split_sentences(text) if len(_WORD.findall(s)) >= min_words and not s.startswith("#")
    ]
    return pieces or [" ".join(text.split())]


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
_TERM = re.compile(r"`([^`\n]+)`|(?<![\w-])(--?[A-Za-z][\w-]*|\w+(?:[_-]\w+)+)")


def _number(text: str) -> str:
    """A number as compared: thousands separators dropped, trailing decimal zeros too ("2.0" == "2")."""
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", text):
        text = text.replace(",", "")
    if "." in text and "," not in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _identifier_text(text: str) -> str:
    """Lower case, no backticks, `_` as `-`, no leading dashes on words: `--max_depth` -> `max-depth`."""
    text = text.lower().replace("`", "").replace("_", "-")
    return re.sub(r"(?<![\w-])-+(?=[a-z])", "", text)


def _is_identifier(word: str) -> bool:
    """snake_case, --flags, and hyphenated names with a digit or a one-letter part (top-p, E-204); not
    ordinary hyphenated words (few-shot)."""
    if "_" in word or word.startswith("-"):
        return True
    parts = word.split("-")
    return any(len(p) == 1 or any(c.isdigit() for c in p) for p in parts)


def key_terms(sentence: str) -> set[str]:
    """The numbers and identifiers of a sentence, as a supporting passage must hold them."""
    text = strip_citations(sentence)
    terms = {"#" + _number(n) for n in _NUMBER.findall(text)}
    for code, word in _TERM.findall(text):
        if code or _is_identifier(word):
            terms.add(_identifier_text(code or word).strip())
    return terms - {"", "#"}


def holds_terms(passage: str, terms: set[str]) -> bool:
    """True when `passage` holds every number of `terms` (by value) and, if `terms` has names, at least one
    of them (as a whole word): a wrong number is a wrong answer, and a passage that mentions nothing the
    sentence names is about something else. (All names would be too strict: one answer sentence often joins
    two facts, "`LLMLAB_CACHE` ... and `LLMLAB_HOME` ...", from two passages.)"""
    numbers = {t for t in terms if t.startswith("#")}
    names = terms - numbers
    if numbers and not numbers <= {"#" + _number(n) for n in _NUMBER.findall(passage)}:
        return False
    text = _identifier_text(passage)
    return not names or any(re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text) for name in names)


@dataclass
class Attribution:
    """Which context block supports one answer sentence, how well, and the passage that does."""

    sentence: str
    block: int | None
    """1-based context block number, or None when no block reaches `min_support`."""
    score: float
    """Cosine similarity between the sentence and the supporting passage."""
    snippet: str
    cited: list[int] = field(default_factory=list)
    """Valid block numbers the sentence itself cited."""


def attribute(answer: str, hits: Sequence[Hit], embed: Embed, min_support: float = 0.35) -> list[Attribution]:
    """Attribute each sentence of `answer` to the hit (context block i + 1) whose best passage is closest.

    Args:
        hits: the context blocks in prompt order (block 1 is hits[0]).
        embed: texts -> (N, dim) unit vectors, normally the store's embedder.
        min_support: a sentence whose best cosine is below this gets `block=None` (unsupported).
    """
    sentences = [s for s in split_sentences(answer) if _WORD.search(strip_citations(s))]
    if not sentences or not hits:
        return [Attribution(s, None, 0.0, "") for s in sentences]
    chunk_passages = [passages(h.chunk.text) for h in hits]
    flat = [p for group in chunk_passages for p in group]
    vectors = embed([strip_citations(s) for s in sentences] + flat)
    sims = vectors[: len(sentences)] @ vectors[len(sentences) :].T  # (sentences, passages)
    owner = np.repeat(np.arange(len(hits)), [len(g) for g in chunk_passages])  # passage -> hit index
    out = []
    for i, sentence in enumerate(sentences):
        cited, _ = validate_citations(parse_citations(sentence), len(hits))
        terms = key_terms(sentence)
        holding = np.array([holds_terms(p, terms) for p in flat])
        out.append(_attribute_one(sentence, sims[i], holding, owner, flat, cited, min_support))
    return out


def _attribute_one(
    sentence: str,
    sims: np.ndarray,
    holding: np.ndarray,
    owner: np.ndarray,
    flat: list[str],
    cited: list[int],
    min_support: float,
) -> Attribution:
    """The best passage among those holding the sentence's key terms (`holding`, bool per passage)."""
    if not holding.any():
        return Attribution(sentence, None, float(sims.max()), "", cited)
    sims = np.where(holding, sims, -np.inf)
    best = int(np.argmax(sims))
    block, score = int(owner[best]) + 1, float(sims[best])
    for number in cited:  # the model's own citation breaks near-ties
        mine = np.flatnonzero((owner == number - 1) & holding)
        if not len(mine):
            continue
        j = int(mine[np.argmax(sims[mine])])
        if number != block and float(sims[j]) >= score - CITED_MARGIN:
            best, block, score = j, number, float(sims[j])
            break
    if score < min_support:
        return Attribution(sentence, None, score, "", cited)
    return Attribution(sentence, block, score, flat[best], cited)


@dataclass
class Source:
    """A context block that supports part of the answer: what the CLI lists under the answer."""

    block: int
    """1-based number of the block in the prompt (the number the model cites)."""
    hit: Hit
    snippet: str
    """The chunk passage that best supports the answer sentences attributed to this block."""
    score: float
    sentences: list[str] = field(default_factory=list)


def sources_from(attributions: Sequence[Attribution], hits: Sequence[Hit]) -> list[Source]:
    """One Source per supporting block, in the order the answer first relies on it."""
    by_block: dict[int, Source] = {}
    for a in attributions:
        if a.block is None:
            continue
        source = by_block.get(a.block)
        if source is None:
            by_block[a.block] = Source(a.block, hits[a.block - 1], a.snippet, a.score, [a.sentence])
            continue
        source.sentences.append(a.sentence)
        if a.score > source.score:
            source.snippet, source.score = a.snippet, a.score
    return list(by_block.values())
