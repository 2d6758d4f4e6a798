"""BLEU (Papineni et al., 2002, "BLEU: a Method for Automatic Evaluation of Machine Translation", ACL).

    p_n  = clipped matching n-grams / n-grams in the output          (n = 1..4; counts clipped by the
                                                                       largest count in any one reference)
    BP   = 1 if c > r else exp(1 - r / c)                            (c: output length, r: closest reference
                                                                       length, the shorter one on ties)
    BLEU = 100 * BP * exp(mean_n log p_n)                            (the geometric mean of the precisions)

Corpus BLEU sums the counts and lengths over all sentences before taking the ratio (it is not a mean of
sentence scores). Smoothing for zero counts (Chen & Cherry, 2014, "A Systematic Comparison of Smoothing
Techniques for Sentence-Level BLEU"): `none`; `floor` (a zero count becomes `smooth_value`, default 0.1);
`add-k` (add `smooth_value`, default 1, to counts and totals for n > 1); `exp` (the k-th zero precision
becomes 1 / (2^k * total), mteval-v13a's method and the default).

Matches sacreBLEU 2.x (`sacrebleu.metrics.BLEU`, `corpus_score` and `sentence_score`) to 1e-9 with tokenizers
`13a` (mteval-v13a.pl, WMT's standard) and `none`, every smoothing method and `lowercase`, and prints the same
signature except for the version field. It departs only in speed: the 13a tokenizer skips the substitutions
that cannot apply to a line and does not pad spaces (the tokens are identical), n-grams are counted per order
for the whole corpus at once with one sort (`ngram_match.py`).

Parity: tests/evaluation/test_bleu.py::test_corpus_bleu_matches_sacrebleu
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from llmlab import __version__
from llmlab.errors import ConfigError
from llmlab.evaluation.metrics.inputs import check_pairs
from llmlab.evaluation.metrics.ngram_match import clipped_matches, encode_tokens, layout

SMOOTH_DEFAULTS: dict[str, float | None] = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}
"""The smoothing methods and their default `smooth_value` (None: the method takes no value)."""

# mteval-v13a's punctuation class, less the space: padding spaces with spaces changes no token.
_PUNCT = re.compile(r"([\{-\~\[-\`!-\&\(-\+\:-\@\/])")
_PERIOD_AFTER_NON_DIGIT = re.compile(r"([^0-9])([\.,])")
_PERIOD_BEFORE_NON_DIGIT = re.compile(r"([\.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")


def tokenize_13a(line: str) -> list[str]:
    """mteval-v13a tokenization (sacreBLEU's `13a`): unescape, split punctuation, keep 3.5 and 1,000 whole."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = _PUNCT.sub(r" \1 ", f" {line} ")
    if "." in line or "," in line:
        line = _PERIOD_AFTER_NON_DIGIT.sub(r"\1 \2 ", line)
        line = _PERIOD_BEFORE_NON_DIGIT.sub(r" \1 \2", line)
    if "-" in line:
        line = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return line.split()


def tokenize_none(line: str) -> list[str]:
    """No tokenization: split on whitespace only (sacreBLEU's `none`)."""
    return line.split()


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {"13a": tokenize_13a, "none": tokenize_none}
"""The tokenizers BLEU offers, by sacreBLEU's name."""


@dataclass(frozen=True)
class BleuScore:
    """A BLEU score (0-100) with the statistics it came from and the settings that produced it."""

    score: float
    counts: list[float]
    """Matching n-grams per order, clipped (add-k smoothing adds its value for n > 1)."""
    totals: list[float]
    """N-grams in the output per order."""
    precisions: list[float]
    """Per-order precisions in percent, after smoothing."""
    bp: float
    """Brevity penalty."""
    sys_len: int
    ref_len: int
    signature: str
    """sacreBLEU-style settings string, e.g. `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:...`."""


@dataclass(frozen=True)
class BleuConfig:
    """Settings of a BLEU computation; the defaults are sacreBLEU's corpus BLEU."""

    smooth_method: Literal["none", "floor", "add-k", "exp"] = "exp"
    """Smoothing for zero n-gram counts: none, floor, add-k or exp."""
    smooth_value: float | None = None
    """The value for floor (default 0.1) and add-k (default 1)."""
    lowercase: bool = False
    """Lowercase outputs and references before tokenizing."""
    tokenize: Literal["13a", "none"] = "13a"
    """Tokenizer: 13a (mteval-v13a, the WMT standard) or none (whitespace only)."""
    effective_order: bool = False
    """Stop at the highest n with n-grams in the output (sentence BLEU turns this on)."""
    max_ngram_order: int = 4
    """Highest n-gram order."""

    def __post_init__(self) -> None:
        if self.smooth_method not in SMOOTH_DEFAULTS:
            raise ConfigError(
                f"--smooth-method must be one of {', '.join(SMOOTH_DEFAULTS)}, got {self.smooth_method!r}"
            )
        if self.tokenize not in TOKENIZERS:
            raise ConfigError(f"--tokenize must be one of {', '.join(TOKENIZERS)}, got {self.tokenize!r}")
        if self.max_ngram_order < 1:
            raise ConfigError(f"--max-ngram-order must be at least 1, got {self.max_ngram_order}")


def _closest_ref_len(hyp_len: int, ref_lens: list[int]) -> int:
    """The reference length closest to the output's; the shorter of two equally close."""
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def _preprocess(text: str, config: BleuConfig) -> list[str]:
    if config.lowercase:
        text = text.lower()
    return TOKENIZERS[config.tokenize](text.rstrip())


def bleu_statistics(
    predictions: Sequence[str], references: Sequence[Sequence[str]], config: BleuConfig
) -> np.ndarray:
    """Sufficient statistics per item, shape (items, 2 + 2 * order):
    [output length, closest reference length, clipped matches for n = 1..order, output n-grams for n = 1..order].

    Summing rows and calling `bleu_from_statistics` gives corpus BLEU; resampling rows gives its bootstrap.
    """
    check_pairs(predictions, references)
    order = config.max_ngram_order
    hyps = [_preprocess(p, config) for p in predictions]
    refs = [[_preprocess(r, config) for r in item] for item in references]
    item, group, slots = layout(references)
    ids, lengths = encode_tokens(hyps + [r for item_refs in refs for r in item_refs])
    matches = clipped_matches(ids, lengths, np.asarray(item), np.asarray(group), len(hyps), slots, order)
    hyp_len = lengths[: len(hyps)]
    stats = np.zeros((len(hyps), 2 + 2 * order), dtype=np.int64)
    stats[:, 0] = hyp_len
    stats[:, 1] = [
        _closest_ref_len(h, [len(r) for r in rs]) for h, rs in zip(hyp_len.tolist(), refs, strict=True)
    ]
    stats[:, 2 : 2 + order] = matches.merged.T
    stats[:, 2 + order :] = np.maximum(hyp_len[:, None] - np.arange(order)[None, :], 0)
    return stats


def _log(p: float) -> float:
    return math.log(p) if p != 0.0 else -9999999999  # sacreBLEU's floor for log(0)


def _precisions(
    correct: list[float], total: list[float], config: BleuConfig, smooth_value: float
) -> tuple[list[float], int]:
    """Smoothed precisions in percent and the number of orders that enter the mean (mutates the counts)."""
    precisions = [0.0] * len(correct)
    eff_order = len(correct)
    mteval = 1.0
    for n in range(1, len(correct) + 1):
        if config.smooth_method == "add-k" and n > 1:
            correct[n - 1] += smooth_value
            total[n - 1] += smooth_value
        if total[n - 1] == 0:
            break
        if config.effective_order:
            eff_order = n
        if correct[n - 1] == 0:
            if config.smooth_method == "exp":
                mteval *= 2
                precisions[n - 1] = 100.0 / (mteval * total[n - 1])
            elif config.smooth_method == "floor":
                precisions[n - 1] = 100.0 * smooth_value / total[n - 1]
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    return precisions, eff_order


def bleu_from_statistics(stats: Sequence[float], config: BleuConfig, signature: str = "") -> BleuScore:
    """BLEU from summed sufficient statistics (see `bleu_statistics`)."""
    order = config.max_ngram_order
    sys_len, ref_len = int(stats[0]), int(stats[1])
    correct: list[float] = list(stats[2 : 2 + order])
    total: list[float] = list(stats[2 + order : 2 + 2 * order])
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    if not any(correct):
        return BleuScore(0.0, correct, total, [0.0] * order, bp, sys_len, ref_len, signature)
    default = SMOOTH_DEFAULTS[config.smooth_method]
    value = config.smooth_value if config.smooth_value is not None else (default or 0.0)
    precisions, eff_order = _precisions(correct, total, config, value)
    score = bp * math.exp(sum([_log(p) for p in precisions[:eff_order]]) / eff_order)
    return BleuScore(score, correct, total, precisions, bp, sys_len, ref_len, signature)


def bleu_signature(config: BleuConfig, nrefs: int | str, bootstrap: tuple[int, int] | None = None) -> str:
    """sacreBLEU's signature string for these settings; `bootstrap` is (resamples, seed) when used."""
    smooth: str = config.smooth_method
    default = SMOOTH_DEFAULTS[smooth]
    if default is not None:
        value = config.smooth_value if config.smooth_value is not None else default
        smooth += f"[{value:.2f}]"
    parts = [f"nrefs:{nrefs}"]
    if bootstrap is not None:
        parts += [f"bs:{bootstrap[0]}", f"seed:{bootstrap[1]}"]
    parts += [
        f"case:{'lc' if config.lowercase else 'mixed'}",
        f"eff:{'yes' if config.effective_order else 'no'}",
        f"tok:{config.tokenize}",
        f"smooth:{smooth}",
        f"version:llmlab-{__version__}",
    ]
    return "|".join(parts)


def count_references(references: Sequence[Sequence[str]]) -> int | str:
    """References per item for a signature: the number, or "var" when items differ."""
    counts = {len(r) for r in references}
    return counts.pop() if len(counts) == 1 else "var"


def corpus_bleu(
    predictions: Sequence[str], references: Sequence[Sequence[str]], config: BleuConfig | None = None
) -> BleuScore:
    """Corpus BLEU; `references[i]` is the list of references of `predictions[i]` (any number, at least one).

    Equals `sacrebleu.metrics.BLEU(...).corpus_score(predictions, streams)` where `streams` holds the same
    references transposed (one list per reference set).
    """
    config = config or BleuConfig()
    stats = bleu_statistics(predictions, references, config)
    sums = stats.sum(axis=0).tolist()
    return bleu_from_statistics(sums, config, bleu_signature(config, count_references(references)))


def sentence_bleu(prediction: str, references: Sequence[str], config: BleuConfig | None = None) -> BleuScore:
    """BLEU of one sentence; the default turns on `effective_order`, as sacreBLEU's `sentence_bleu` does."""
    config = config or BleuConfig(effective_order=True)
    return corpus_bleu([prediction], [references], config)
