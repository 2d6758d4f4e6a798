"""Turn free user text into a safe full-text query: words only, OR-ed, for SQLite FTS5 and PostgreSQL.

User text may contain quotes, parentheses, `AND`/`OR`/`NOT`/`NEAR`, `*`, `^`, `:` or `-`, which are operators
in FTS5 and in tsquery syntax; passed through they raise syntax errors or change the meaning. So the query is
reduced to its words (Unicode `\\w+` runs), common English function words are dropped unless nothing else is
left, and each word is quoted as a literal before the words are OR-ed together. Ranking (BM25 in FTS5,
ts_rank_cd in PostgreSQL) then prefers chunks that match more and rarer words.
Tests: tests/rag/test_retrieval.py::test_fts_query_escaping
"""

from __future__ import annotations

import re

MAX_TERMS = 32

_STOPWORD_TEXT = """a about above after again all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here
    hers him his how i if in into is it its itself just me more most my no nor not now of off on once only or
    other our ours out over own same she should so some such than that the their theirs them then there these
    they this those through to too under until up very was we were what when where which while who whom why
    will with would you your yours"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_WORD = re.compile(r"\w+")


def query_terms(text: str) -> list[str]:
    """Distinct lower-cased words of `text` in order, without stopwords (kept if they are all there is)."""
    words = list(dict.fromkeys(w.lower() for w in _WORD.findall(text)))
    content = [w for w in words if w not in STOPWORDS]
    return (content or words)[:MAX_TERMS]


def fts5_match(terms: list[str]) -> str:
    """An FTS5 MATCH expression: each term a quoted string (so it is never an operator), OR-ed."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def tsquery_text(terms: list[str]) -> str:
    """Input for PostgreSQL `to_tsquery`: each term single-quoted (so it is never an operator), OR-ed."""
    return " | ".join("'" + t.replace("'", "''").replace("\\", "\\\\") + "'" for t in terms)
