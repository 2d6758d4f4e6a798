"""Hypothesis strategies for realistic and adversarial texts, shared by the metric parity tests."""

from __future__ import annotations

from hypothesis import strategies as st

WORDS = [
    "the", "The", "a", "cat", "cats", "sat", "on", "mat", "running", "runs", "ran", "happiness", "happily",
    "generalization", "caresses", "ponies", "agreed", "oscillators", "Paris", "capital", "France", "is", "of",
    "über", "naïve", "café", "中文", "日本語", "İstanbul", "ǅemal", "Straße", "K", "42", "3.5", "1,000", "2024",
    "e.g.", "U.S.", "it's", "don't", "well-known", "9-1", "(AP)", '"quoted"', "&amp;", "&quot;", "&lt;x&gt;",
    "--", "!!!", "...", "?", ",", ".", "$5", "45%", "a/b", "<skipped>", "🙂", "\u200b", "ΣΊΣΥΦΟΣ",
]  # fmt: skip
SEPARATORS = [" ", " ", " ", "  ", "", "\n", "\n\n", "\t", ", ", ". ", " - ", "-\n", "\r\n", "\u00a0"]

fragment = st.one_of(st.sampled_from(WORDS), st.sampled_from(WORDS), st.text(max_size=5))
text = st.lists(st.tuples(fragment, st.sampled_from(SEPARATORS)), max_size=30).map(
    lambda parts: "".join(word + sep for word, sep in parts)
)
"""Texts of up to 30 words: real words, punctuation, numbers, non-ASCII, newlines, arbitrary Unicode."""

references = st.lists(text, min_size=1, max_size=3)
