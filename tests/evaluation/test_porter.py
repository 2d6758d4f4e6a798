"""The Porter stemmer equals NLTK's PorterStemmer (NLTK_EXTENSIONS mode), which rouge-score uses."""

from __future__ import annotations

import string

from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer  # the reference: a missing one fails the run, never skips

from llmlab.evaluation.metrics.porter import porter_stem

NLTK = PorterStemmer()

SUFFIXES = [
    "ational", "tional", "enci", "anci", "izer", "bli", "alli", "entli", "eli", "ousli", "ization", "ation",
    "ator", "alism", "iveness", "fulness", "ousness", "aliti", "iviti", "biliti", "fulli", "logi", "icate",
    "ative", "alize", "iciti", "ical", "ful", "ness", "al", "ance", "ence", "er", "ic", "able", "ible", "ant",
    "ement", "ment", "ent", "sion", "tion", "ou", "ism", "ate", "iti", "ous", "ive", "ize", "e", "ll", "ies",
    "ied", "eed", "ed", "ing", "y", "sses", "ss", "s", "ly", "yy",
]  # fmt: skip
stem_part = st.text(alphabet="aeiouybcdlmnrstgzxw", min_size=1, max_size=8)
word = st.one_of(
    st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=15),
    st.builds(
        lambda s, a, b: s + a + b, stem_part, st.sampled_from(SUFFIXES), st.sampled_from(["", *SUFFIXES])
    ),
)

_ENGLISH_TEXT = (
    "caresses ponies ties caress cats feed agreed plastered bled motoring sing conflated "
    "troubled sized hopping tanned falling hissing fizzed failing filing happy sky relational "
    "conditional rational valenci hesitanci digitizer conformabli radicalli differentli vileli analogousli vietnamization predication "
    "operator feudalism decisiveness hopefulness callousness formaliti sensitiviti sensibiliti triplicate formative formalize electriciti "
    "electrical hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible irritant replacement "
    "adjustment dependent adoption homologou communism activate angulariti homologous effective bowdlerize probate rate "
    "cease controll roll dying lying tying news innings outings cannings howe proceed "
    "exceed succeed generously skies spied died flies archaeology geology"
)
ENGLISH = _ENGLISH_TEXT.split()


@settings(max_examples=400, deadline=None)
@given(word)
def test_matches_nltk_on_generated_words(w: str) -> None:
    assert porter_stem(w) == NLTK.stem(w)


def test_matches_nltk_on_english_words() -> None:
    assert [porter_stem(w) for w in ENGLISH] == [NLTK.stem(w) for w in ENGLISH]


def test_known_stems() -> None:
    """Porter's own examples (1980 paper) plus NLTK's irregular forms."""
    cases = {"caresses": "caress", "ponies": "poni", "relational": "relat", "hopping": "hop", "sky": "sky",
             "dying": "die", "generalization": "gener", "running": "run", "ran": "ran"}  # fmt: skip
    assert {w: porter_stem(w) for w in cases} == cases
