"""Extractive answers (llmlab/rag/extractive.py) with a tiny random Llama and the tiny byte-level tokenizer:
whatever the model prefers, the answer is a verbatim span of the block it cites, it starts and ends at word
boundaries, stops only where a span may end, and NOT_FOUND is allowed only whole."""

from __future__ import annotations

import pytest
from answer_fakes import FakeEngine, KeywordEmbedder, write_docs
from ragkit import tiny_bert_tokenizer

from llmlab.errors import ConfigError
from llmlab.generation import Engine
from llmlab.prompting.grounded import EXTRACTIVE_RULES, NOT_FOUND, RULES
from llmlab.rag.answer import AnswerConfig, Answerer, answer_generation
from llmlab.rag.extractive import make_block, span_constraint
from llmlab.rag.grounded_answer import build_prompt
from llmlab.rag.store import Store
from llmlab.rag.stores import open_store
from llmlab.rag.types import Chunk, Hit

DOCS = {
    "paris.md": "# Capitals\n\nThe capital of France is Paris. The capital of Italy is Rome, since 1871.\n",
    "tokens.md": "# Decoding\n\nGreedy decoding picks the most likely token. Héllo wörld, 12,000 tokens 🙂 later.\n",
    "code.md": "# Code\n\ndef add(a, b):\n    return a + b\n\nQuestion: what is two plus two? Answer: four.\n",
}


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    folder = write_docs(tmp_path_factory.mktemp("kb") / "docs", DOCS)
    store = Store(open_store(str(folder.parent / "kb.sqlite")), KeywordEmbedder(tiny_bert_tokenizer()))
    assert len(store.ingest([folder]).added) == 3
    yield store
    store.close()


@pytest.fixture(scope="module")
def engine(tiny_tok):
    from tiny import tiny_llama

    # a context window that holds the grounded prompt (the rules alone are ~300 tiny-tokenizer tokens)
    return Engine(tiny_llama(len(tiny_tok), max_position_embeddings=4096), tiny_tok)


def hits_for(store: Store) -> list[Hit]:
    return store.search("capital decoding code", mode="bm25", top_k=3)


def joins_a_word(text: str, at: int) -> bool:
    return 0 < at < len(text) and text[at - 1].isalnum() and text[at].isalnum()


@pytest.mark.parametrize("seed", range(8))
def test_every_answer_is_a_verbatim_span_of_the_block_it_cites(kb, engine, seed):
    """Sampled at temperature 1.5, a random model goes anywhere the mask lets it: the answer must still be a
    substring of its cited chunk, cut at word boundaries, with the citation and source naming that chunk."""
    generation = answer_generation(greedy=False, temperature=1.5, top_p=1.0, seed=seed, max_new_tokens=24)
    config = AnswerConfig(answer_style="extractive", prompt="zero-shot")
    answer = Answerer(kb, engine, config, generation).stream("Where?", hits=hits_for(kb)).result()
    if answer.not_found:
        assert answer.text == NOT_FOUND and answer.sources == [] and answer.citations == []
        return
    (block,) = answer.citations
    chunk = answer.hits[block - 1].chunk.text
    assert answer.text and answer.text in chunk
    assert [s.block for s in answer.sources] == [block] and answer.sources[0].hit is answer.hits[block - 1]
    assert answer.text in answer.sources[0].snippet and answer.attributions[0].block == block
    at = chunk.index(answer.text)
    assert not joins_a_word(chunk, at) and not joins_a_word(chunk, at + len(answer.text))
    assert any(c.isalnum() for c in answer.text)
    assert answer.text.count(". ") == 0  # at most one sentence: a span never runs past a sentence's end


def test_greedy_extractive_answers_are_deterministic_and_streamed(kb, engine):
    config = AnswerConfig(answer_style="extractive", prompt="zero-shot")
    answerer = Answerer(kb, engine, config, answer_generation(max_new_tokens=16))
    stream = answerer.stream("What is the capital of France?", hits=hits_for(kb))
    pieces = list(stream)
    answer = stream.result()
    assert "".join(pieces).strip() == answer.text  # what the CLI streams is the answer
    again = answerer.stream("What is the capital of France?", hits=hits_for(kb)).result()
    assert again.text == answer.text and again.citations == answer.citations


def test_word_boundaries_and_sentence_ends(tiny_tok):
    """ "Paris" is split by the tiny tokenizer ("Par" + "is"): no span may end or start between them; a span
    may end before "," and after "."; "." followed by a space ends the sentence, so nothing may follow it."""
    text = "The capital of France is Paris. Héllo wörld, 12,000 tokens."
    block = make_block(tiny_tok, text)
    assert block.text == text and len(block.offsets) == len(block.ids) + 1
    for p, ok in enumerate(block.ends):
        cut = block.offsets[p]
        if ok:
            assert not joins_a_word(text, cut), (p, text[:cut])
        if p < len(block.ids) and block.starts[p]:
            assert not joins_a_word(text, cut) and not text[cut:].startswith(" " * (cut > 0) + " ")
    cuts = {block.offsets[p] for p, ok in enumerate(block.ends) if ok}
    assert {text.index("Paris") + 5, text.index(","), text.index(" 12"), len(text)} <= cuts
    assert text.index("Paris") + 3 not in cuts and text.index("wörld") + 2 not in cuts  # in a word or a char
    closes = [block.offsets[p] for p, c in enumerate(block.closes) if c]
    assert closes == [text.index(". ") + 1]


def test_stop_only_where_a_span_may_end(tiny_tok):
    text = "The capital of France is Paris. The capital of Italy is Rome."
    eos = tiny_tok.eos_token_id
    hook = span_constraint(tiny_tok, [text], len(tiny_tok), {eos}, [NOT_FOUND])
    ids = make_block(tiny_tok, text).ids
    paris = len(tiny_tok(text[: text.index("Paris") + 5], add_special_tokens=False)["input_ids"])
    assert tiny_tok.decode(ids[:paris]).endswith("Paris")
    assert not hook(0, [])[eos]  # an empty answer is not an answer
    mid_word = hook(0, ids[: paris - 1])  # "... is Par"
    assert not mid_word[eos] and mid_word.sum() == 1 and mid_word[ids[paris - 1]]
    after_paris = hook(0, ids[:paris])
    assert after_paris[eos] and after_paris[ids[paris]]  # end here, or go on with "."
    after_stop = hook(0, ids[: paris + 1])  # "... Paris." then a space: the sentence is over
    assert after_stop.nonzero().flatten().tolist() == [eos]
    start_of_rome = hook(0, [])
    assert start_of_rome[ids[0]] and start_of_rome.sum() > 5
    not_found = make_block(tiny_tok, NOT_FOUND).ids
    assert not hook(0, not_found[:2])[eos] and hook(0, not_found)[eos]  # NOT_FOUND only whole
    span = hook.span([*ids[:paris], eos])
    assert span is not None and span.block == 0 and span.text == "The capital of France is Paris"


def test_a_span_inside_the_block_may_open_with_its_no_space_token(tiny_tok):
    """Inside the block "of" is " of"; a reply opens without the space, so that token may start a span too,
    and the span's text is still the block's own."""
    text = "The capital of France is Paris."
    eos = tiny_tok.eos_token_id
    hook = span_constraint(tiny_tok, [text], len(tiny_tok), {eos})
    (bare,) = tiny_tok("of", add_special_tokens=False)["input_ids"]
    (spaced,) = tiny_tok(" of", add_special_tokens=False)["input_ids"]
    assert bare != spaced and hook(0, [])[bare] and hook(0, [])[spaced]
    france = tiny_tok(" France", add_special_tokens=False)["input_ids"]
    span = hook.span([bare, *france, eos])
    assert span is not None and span.text == " of France" and span.block == 0


def test_a_stop_string_inside_the_span_cuts_the_answer(kb, engine):
    """code.md's chunk has a blank line: the stream stops at "\\n\\n" (a stop string), and so does the answer."""
    config = AnswerConfig(answer_style="extractive", prompt="zero-shot")
    hits = [h for h in kb.search("def add return", mode="bm25", top_k=3) if "def add" in h.chunk.text]
    for seed in range(6):
        generation = answer_generation(greedy=False, temperature=1.5, top_p=1.0, seed=seed, max_new_tokens=24)
        answer = Answerer(kb, engine, config, generation).stream("Code?", hits=hits).result()
        assert "\n\n" not in answer.text and (answer.not_found or answer.text in hits[0].chunk.text)


def test_extractive_prompt_asks_for_a_copied_phrase(tiny_tok):
    hits = [Hit(Chunk("The garden opens at 9 am.", "/d/a.md", "markdown", 0), score=1.0, rank=1)]
    extractive = build_prompt("When?", hits, tiny_tok, 10_000, "few-shot", "extractive")
    free = build_prompt("When?", hits, tiny_tok, 10_000, "few-shot")
    assert EXTRACTIVE_RULES in extractive.text and RULES not in extractive.text
    assert RULES in free.text and EXTRACTIVE_RULES not in free.text
    assert "<|im_start|>assistant\n30<|im_end|>" in extractive.text  # the worked example is a verbatim quote


def test_answer_style_is_validated_and_needs_a_real_engine(kb, tiny_tok):
    with pytest.raises(
        ConfigError, match="--answer-style must be one of free, extractive, reader, auto, got 'quote'"
    ):
        AnswerConfig(answer_style="quote")
    fake = FakeEngine(tiny_tok, ["The garden opens at 9 am [1]."])
    with pytest.raises(ConfigError, match="needs llmlab's decoding engine"):
        Answerer(kb, fake, AnswerConfig(answer_style="extractive")).answer("When does the garden open?")
    free = Answerer(kb, fake, AnswerConfig(answer_style="auto")).answer("When does the garden open?")
    assert free.text == "The garden opens at 9 am [1]."  # auto without a model to size: free


def test_auto_is_the_span_reader_for_a_small_model(kb, engine):
    answerer = Answerer(kb, engine, AnswerConfig(answer_style="auto"))
    assert answerer.style == "reader"
    assert Answerer(kb, None, AnswerConfig(answer_style="auto")).style == "reader"  # no generator at all


def test_likelihood_choice_is_the_best_scoring_candidate(tiny_tok, engine):
    """The span chosen with the prompt's KV cache copied to a batch of candidates is the one whose
    log p(span, EOS | prompt), recomputed here from scratch for every candidate end, is highest."""
    import torch

    from llmlab.rag.span_scoring import candidates, choose_span

    model, eos = engine.model, tiny_tok.eos_token_id
    texts = [
        "The capital of France is Paris. The capital of Italy is Rome.",
        "Greedy decoding picks a token.",
    ]
    hook = span_constraint(tiny_tok, texts, engine.backend.vocab_size, {eos}, [NOT_FOUND])
    prompt = engine.encode("Question: what is the capital of Italy? Answer:")
    chosen = choose_span(model, prompt, hook, starts=4, max_tokens=8)

    def score(ids: list[int]) -> float:
        with torch.no_grad():
            logps = torch.log_softmax(model(input_ids=torch.tensor([prompt + ids])).logits[0].float(), -1)
        tokens = sum(float(logps[len(prompt) - 1 + j, t]) for j, t in enumerate(ids))
        return tokens + float(logps[len(prompt) + len(ids) - 1, eos])

    with torch.no_grad():
        first = torch.log_softmax(model(input_ids=torch.tensor([prompt])).logits[0, -1].float(), -1)
    found = candidates(hook, first, 4, 8)
    assert len(found) == 4 and not any(hook.is_whole(ids) for _, ids in found)
    spans = [ids[: j + 1] for _, ids in found for j in range(len(ids)) if hook.may_stop(ids[: j + 1])]
    best = max(spans, key=score)
    assert chosen == [*best, eos]
    span = hook.span(chosen)
    assert span is not None and span.text.strip() in texts[span.block]


def test_likelihood_answers_are_quotes_of_their_block(kb, engine):
    config = AnswerConfig(answer_style="extractive", span_choice="likelihood", prompt="zero-shot")
    stream = Answerer(kb, engine, config).stream("What is the capital of Italy?", hits=hits_for(kb))
    pieces = list(stream)
    answer = stream.result()
    (block,) = answer.citations
    assert answer.text and answer.text in answer.hits[block - 1].chunk.text
    assert "".join(pieces).strip() == answer.text
    with pytest.raises(ConfigError, match="--span-choice must be one of greedy, likelihood, got 'beam'"):
        AnswerConfig(span_choice="beam")
