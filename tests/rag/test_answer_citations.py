"""Citation parsing and validation, "not in the documents" detection, sentence splitting, and sentence
attribution with an embedder whose vectors are known (keyword counts)."""

from __future__ import annotations

import numpy as np
import pytest
from answer_fakes import KeywordEmbedder

from llmlab.rag.citations import (
    NOT_FOUND,
    attribute,
    holds_terms,
    is_not_found,
    key_terms,
    parse_citations,
    passages,
    sources_from,
    split_sentences,
    strip_citations,
    validate_citations,
)
from llmlab.rag.types import Chunk, Hit

EMBED = KeywordEmbedder(tokenizer=None).embed


def hits(*texts: str) -> list[Hit]:
    return [Hit(Chunk(t, f"/d/{i}.md", "markdown", 0), 1.0, i) for i, t in enumerate(texts, start=1)]


def test_parse_and_validate_citations():
    text = "A [1]. B [2, 3]. C [Document 4] and [source 2; 9]. D [12] [1]. Not a citation: x[a] or [ ]."
    cited = parse_citations(text)
    assert [c.number for c in cited] == [1, 2, 3, 4, 2, 9, 12, 1]
    assert text[cited[0].start : cited[0].end] == "[1]"
    assert text[cited[3].start : cited[3].end] == "[Document 4]"
    assert validate_citations(cited, 4) == ([1, 2, 3, 4], [9, 12])
    assert validate_citations(cited, 0) == ([], [1, 2, 3, 4, 9, 12])
    assert strip_citations("Opens at 9 [1]. Closes at 5 [2, 3].") == "Opens at 9. Closes at 5."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NOT_FOUND, True),
        ("I don’t know based on the documents.", True),  # curly apostrophe
        ("i do not know based on the documents", True),
        ("The documents do not contain the answer.", True),
        ("That is not in the documents [1].", True),
        ("", True),
        ("[1]", True),  # nothing but a citation
        ("The answer is: I don't know.", True),
        ("I don't know much, but the garden opens at 9 [1].", False),
        ("The garden opens at 9 am [1].", False),
    ],
)
def test_not_found_detection(text, expected):
    assert is_not_found(text) is expected


def test_split_sentences_joins_hard_wrapped_prose():
    text = "Pages without text\n(scans) give a warning. OCR is\nnot supported.\n\n| a | b |\n| 1 | 2 |\n- one\n  more\n# Title\nBody."
    assert split_sentences(text) == [
        "Pages without text (scans) give a warning.",
        "OCR is not supported.",
        "| a | b |",
        "| 1 | 2 |",
        "one more",
        "# Title",
        "Body.",
    ]


def test_passages_leave_out_headings_and_short_pieces():
    assert passages("# Descaling a kettle\n\nBoil vinegar and water. Rinse.\n- use citric acid") == [
        "Boil vinegar and water.",
        "use citric acid",
    ]
    assert passages("# Only a heading here") == ["# Only a heading here"]  # nothing else: the whole text


def test_split_sentences():
    text = (
        "The store keeps chunks, e.g. text. It uses file.md too! Really?\n- First item\n2. Second item\n```\n"
    )
    assert split_sentences(text) == [
        "The store keeps chunks, e.g. text.",
        "It uses file.md too!",
        "Really?",
        "First item",
        "Second item",
    ]


def test_attribution_picks_the_supporting_chunk():
    """Vectors are keyword counts: the bread sentence matches only the bakery chunk's first sentence, the
    garden sentence only the garden chunk's; the weather sentence has no keyword, so its best cosine is the
    constant axis alone (0.2^2 / (|a||b|) < 0.35) and it is attributed to nothing."""
    context = hits(
        "# Bakery\n\nBread bakes in the oven for 40 minutes. Strong flour works best.",
        "# Garden\n\nThe garden opens at 9 am. Dogs stay on a lead.",
    )
    answer = "The garden opens at 9 [1]. Bread goes in the oven [2]. It is sunny today."
    out = attribute(answer, context, EMBED, min_support=0.35)
    assert [(a.block, a.snippet, a.cited) for a in out] == [
        (2, "The garden opens at 9 am.", [1]),
        (1, "Bread bakes in the oven for 40 minutes.", [2]),
        (None, "", []),
    ]
    oven = EMBED(["Bread goes in the oven"])[0] @ EMBED(["Bread bakes in the oven for 40 minutes."])[0]
    assert out[1].score == pytest.approx(float(oven))
    sources = sources_from(out, context)
    assert [(s.block, s.hit is context[s.block - 1], s.sentences) for s in sources] == [
        (2, True, ["The garden opens at 9 [1]."]),
        (1, True, ["Bread goes in the oven [2]."]),
    ]


def test_citation_breaks_only_near_ties():
    """Two chunks support the sentence equally (both about dogs): the model's citation [2] picks between them.
    When the cited chunk is clearly worse, the better-supported chunk wins despite the citation."""
    tie = hits("Dogs are welcome.", "Dogs are welcome here.")
    assert [a.block for a in attribute("Dogs are welcome [2].", tie, EMBED)] == [2]
    assert [a.block for a in attribute("Dogs are welcome [1].", tie, EMBED)] == [1]
    apart = hits("Dogs are welcome.", "Trains leave from the station.")
    assert [a.block for a in attribute("Dogs are welcome [2].", apart, EMBED)] == [1]


def test_attribution_embeds_once_and_without_citation_markers():
    embedder = KeywordEmbedder(tokenizer=None)
    attribute("Bread [1]. Garden [2].", hits("Bread is baked daily.", "A garden."), embedder.embed)
    assert len(embedder.calls) == 1
    assert embedder.calls[0][:2] == ["Bread.", "Garden."]


def test_attribution_without_sentences_or_hits():
    assert attribute("", hits("Bread."), EMBED) == []
    out = attribute("Bread is good.", [], EMBED)
    assert [(a.block, a.score) for a in out] == [(None, 0.0)]
    assert np.isclose(EMBED(["bread"])[0] @ EMBED(["bread"])[0], 1.0)


def test_a_passage_without_the_sentences_numbers_or_names_does_not_support_it():
    """Keyword vectors make each pair below cosine-close (same keywords), yet the passage lacks the
    sentence's key term: the number 220, the option `top-p`. Such a sentence gets no source, however close;
    a passage that holds the term wins even when it is less close."""
    context = hits(
        "Bread bakes in the oven for 40 minutes.",
        "The `--min-p` option sets how long bread stays in the oven.",
        "Dogs, trains and the top-p option: bread and the oven.",
    )
    out = attribute("The oven bakes bread at 220 degrees.", context, EMBED)
    assert [(a.block, a.snippet) for a in out] == [(None, "")]
    assert out[0].score > 0.35, "close in meaning, so only the missing number keeps it unsupported"
    out = attribute("The `top-p` option sets how long bread stays in the oven [2].", context, EMBED)
    assert [(a.block, a.snippet) for a in out] == [
        (3, "Dogs, trains and the top-p option: bread and the oven.")
    ]
    out = attribute("Bread bakes for 40.0 minutes in the oven.", context, EMBED)
    assert [a.block for a in out] == [1]  # numbers compare by value


@pytest.mark.parametrize(
    ("sentence", "terms"),
    [
        ("The `top-p` option sets the number of tokens.", {"top-p"}),
        ("It reads between 1.5 and 2.0 bar [1].", {"#1.5", "#2"}),
        ("The default max_depth is 2.", {"max-depth", "#2"}),
        ("Use --max-depth with few-shot prompts on 1,000 pages.", {"max-depth", "#1000"}),
        ("Printer error E-204 means a jam.", {"e-204", "#204"}),
        ("A paper jam in the duplex unit at the back.", set()),
    ],
)
def test_key_terms(sentence, terms):
    assert key_terms(sentence) == terms


def test_holds_terms_matches_names_whole_and_numbers_by_value():
    assert holds_terms("| `max_depth` | 2 | clicks from the start page |", {"max-depth", "#2"})
    assert holds_terms("use `--max-depth N`", {"max-depth"})
    assert not holds_terms("use `--max-depth-pages N`", {"max-depth"})
    assert not holds_terms("between 1 and 1.5 bar", {"#1.5", "#2.5"})
    assert not holds_terms("error E-2041", {"#204"})
    # one of the names is enough (a sentence often joins two facts); none is not
    assert holds_terms("set `LLMLAB_CACHE` to use another folder", {"llmlab-cache", "llmlab-home"})
    assert not holds_terms("`--min-p` drops unlikely tokens", {"top-p", "llmlab-home"})
    assert not holds_terms("`--top-p 0.9` keeps 90%", {"top-p", "#0.8"})
