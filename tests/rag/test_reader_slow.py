"""The packaged span reader (slow tier): over a small store of notes (MiniLM), `--answer-style reader` quotes
a span of the right note and cites it, loads no generator, and refuses a question the notes cannot answer.
Assertions are the stable parts only (words in the answer, the cited file), so they hold on any CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmlab.rag.answer import AnswerConfig, ask
from llmlab.rag.store import Store

pytestmark = pytest.mark.slow

NOTES = {
    "boiler.md": "# Boiler\n\nThe boiler pressure should read between 1 and 1.5 bar when the heating is cold. "
    "If it drops below 1 bar, top it up with the filling loop under the boiler.\n",
    "garden.md": "# Garden\n\nThe tomatoes are watered every evening in summer. The compost bin is emptied "
    "in April, when the soil is warm enough to dig.\n",
    "car.md": "# Car\n\nThe car's tyre pressure is 2.2 bar at the front and 2.4 bar at the back. The next "
    "service is due in March at the garage on Mill Road.\n",
}


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    root = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (root / name).write_text(text, encoding="utf-8")
    store = Store.open(str(root / "notes.sqlite"))
    store.ingest([root])
    yield store
    store.close()


def test_packaged_reader_quotes_and_cites_the_right_note(notes):
    config = AnswerConfig(answer_style="reader", relevance_gate="off")
    answer = ask("When is the car's next service due?", notes, config=config)
    assert not answer.not_found and "march" in answer.text.lower()
    cited = answer.hits[answer.citations[0] - 1].chunk
    assert Path(cited.source).name == "car.md" and answer.text in cited.text
    answer = ask("Where is the garage?", notes, config=config)
    assert "mill road" in answer.text.lower()


def test_packaged_reader_refuses_what_the_notes_do_not_say(notes):
    config = AnswerConfig(answer_style="reader", relevance_gate="off")
    answer = ask("Who won the football world cup in 1998?", notes, config=config)
    assert answer.not_found and answer.citations == []
