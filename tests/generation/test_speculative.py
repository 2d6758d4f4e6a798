"""Prompt-lookup decoding (llmlab/generation/speculative.py): hand-derived drafts, and greedy output that is
token-identical with and without it on tiny random models (fused fp32 and transformers' forward; one row,
batches, rows joining a running batch, stop strings, budgets, log-probs), when it is on by default, and
SmolLM2 on RAG-style prompts over the guide (slow)."""

from __future__ import annotations

import pytest

from llmlab.generation import Engine, GenerationConfig
from llmlab.generation.speculative import PromptLookup
from llmlab.models.int8 import int8_supported

PROMPTS = [
    "The capital of France is Paris. The capital of France is",
    "Hello",
    "def add(a, b):\n    return a + b\ndef add(a, b):",
    "Question: what is two plus two? Answer: four. Question: what is two plus",
    "Language models predict the next token. Greedy decoding picks the most likely",
    "<|im_start|>user\nRepeat: the cat sat on the mat<|im_end|>\n<|im_start|>assistant\n",
]
PRECISIONS = [
    "fp32",
    "hf",
]


def greedy(lookup: bool | None, **overrides) -> GenerationConfig:
    return GenerationConfig(
        **{"greedy": True, "max_new_tokens": 40, "ignore_eos": True, "prompt_lookup": lookup, **overrides}
    )


def test_draft_copies_what_followed_the_longest_match() -> None:
    """[5 6 7 8 1 5 6 7]: the last token 7 occurred at position 2, preceded by 5 6 as now: a 3-token match,
    so three tokens are drafted, those after position 2: 8 1 5."""
    assert PromptLookup([5, 6, 7, 8, 1, 5, 6, 7]).draft() == [8, 1, 5]
    assert PromptLookup([5, 6, 7, 8, 1, 5, 6, 7]).draft(limit=2) == [8, 1]


def test_draft_prefers_longer_matches_then_the_latest() -> None:
    """[3 2 9 0 2 8 3 2]: 2 occurred at 1 (preceded by 3, as now: length 2) and at 4 (preceded by 0: length 1),
    so position 1 wins and two tokens follow: 9 0. [1 2 9 3 2 8 4 2]: both earlier 2s match one token; the
    later one (4) wins: 8."""
    assert PromptLookup([3, 2, 9, 0, 2, 8, 3, 2]).match() == (1, 2)
    assert PromptLookup([3, 2, 9, 0, 2, 8, 3, 2]).draft() == [9, 0]
    assert PromptLookup([1, 2, 9, 3, 2, 8, 4, 2]).draft() == [8]


def test_draft_is_empty_without_an_earlier_occurrence_and_extends_incrementally() -> None:
    assert PromptLookup([1, 2, 3]).draft() == []
    assert PromptLookup([]).draft() == []
    lookup = PromptLookup([4, 5, 6], num_tokens=2)
    lookup.extend([4, 5])
    assert lookup.match() == (1, 2) and lookup.draft() == [6, 4]  # 4 5 matched: the 2 tokens after it
    lookup.extend([6, 4])
    assert lookup.match() == (3, 2) and lookup.draft() == [5, 6]  # the latest 4 with 6 before it, like now
    assert lookup.ids == [4, 5, 6, 4, 5, 6, 4]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_greedy_identical_with_and_without_prompt_lookup(tiny_model, tiny_tok, precision: str) -> None:
    """Each prompt alone: the same tokens and text; the drafts were used (else the test proves nothing)."""
    engine = Engine(tiny_model, tiny_tok, precision=precision)
    accepted = 0
    for prompt in PROMPTS:
        plain = engine.generate([prompt], greedy(False))[0]
        batcher = engine.batcher(1)
        row = batcher.add(prompt, greedy(True))
        list(batcher.run())
        fast = row.completion()
        assert (fast.token_ids, fast.text, fast.finish_reason) == (
            plain.token_ids,
            plain.text,
            plain.finish_reason,
        )
        accepted += batcher.speculation.accepted
    assert accepted >= 10


@pytest.mark.parametrize("precision", PRECISIONS)
def test_batches_identical_with_and_without_prompt_lookup(tiny_model, tiny_tok, precision: str) -> None:
    """A batch of all prompts (rows finish at different steps: stop strings, budgets), and the same prompts
    joining a running batch two steps apart."""
    engine = Engine(tiny_model, tiny_tok, precision=precision)
    configs = [
        greedy(True, max_new_tokens=8 + 5 * i, stop=["is"] if i == 1 else []) for i in range(len(PROMPTS))
    ]
    plain = engine.generate(PROMPTS, greedy(False))
    batcher = engine.batcher(len(PROMPTS))
    batcher.speculate_rows = len(PROMPTS)  # batches speculate only when asked (batcher.SPECULATE_ROWS)
    fast = [batcher.add(p, greedy(True)) for p in PROMPTS]
    list(batcher.run())
    assert [r.ids for r in fast] == [c.token_ids for c in plain]
    assert batcher.speculation.passes > 0
    batcher, rows = engine.batcher(4), []
    batcher.speculate_rows = 4
    for step in range(2 * len(PROMPTS)):
        if step % 2 == 0:
            rows.append(batcher.add(PROMPTS[step // 2], configs[step // 2]))
        batcher.step()
    list(batcher.run())
    for row, prompt, config in zip(rows, PROMPTS, configs, strict=True):
        alone = engine.generate([prompt], GenerationConfig(**{**config.__dict__, "prompt_lookup": False}))[0]
        assert (row.ids, row.text) == (alone.token_ids, alone.text)
    assert batcher.speculation.passes > 0


def test_logprobs_and_eos_unchanged(tiny_model, tiny_tok) -> None:
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    for prompt in PROMPTS[:3]:
        a = engine.generate([prompt], greedy(False, logprobs=True, ignore_eos=False))[0]
        b = engine.generate([prompt], greedy(True, logprobs=True, ignore_eos=False))[0]
        assert a.token_ids == b.token_ids
        assert b.logprobs == pytest.approx(a.logprobs, abs=1e-4)


@pytest.mark.skipif(not int8_supported(), reason="fbgemm int8 with VNNI not available")
def test_prompt_lookup_default_only_where_exact(tiny_model, tiny_tok) -> None:
    """Unset, prompt lookup runs on fp32 weights (verify passes equal steps to float rounding) and not on int8
    (a rounding difference can move an activation across a quantization step); True forces it there."""
    for precision, default_passes in (("fp32", True), ("int8", False)):
        engine = Engine(tiny_model, tiny_tok, precision=precision)
        for setting, expected in ((None, default_passes), (True, True), (False, False)):
            batcher = engine.batcher(1)
            batcher.add(PROMPTS[0], greedy(setting))
            list(batcher.run())
            assert (batcher.speculation.passes > 0) == expected, (precision, setting)


def test_sampled_rows_and_penalties_do_not_speculate(tiny_model, tiny_tok) -> None:
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    for config in (
        GenerationConfig(temperature=0.8, seed=1, max_new_tokens=20, ignore_eos=True),
        greedy(True, repetition_penalty=1.3),
        greedy(False),
    ):
        batcher = engine.batcher(1)
        batcher.add(PROMPTS[0], config)
        list(batcher.run())
        assert batcher.speculation.passes == 0


@pytest.mark.slow
def test_smollm2_rag_answers_identical_with_and_without(smollm) -> None:
    """SmolLM2 fp32 answering from passages of the guide: the same tokens with prompt lookup (on by default
    for fp32) as without, and the drafts were used."""
    from pathlib import Path

    from llmlab.prompting import render_chat

    docs = Path(__file__).resolve().parents[2] / "docs"
    engine = Engine(smollm.model, smollm.tokenizer, precision="fp32")
    questions = {
        "generation.md": "Which flag makes decoding deterministic, and what does it do?",
        "rag.md": "How does llmlab ask answer a question? Quote the guide.",
        "models.md": "What happens the first time a GGUF model is loaded?",
    }
    accepted = 0
    for page, question in questions.items():
        context = (docs / page).read_text()[:2500]
        prompt = render_chat(
            smollm.tokenizer,
            [{"role": "user", "content": f"Answer from this passage.\n\n{context}\n\nQuestion: {question}"}],
        )
        plain = engine.generate([prompt], greedy(False, max_new_tokens=48))[0]
        batcher = engine.batcher(1)
        row = batcher.add(prompt, greedy(None, max_new_tokens=48))
        list(batcher.run())
        assert row.ids == plain.token_ids, page
        accepted += batcher.speculation.accepted
    assert accepted >= 10
