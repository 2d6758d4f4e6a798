"""chrF and chrF++ (Popović, 2015, "chrF: character n-gram F-score for automatic MT evaluation", WMT;
Popović, 2017, "chrF++: words helping character n-grams", WMT).

    chrP, chrR = mean over orders n = 1..6 (with any n-grams on both sides) of character n-gram precision, recall
    chrF_beta  = 100 * (1 + beta^2) * chrP * chrR / (beta^2 * chrP + chrR)          beta = 2: recall counts more

Whitespace is removed before extracting character n-grams (unless `whitespace=True`). chrF++ adds word n-grams
up to `word_order` (2), with punctuation split off the ends of words. Corpus chrF sums the n-gram statistics
over sentences first; with several references each sentence uses the reference that gives it the best score.
`eps_smoothing=True` averages per-order F-scores instead (chrF++.py, NLTK and Moses).

Matches sacreBLEU 2.x (`sacrebleu.metrics.CHRF`, `corpus_score` and `sentence_score`) to 1e-9 and prints the
same signature except for the version field; it is faster because the n-grams of the whole corpus are counted
and matched at once with one sort (`ngram_match.py`) instead of one `Counter` per sentence and order.

Parity: tests/evaluation/test_chrf.py::test_corpus_chrf_matches_sacrebleu
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from llmlab import __version__
from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.bleu import count_references
from llmlab.evaluation.metrics.inputs import check_pairs
from llmlab.evaluation.metrics.ngram_match import clipped_matches, encode_chars, encode_tokens, layout

_PUNCTS = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


@dataclass(frozen=True)
class ChrfConfig:
    """Settings of a chrF computation; the defaults are sacreBLEU's chrF2."""

    char_order: int = 6
    """Highest character n-gram order."""
    word_order: int = 0
    """Highest word n-gram order; 2 gives chrF++."""
    beta: int = 2
    """Weight of recall against precision."""
    lowercase: bool = False
    """Compare case-insensitively."""
    whitespace: bool = False
    """Keep whitespace inside character n-grams."""
    eps_smoothing: bool = False
    """Average per-order F-scores with an epsilon for empty orders, instead of skipping empty orders."""

    def __post_init__(self) -> None:
        if self.char_order < 1 or self.word_order < 0:
            raise ConfigError(
                f"--char-order must be >= 1 and --word-order >= 0, got {self.char_order} and {self.word_order}"
            )
        if self.beta <= 0:
            raise ConfigError(f"--beta must be positive, got {self.beta}")


@dataclass(frozen=True)
class ChrfScore:
    """A chrF score (0-100) with its name (chrF2, chrF2++) and the settings that produced it."""

    score: float
    name: str
    signature: str


def _words(text: str) -> list[str]:
    """Split on whitespace, then split one punctuation mark off the end (else the start) of each word."""
    words: list[str] = []
    for w in text.split():
        if len(w) == 1:
            words.append(w)
        elif w[-1] in _PUNCTS:
            words += [w[:-1], w[-1]]
        elif w[0] in _PUNCTS:
            words += [w[0], w[1:]]
        else:
            words.append(w)
    return words


def chrf_from_statistics(stats: Sequence[float], config: ChrfConfig) -> float:
    """chrF (0-100) from [hyp, ref, match] triples per order, summed over sentences."""
    eps = 1e-16
    factor = config.beta**2
    score = avg_prec = avg_rec = 0.0
    effective = 0
    for i in range(config.char_order + config.word_order):
        n_hyp, n_ref, n_match = stats[3 * i : 3 * i + 3]
        prec = n_match / n_hyp if n_hyp > 0 else eps
        rec = n_match / n_ref if n_ref > 0 else eps
        denom = factor * prec + rec
        score += ((1 + factor) * prec * rec / denom) if denom > 0 else eps
        if n_hyp > 0 and n_ref > 0:
            avg_prec += prec
            avg_rec += rec
            effective += 1
    if config.eps_smoothing:
        return 100 * score / (config.char_order + config.word_order)
    if effective == 0:
        return 0.0
    avg_prec /= effective
    avg_rec /= effective
    if not avg_prec + avg_rec:
        return 0.0
    return 100 * ((1 + factor) * avg_prec * avg_rec / ((factor * avg_prec) + avg_rec))


def _order_stats(matches: np.ndarray, hyp_len: np.ndarray, ref_len: np.ndarray, order: int) -> np.ndarray:
    """[output n-grams (0 if the reference has none), reference n-grams, matches] per order, shape (..., 3 * order).

    matches: (order, slots, items); hyp_len: (items,); ref_len: (slots, items).
    """
    n = np.arange(1, order + 1)[:, None, None]
    hyp = np.maximum(hyp_len[None, None, :] - n + 1, 0)
    ref = np.maximum(ref_len[None, :, :] - n + 1, 0)
    stats = np.stack([np.where(ref > 0, hyp, 0), ref, matches], axis=-1)  # (order, slots, items, 3)
    return stats.transpose(1, 2, 0, 3).reshape(ref_len.shape[0], ref_len.shape[1], 3 * order)


def _slot_stats(
    texts: list[str], item: np.ndarray, group: np.ndarray, slots: int, order: int, chars: bool
) -> np.ndarray:
    """Per-slot statistics (slots, items, 3 * order) of character (or word) n-grams."""
    n_items = int((group == 0).sum())
    if chars:
        ids, lengths = encode_chars(texts)
    else:
        ids, lengths = encode_tokens([_words(t) for t in texts])
    matches = clipped_matches(ids, lengths, item, group, n_items, slots, order)
    ref_len = np.zeros((slots, n_items), dtype=np.int64)
    ref_len[group[n_items:] - 1, item[n_items:]] = lengths[n_items:]
    return _order_stats(matches.per_ref, lengths[:n_items], ref_len, order)


def chrf_statistics(
    predictions: Sequence[str], references: Sequence[Sequence[str]], config: ChrfConfig
) -> np.ndarray:
    """Statistics per item against its best reference, shape (items, 3 * (char_order + word_order)):
    [output n-grams, reference n-grams, matches] for each character order, then each word order.

    Summing rows and calling `chrf_from_statistics` gives corpus chrF; resampling rows gives its bootstrap.
    """
    check_pairs(predictions, references)
    texts = [p for p in predictions] + [r for refs in references for r in refs]
    if config.lowercase:
        texts = [t.lower() for t in texts]
    item_list, group_list, slots = layout(references)
    item, group = np.asarray(item_list), np.asarray(group_list)
    squeezed = texts if config.whitespace else ["".join(t.split()) for t in texts]
    stats = _slot_stats(squeezed, item, group, slots, config.char_order, chars=True)
    if config.word_order:
        words = _slot_stats(texts, item, group, slots, config.word_order, chars=False)
        stats = np.concatenate([stats, words], axis=-1)
    best = stats[0]
    for i, refs in enumerate(references):
        if len(refs) > 1:  # sacreBLEU keeps the first reference with the strictly best score
            scores = [chrf_from_statistics(stats[s, i].tolist(), config) for s in range(len(refs))]
            best[i] = stats[scores.index(max(scores)), i]
    return best


def chrf_signature(config: ChrfConfig, nrefs: int | str, bootstrap: tuple[int, int] | None = None) -> str:
    """sacreBLEU's chrF signature for these settings; `bootstrap` is (resamples, seed) when used."""
    parts = [f"nrefs:{nrefs}"]
    if bootstrap is not None:
        parts += [f"bs:{bootstrap[0]}", f"seed:{bootstrap[1]}"]
    parts += [
        f"case:{'lc' if config.lowercase else 'mixed'}",
        f"eff:{'no' if config.eps_smoothing else 'yes'}",
        f"nc:{config.char_order}",
        f"nw:{config.word_order}",
        f"space:{'yes' if config.whitespace else 'no'}",
        f"version:llmlab-{__version__}",
    ]
    return "|".join(parts)


def chrf_name(config: ChrfConfig) -> str:
    """chrF2 for the default, chrF2++ with word bigrams."""
    return f"chrF{config.beta}" + "+" * config.word_order


def corpus_chrf(
    predictions: Sequence[str], references: Sequence[Sequence[str]], config: ChrfConfig | None = None
) -> ChrfScore:
    """Corpus chrF; `references[i]` is the list of references of `predictions[i]`.

    Equals `sacrebleu.metrics.CHRF(...).corpus_score(predictions, streams)` with the references transposed.
    """
    config = config or ChrfConfig()
    sums = chrf_statistics(predictions, references, config).sum(axis=0).tolist()
    signature = chrf_signature(config, count_references(references))
    return ChrfScore(chrf_from_statistics(sums, config), chrf_name(config), signature)


def sentence_chrf(prediction: str, references: Sequence[str], config: ChrfConfig | None = None) -> ChrfScore:
    """chrF of one sentence (sacreBLEU's `sentence_chrf`)."""
    return corpus_chrf([prediction], [references], config)
