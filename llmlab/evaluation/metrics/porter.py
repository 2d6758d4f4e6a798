"""The Porter stemmer (Porter, 1980, "An algorithm for suffix stripping", Program 14(3):130-137), NLTK variant.

Strips English suffixes in five steps (plurals and -ed/-ing, then -ational, -ness, -ance, ..., then a final -e
and -ll), each rule guarded by the *measure* m of the stem, the number of vowel-consonant runs in [C](VC){m}[V].

This is NLTK's `PorterStemmer()` in its default `NLTK_EXTENSIONS` mode, the stemmer rouge-score uses for
`use_stemmer=True`: Martin Porter's later extensions plus NLTK's (an irregular-forms table, -ies/-ied on
four-letter words, y -> i only after a consonant, -alli handled first, -fulli, -logi). It departs from NLTK in
one way that does not change results: every stem is cached, because a corpus repeats its words. Input is a
lowercase ASCII word, which is all ROUGE's tokenizer produces.

Parity: tests/evaluation/test_porter.py::test_matches_nltk_on_generated_words
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from itertools import pairwise

_VOWELS = frozenset("aeiou")

# NLTK's table of irregular forms: each listed word stems to its key, bypassing the rules.
_IRREGULAR = {
    "sky": ("sky", "skies"),
    "die": ("dying",),
    "lie": ("lying",),
    "tie": ("tying",),
    "news": ("news",),
    "inning": ("innings", "inning"),
    "outing": ("outings", "outing"),
    "canning": ("cannings", "canning"),
    "howe": ("howe",),
    "proceed": ("proceed",),
    "exceed": ("exceed",),
    "succeed": ("succeed",),
}
_POOL = {form: stem for stem, forms in _IRREGULAR.items() for form in forms}

Condition = Callable[[str], bool] | None


def _consonant_flags(word: str) -> list[bool]:
    """True where word[i] is a consonant: not a vowel, and a 'y' only when it starts the word or follows a vowel."""
    flags: list[bool] = []
    for i, ch in enumerate(word):
        if ch in _VOWELS:
            flags.append(False)
        elif ch == "y":
            flags.append(True if i == 0 else not flags[i - 1])
        else:
            flags.append(True)
    return flags


def _measure(stem: str) -> int:
    """m in [C](VC){m}[V]: the number of vowel-to-consonant transitions."""
    flags = _consonant_flags(stem)
    return sum(1 for a, b in pairwise(flags) if not a and b)


def _positive_measure(stem: str) -> bool:
    return _measure(stem) > 0


def _contains_vowel(stem: str) -> bool:
    return not all(_consonant_flags(stem))


def _is_consonant(word: str, i: int) -> bool:
    return _consonant_flags(word)[i]


def _ends_double_consonant(word: str) -> bool:
    """Condition *d: the word ends with a double consonant."""
    return len(word) >= 2 and word[-1] == word[-2] and _is_consonant(word, len(word) - 1)


def _ends_cvc(word: str) -> bool:
    """Condition *o: the stem ends consonant-vowel-consonant, the last not w, x or y (NLTK: or is just vc)."""
    if len(word) >= 3:
        flags = _consonant_flags(word)
        if flags[-3] and not flags[-2] and flags[-1] and word[-1] not in "wxy":
            return True
    return len(word) == 2 and not _is_consonant(word, 0) and _is_consonant(word, 1)


def _apply_rules(word: str, rules: list[tuple[str, str, Condition]]) -> str:
    """Apply the first rule whose suffix matches; if its condition fails, stop without trying the others.

    The pseudo-suffix "*d" matches a word ending in a double consonant and removes both letters.
    """
    for suffix, replacement, condition in rules:
        if suffix == "*d" and _ends_double_consonant(word):
            stem = word[:-2]
            return stem + replacement if condition is None or condition(stem) else word
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if condition is None or condition(stem) else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("ies") and len(word) == 4:
        return word[:-3] + "ie"
    return _apply_rules(word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)])


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        stem = word[:-3]
        return stem + "ee" if _measure(stem) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _contains_vowel(word[: -len(suffix)]):
            stem = word[: -len(suffix)]
            break
    else:
        return word
    last = stem[-1]
    return _apply_rules(
        stem,
        [
            ("at", "ate", None),
            ("bl", "ble", None),
            ("iz", "ize", None),
            ("*d", last, lambda _: last not in "lsz"),
            ("", "e", lambda s: _measure(s) == 1 and _ends_cvc(s)),
        ],
    )


def _step1c(word: str) -> str:
    return _apply_rules(word, [("y", "i", lambda s: len(s) > 1 and _is_consonant(s, len(s) - 1))])


_STEP2_SUFFIXES = (
    ("ational", "ate"),
    ("tional", "tion"),
    ("enci", "ence"),
    ("anci", "ance"),
    ("izer", "ize"),
    ("bli", "ble"),
    ("alli", "al"),
    ("entli", "ent"),
    ("eli", "e"),
    ("ousli", "ous"),
    ("ization", "ize"),
    ("ation", "ate"),
    ("ator", "ate"),
    ("alism", "al"),
    ("iveness", "ive"),
    ("fulness", "ful"),
    ("ousness", "ous"),
    ("aliti", "al"),
    ("iviti", "ive"),
    ("biliti", "ble"),
    ("fulli", "ful"),
)


def _step2(word: str) -> str:
    if word.endswith("alli") and _positive_measure(word[:-4]):
        return _step2(word[:-4] + "al")
    rules: list[tuple[str, str, Condition]] = [(s, r, _positive_measure) for s, r in _STEP2_SUFFIXES]
    # The 'l' of -logi stays with the stem, so that short stems like 'geo' and 'theo' qualify.
    rules.append(("logi", "log", lambda _: _positive_measure(word[:-3])))
    return _apply_rules(word, rules)


_STEP3_SUFFIXES = (
    ("icate", "ic"),
    ("ative", ""),
    ("alize", "al"),
    ("iciti", "ic"),
    ("ical", "ic"),
    ("ful", ""),
    ("ness", ""),
)


def _step3(word: str) -> str:
    return _apply_rules(word, [(s, r, _positive_measure) for s, r in _STEP3_SUFFIXES])


_STEP4_SUFFIXES = ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent")
_STEP4_TAIL = ("ou", "ism", "ate", "iti", "ous", "ive", "ize")


def _measure_gt_1(stem: str) -> bool:
    return _measure(stem) > 1


def _step4(word: str) -> str:
    rules: list[tuple[str, str, Condition]] = [(s, "", _measure_gt_1) for s in _STEP4_SUFFIXES]
    rules.append(("ion", "", lambda s: _measure(s) > 1 and s[-1] in "st"))
    rules.extend((s, "", _measure_gt_1) for s in _STEP4_TAIL)
    return _apply_rules(word, rules)


def _step5a(word: str) -> str:
    # Both rules for a final -e are tried (unlike _apply_rules): (m>1) E -> ; (m=1 and not *o) E -> .
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _ends_cvc(stem)):
            return stem
    return word


def _step5b(word: str) -> str:
    return _apply_rules(word, [("ll", "l", lambda _: _measure(word[:-1]) > 1)])


@lru_cache(maxsize=1 << 18)
def porter_stem(word: str) -> str:
    """The Porter stem of a lowercase ASCII word, e.g. `porter_stem("running") == "run"`.

    Equals `nltk.stem.porter.PorterStemmer().stem(word)` (NLTK_EXTENSIONS mode). Words of one or two
    letters come back unchanged.
    """
    stem = word.lower()
    if stem in _POOL:
        return _POOL[stem]
    if len(word) <= 2:
        return stem
    for step in (_step1a, _step1b, _step1c, _step2, _step3, _step4, _step5a, _step5b):
        stem = step(stem)
    return stem
