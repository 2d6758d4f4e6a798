"""ROUGE: Recall-Oriented Understudy for Gisting Evaluation (Lin, 2004, "ROUGE: A Package for Automatic
Evaluation of Summaries", ACL Workshop on Text Summarization Branches Out).

    ROUGE-N recall    = matching n-grams / n-grams in the reference
    ROUGE-N precision = matching n-grams / n-grams in the output       (counts clipped: min of the two counts)
    F1                = 2PR / (P + R)
    ROUGE-L           = the same with the length of the longest common subsequence (LCS) as the match count
    ROUGE-Lsum        = summary-level LCS: for each reference sentence, the union of its LCS with every output
                        sentence; hits are clipped by token counts (ROUGE-1.5.5, section 3.2 of the paper)

Tokens: lowercase, every run of characters other than a-z and 0-9 is a separator; with `stem=True`, words of
more than three letters are Porter-stemmed (NLTK's variant, `porter.py`). Sentences for ROUGE-Lsum are the
non-empty lines of the text. With several references, each type takes the reference with the highest F1.

Matches Google's rouge-score (`rouge_scorer.RougeScorer(types, use_stemmer=stem)`, `.score` and `.score_multi`)
to 1e-9 on every type; it departs only in speed: tokens and stems are computed once per text, n-grams of the
whole corpus are matched with one sort (`ngram_match.py`), and LCS uses the bit-parallel algorithm in `lcs.py`.

Parity: tests/evaluation/test_rouge.py::test_matches_rouge_score_on_generated_texts
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Hashable, Sequence
from itertools import chain
from typing import NamedTuple

import numpy as np

from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.inputs import check_pairs
from llmlab.evaluation.metrics.lcs import Packed, lcs_length, pack, union_lcs_indices
from llmlab.evaluation.metrics.lcs_batch import Sentences, fits, union_lcs_hits
from llmlab.evaluation.metrics.ngram_match import clipped_matches, encode_tokens, layout
from llmlab.evaluation.metrics.porter import porter_stem

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
"""The default types; any `rougeN` with N in 1..9 is also accepted."""

_SEPARATORS = bytes(c if c in b"abcdefghijklmnopqrstuvwxyz0123456789\n" else 32 for c in range(256))
_ROUGE_N = re.compile(r"rouge([1-9])")


class RougeScore(NamedTuple):
    """Precision, recall and F1 of one ROUGE type, each in [0, 1] (rouge-score's `Score`)."""

    precision: float
    recall: float
    fmeasure: float


_ZERO = RougeScore(0.0, 0.0, 0.0)


class _Text:
    """A text as ROUGE sees it: its tokens, its tokens per non-empty line (for ROUGE-Lsum)."""

    def __init__(self, sentences: list[list[str]]) -> None:
        self.sentences = sentences
        self.tokens = sentences[0] if len(sentences) == 1 else list(chain.from_iterable(sentences))
        self._packed: Packed | None = None

    @property
    def packed(self) -> Packed:
        """The sentences as one bit string for LCS (built once, reused across references)."""
        if self._packed is None:
            self._packed = pack(self.sentences)
        return self._packed


def _lines(text: str) -> list[list[str]]:
    """Tokens of each non-empty line of the text.

    Lowercase, then every character other than a-z, 0-9 and the newline becomes a space (bytes.translate on the
    ASCII encoding; any non-ASCII character left after lowercasing is a separator anyway, so it may become
    '?' first). Lowercasing the whole text equals lowercasing each line: only Greek final sigma looks at its
    neighbours, and it is not a token character either way. A line is kept when it is non-empty before
    tokenizing, as rouge-score keeps it, even if it has no tokens.
    """
    ascii_text = text.lower().encode("ascii", "replace").translate(_SEPARATORS).decode("ascii")
    return [line.split() for line in ascii_text.split("\n") if line]


def tokenize(text: str, stem: bool = False) -> list[str]:
    """rouge-score's tokens: lowercase alphanumeric runs, words over three letters stemmed when `stem`."""
    tokens = list(chain.from_iterable(_lines(text)))
    if stem:
        return [porter_stem(t) if len(t) > 3 else t for t in tokens]
    return tokens


def _prepare(text: str, stem: bool) -> _Text:
    # Lines are separated by "\n", itself a separator, so the text's tokens are its lines' tokens in order.
    sentences = _lines(text)
    if stem:
        sentences = [[porter_stem(t) if len(t) > 3 else t for t in s] for s in sentences]
    return _Text(sentences)


def check_types(types: Sequence[str]) -> tuple[str, ...]:
    """Validate ROUGE type names; raises ConfigError naming the bad one and the valid forms."""
    if not types:
        raise ConfigError("--types must name at least one ROUGE type, e.g. rouge1,rouge2,rougeL,rougeLsum")
    for t in types:
        if t not in ("rougeL", "rougeLsum") and not _ROUGE_N.fullmatch(t):
            raise ConfigError(f"unknown ROUGE type {t!r}; use rouge1 .. rouge9, rougeL or rougeLsum")
    return tuple(types)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


class _Chunk:
    """Items scored together: their texts (outputs first, then each item's references) as token ids."""

    def __init__(self, preds: list[_Text], refs: list[list[_Text]]) -> None:
        self.preds, self.refs = preds, refs
        self.texts = preds + [r for item_refs in refs for r in item_refs]
        self.ids, self.lengths = encode_tokens([t.tokens for t in self.texts])
        self.item, self.group, self.slots = layout(refs)

    def sentences(self) -> Sentences:
        """Every text's non-empty sentences as spans of `ids`."""
        return Sentences.from_lengths([[len(s) for s in text.sentences] for text in self.texts])


def _score_ngrams(chunk: _Chunk, orders: set[int]) -> dict[int, list[list[RougeScore]]]:
    """ROUGE-N for every n in `orders`, item and reference: result[n][item][ref].

    Clipped n-gram matches for the whole chunk come from one sort (`ngram_match.py`); precision, recall and F1
    use the same float operations, in the same order, as rouge-score, so the values are bit-identical.
    """
    n_preds, lengths, item, group = len(chunk.preds), chunk.lengths, chunk.item, chunk.group
    matches = clipped_matches(
        chunk.ids, lengths, np.asarray(item), np.asarray(group), n_preds, chunk.slots, max(orders)
    )
    ref_len = np.zeros((chunk.slots, n_preds), dtype=np.int64)
    ref_len[np.asarray(group[n_preds:]) - 1, item[n_preds:]] = lengths[n_preds:]
    result: dict[int, list[list[RougeScore]]] = {}
    for n in sorted(orders):
        hits = matches.per_ref[n - 1]  # (slots, items)
        precision = hits / np.maximum(lengths[None, :n_preds] - n + 1, 1)
        recall = hits / np.maximum(ref_len - n + 1, 1)
        total = precision + recall
        f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(total), where=total > 0)
        table = np.stack([precision, recall, f1], axis=-1).transpose(1, 0, 2).tolist()  # (items, slots, 3)
        result[n] = [
            [RougeScore(*x) for x in row[: len(r)]] for row, r in zip(table, chunk.refs, strict=True)
        ]
    return result


def _score_lcs(target: _Text, prediction: _Text) -> RougeScore:
    if not target.tokens or not prediction.tokens:
        return _ZERO
    lcs = lcs_length(target.tokens, prediction.packed)
    precision = lcs / len(prediction.tokens)
    recall = lcs / len(target.tokens)
    return RougeScore(precision, recall, _f1(precision, recall))


def _score_lsum(target: _Text, prediction: _Text) -> RougeScore:
    """Summary-level LCS with ROUGE-1.5.5's clipping of hits by token counts (no double counting)."""
    m = len(target.tokens)
    n = len(prediction.tokens)
    if not m or not n:
        return _ZERO
    # rouge-score walks the union tokens in order and counts a hit while both sides still have that token
    # left. The union positions are distinct positions of the reference, so a token t never runs out on the
    # reference side and scores min(times in the unions, times in the output): order does not matter. The
    # output's count of t is the number of bits in its packed mask.
    packed = prediction.packed
    union: Counter[Hashable] = Counter()
    for ref in target.sentences:
        union.update(map(ref.__getitem__, union_lcs_indices(ref, packed)))
    in_output = map(int.bit_count, map(packed.masks.__getitem__, union))
    hits = sum(map(min, union.values(), in_output))
    recall = hits / m
    precision = hits / n
    return RougeScore(precision, recall, _f1(precision, recall))


def _score_lsum_chunk(chunk: _Chunk) -> list[list[RougeScore]]:
    """ROUGE-Lsum of every item and reference: numpy over sentence pairs (`summary_lcs.py`), falling back to
    `_score_lsum` for outputs with a sentence of more than 63 tokens."""
    outputs = np.repeat(np.arange(len(chunk.preds)), [len(r) for r in chunk.refs])
    targets = np.arange(len(chunk.preds), len(chunk.texts))
    sentences = chunk.sentences()
    fast = fits(sentences, outputs)
    hits = np.zeros(len(targets), dtype=np.int64)
    if fast.any():
        hits[fast] = union_lcs_hits(chunk.ids, sentences, targets[fast], outputs[fast])
    scores: list[list[RougeScore]] = [[] for _ in chunk.refs]
    for target, pred, count, ok in zip(
        targets.tolist(), outputs.tolist(), hits.tolist(), fast.tolist(), strict=True
    ):
        t, p = chunk.texts[target], chunk.texts[pred]
        if not ok:
            scores[pred].append(_score_lsum(t, p))
        elif not t.tokens or not p.tokens:
            scores[pred].append(_ZERO)
        else:
            precision, recall = count / len(p.tokens), count / len(t.tokens)
            scores[pred].append(RougeScore(precision, recall, _f1(precision, recall)))
    return scores


def _best(scores: list[RougeScore]) -> RougeScore:
    """The score with the highest F1, the first on ties (numpy.argmax in rouge-score's `score_multi`)."""
    if len(scores) == 1:
        return scores[0]
    best = scores[0]
    for s in scores[1:]:
        if s.fmeasure > best.fmeasure:
            best = s
    return best


_CHUNK = 512
"""Items scored together: enough to amortise numpy's per-call cost, few enough to stay in the CPU cache."""


def _score_chunk(
    predictions: Sequence[str], references: Sequence[Sequence[str]], types: tuple[str, ...], stem: bool
) -> list[dict[str, RougeScore]]:
    chunk = _Chunk(
        [_prepare(p, stem) for p in predictions], [[_prepare(r, stem) for r in rs] for rs in references]
    )
    orders = {int(t[5:]) for t in types if t not in ("rougeL", "rougeLsum")}
    per_type: dict[str, list[list[RougeScore]]] = {}
    if orders:
        ngram = _score_ngrams(chunk, orders)
        per_type.update({t: ngram[int(t[5:])] for t in types if t not in ("rougeL", "rougeLsum")})
    if "rougeL" in types:
        per_type["rougeL"] = [
            [_score_lcs(r, p) for r in rs] for p, rs in zip(chunk.preds, chunk.refs, strict=True)
        ]
    if "rougeLsum" in types:
        per_type["rougeLsum"] = _score_lsum_chunk(chunk)
    return [{t: _best(per_type[t][i]) for t in types} for i in range(len(chunk.preds))]


def rouge(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    types: Sequence[str] = ROUGE_TYPES,
    stem: bool = False,
) -> list[dict[str, RougeScore]]:
    """ROUGE of each item; `references[i]` is the list of references of `predictions[i]` (at least one).

    With several references, each type takes the reference with the highest F1 (the first on ties), as
    rouge-score's `score_multi` does. The corpus score is the mean over items (`mean_rouge`).

    Returns:
        Per item, one `RougeScore` per type, in the order of `types`.
    """
    checked = check_types(types)
    check_pairs(predictions, references)
    results: list[dict[str, RougeScore]] = []
    for start in range(0, len(predictions), _CHUNK):
        end = start + _CHUNK
        results += _score_chunk(predictions[start:end], references[start:end], checked, stem)
    return results


def rouge_score(
    prediction: str, references: str | Sequence[str], types: Sequence[str] = ROUGE_TYPES, stem: bool = False
) -> dict[str, RougeScore]:
    """ROUGE of one prediction against one reference or several (see `rouge`)."""
    refs = [references] if isinstance(references, str) else list(references)
    return rouge([prediction], [refs], types, stem)[0]


def mean_rouge(scores: Sequence[dict[str, RougeScore]]) -> dict[str, RougeScore]:
    """Mean precision, recall and F1 per type over items (each mean is over items, not a re-derived F1)."""
    if not scores:
        raise ConfigError("mean_rouge needs at least one scored item")
    n = len(scores)
    return {
        t: RougeScore(
            sum(s[t].precision for s in scores) / n,
            sum(s[t].recall for s in scores) / n,
            sum(s[t].fmeasure for s in scores) / n,
        )
        for t in scores[0]
    }
