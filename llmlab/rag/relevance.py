"""The relevance gate: is a question about the store's documents at all?

An off-topic question ("Who won the 1998 World Cup?" asked of a store of manuals) gets "I don't know based on the
documents." without asking the model, which would otherwise answer from a passage that does not hold the
answer. Two features of the retrieved hits decide:

- `cosine`: the best dense (cosine) similarity of a hit to the query, as the store's embedder scores it;
- `coverage`: the share of the question's content words (stop words dropped, words compared by their first
  five letters so "printer" meets "prints") that occur in the hits' texts.

P(on topic) = sigmoid(b + w_cos * cosine + w_cov * coverage), and the gate refuses below THRESHOLD. One
feature alone is not enough: on the guide, on-topic questions scored cosines as low as 0.25 and off-topic ones
as high as 0.54; word coverage separates those, and cosine the paraphrases that share few words.

The weights and the threshold were fitted by `bench/relevance_fit.py` on FairytaleQA's train split only
(stores of ten stories each; on-topic: their questions, off-topic: questions about other stories, which
share the genre's words, so it is the hard case), the threshold chosen there so that 99.5% of the on-topic
training questions pass (a first fit at 98% stopped 9% of SQuAD's on-topic questions: the gate must not cost
answers). The cosine is MiniLM-L6's (the packaged embedder), so `gate_applies` is true only
for stores built with it; with another embedder the fitted gate is off and `min_relevance` (a plain cosine
threshold) is what remains. The measured effect on public data not used in the fit is in docs/rag.md.
Tests: tests/rag/test_relevance.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from llmlab.rag.stores.text_query import STOPWORDS

FITTED = {"intercept": -12.514, "cosine": 15.483, "coverage": 6.67}
"""The gate's logistic-regression weights (bench/relevance_fit.py prints them)."""
THRESHOLD = 0.065
"""P(on topic) below this: refuse without generating (chosen on the training questions, see above)."""
FITTED_EMBEDDERS = ("minilm-l6",)
"""Embedders whose cosines the weights were fitted on."""
PREFIX = 5
_WORD = re.compile(r"\w+")


def content_words(text: str) -> set[str]:
    """The distinct content words of `text`, lower case, cut to their first PREFIX letters."""
    return {w[:PREFIX] for w in (m.lower() for m in _WORD.findall(text)) if w not in STOPWORDS}


def relevance_features(question: str, hits: Sequence[Any]) -> dict[str, float] | None:
    """{"cosine", "coverage"} of `hits` (Hit objects, best first) for `question`; None when there are no hits
    or none was scored by the dense search."""
    cosines = [h.scores["dense"] for h in hits if "dense" in h.scores]
    if not cosines:
        return None
    asked = content_words(question)
    found = set().union(*(content_words(h.chunk.text) for h in hits))
    coverage = len(asked & found) / len(asked) if asked else 1.0
    return {"cosine": float(max(cosines)), "coverage": coverage}


def on_topic_probability(features: dict[str, float], weights: dict[str, float] | None = None) -> float:
    """P(on topic) of the features under the logistic model `weights` (default: FITTED)."""
    w = FITTED if weights is None else weights
    z = w["intercept"] + w["cosine"] * features["cosine"] + w["coverage"] * features["coverage"]
    return 1.0 / (1.0 + math.exp(-z))


def gate_applies(embedder_name: str | None) -> bool:
    """Whether the fitted gate is valid for a store built with this embedder (see the module docstring)."""
    return embedder_name in FITTED_EMBEDDERS
