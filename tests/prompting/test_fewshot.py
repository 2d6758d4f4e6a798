"""Few-shot builders: exact layouts (chat and plain), budget drops examples not the query, shots files."""

from __future__ import annotations

import pytest

from llmlab.errors import ConfigError, DataError
from llmlab.prompting import Example, FewShotPrompt, PromptTemplate, load_examples, render, render_chat

EXAMPLES = [Example("I loved the pasta.", "positive"), Example("Cold soup, rude waiter.", "negative")]
PROMPT = FewShotPrompt(
    query="The dessert was wonderful.", instruction="Classify the sentiment.", examples=EXAMPLES
)


def test_plain_text_layout_for_base_models() -> None:
    assert PROMPT.plain_text() == (
        "Classify the sentiment.\n\n"
        "Input: I loved the pasta.\nOutput: positive\n\n"
        "Input: Cold soup, rude waiter.\nOutput: negative\n\n"
        "Input: The dessert was wonderful.\nOutput:"
    )
    assert PROMPT.plain_text(0) == "Classify the sentiment.\n\nInput: The dessert was wonderful.\nOutput:"


def test_chat_layout_uses_the_tokenizer_template(tiny_tok) -> None:
    one_shot = render(FewShotPrompt(PROMPT.query, PROMPT.instruction, EXAMPLES[:1]), tiny_tok)
    assert one_shot.text == (
        "<|im_start|>user\nClassify the sentiment.\n\nI loved the pasta.<|im_end|>\n"
        "<|im_start|>assistant\npositive<|im_end|>\n"
        "<|im_start|>user\nThe dessert was wonderful.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert one_shot.shots == 1 and one_shot.dropped == 0


def test_budget_drops_examples_from_the_end_never_the_query(tiny_tok) -> None:
    full = render(PROMPT, tiny_tok)
    zero = render(FewShotPrompt(PROMPT.query, PROMPT.instruction), tiny_tok)
    cut = render(PROMPT, tiny_tok, max_tokens=full.tokens - 1)
    assert cut.shots == 1 and cut.dropped == 1
    assert "I loved the pasta." in cut.text and "Cold soup" not in cut.text
    assert PROMPT.query in cut.text
    only_query = render(PROMPT, tiny_tok, max_tokens=zero.tokens)
    assert only_query.shots == 0 and only_query.dropped == 2 and only_query.text == zero.text
    with pytest.raises(ConfigError, match=rf"alone are {zero.tokens} tokens, more than the budget of 5"):
        render(PROMPT, tiny_tok, max_tokens=5)


def test_tokenizer_without_template_gets_a_transcript(tiny_tok) -> None:
    import copy

    base = copy.deepcopy(tiny_tok)
    base.chat_template = None
    assert render_chat(base, [{"role": "user", "content": "Hi"}]) == "User: Hi\nAssistant:"
    assert render(PROMPT, base).text == PROMPT.plain_text()


def test_shots_file_reading_and_errors(tmp_path) -> None:
    good = tmp_path / "shots.jsonl"
    good.write_text('{"input": "a", "output": "b"}\n\n{"input": "c", "output": "d"}\n')
    assert load_examples(good) == [Example("a", "b"), Example("c", "d")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input": "a", "output": "b"}\n{"input": "c"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: example is missing 'output'"):
        load_examples(bad)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"input": "a", "output": "b"}\n{"input": "c", \n')
    with pytest.raises(DataError, match=r"broken.jsonl:2: invalid JSON"):
        load_examples(broken)


def test_template_variables_missing_and_unused(tmp_path) -> None:
    path = tmp_path / "summarize.yaml"
    path.write_text("name: summarize\ntemplate: |\n  Summarize {text} in {n} words. Use {{braces}}.\n")
    template = PromptTemplate.from_yaml(path)
    assert template.variables == ["text", "n"]
    assert template.render(text="the report", n=10) == "Summarize the report in 10 words. Use {braces}.\n"
    with pytest.raises(ConfigError, match="needs variable\\(s\\) n"):
        template.render(text="x")
    with pytest.raises(ConfigError, match="does not use variable\\(s\\) tone; its variables are text, n"):
        template.render(text="x", n=3, tone="formal")
    (tmp_path / "bad.yaml").write_text("template: [unclosed\n")
    with pytest.raises(DataError, match=r"bad.yaml:\d+: invalid YAML"):
        PromptTemplate.from_yaml(tmp_path / "bad.yaml")
