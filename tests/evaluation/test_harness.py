"""The evaluation harness with a scripted engine: prompts, few-shot choice, batching, post-processing, scores."""

from __future__ import annotations

import json

import pytest
from harness_fakes import ScriptedEngine, write_jsonl

from llmlab.errors import ConfigError, DataError
from llmlab.evaluation.harness import EvalRun, RunInfo, evaluate
from llmlab.evaluation.task import Task, first_label, first_line, load_task, read_items
from llmlab.generation import GenerationConfig

GREEDY = GenerationConfig(greedy=True, max_new_tokens=16)


def test_first_label_takes_the_earliest_whole_word_case_insensitively() -> None:
    labels = ["positive", "negative", "very positive"]
    assert first_label("I'd say POSITIVE.", labels) == "positive"
    assert first_label("Negative, not positive", labels) == "negative"
    assert first_label("positively glowing", labels) == ""  # not a whole word
    assert first_label("Very positive!", labels) == "very positive"  # both start at 0: the longer wins
    assert first_label("no idea", labels) == ""


def test_first_line_skips_blank_lines() -> None:
    assert first_line("\n\n  Paris  \nThe capital of France.", []) == "Paris"
    assert first_line("  \n", []) == ""


SUMMARIES = [
    {"input": "A long story about a cat.", "reference": "the cat sat on the mat"},
    {"input": "A long story about a dog.", "reference": "the dog ran"},
]


def test_summarize_rouge_by_hand(tmp_path, tiny_tok) -> None:
    """Item 1: "the cat sat" vs "the cat sat on the mat": ROUGE-1 P = 3/3, R = 3/6, F = 2/3; ROUGE-2: 2 of 2
    output bigrams in 5 reference bigrams, F = 2 * 1 * 0.4 / 1.4 = 4/7.
    Item 2: "a dog" vs "the dog ran": ROUGE-1 P = 1/2, R = 1/3, F = 0.4; ROUGE-2 F = 0.
    Corpus scores are the item means: ROUGE-1 (2/3 + 0.4) / 2 = 8/15, ROUGE-2 2/7."""
    task = load_task("summarize")
    items = read_items(write_jsonl(tmp_path / "d.jsonl", SUMMARIES), task)
    engine = ScriptedEngine(tiny_tok, {"cat.": "  the cat sat\n", "dog.": "a dog"})
    run = evaluate(engine, task, items, GREEDY)
    assert run.metrics["rouge1"] == pytest.approx(8 / 15, abs=1e-12)
    assert run.metrics["rouge2"] == pytest.approx(2 / 7, abs=1e-12)
    assert [i.scores["rouge1"] for i in run.items] == pytest.approx([2 / 3, 0.4], abs=1e-12)
    assert [i.prediction for i in run.items] == ["the cat sat", "a dog"]  # post-processing: strip
    assert run.items[0].output == "  the cat sat\n"
    assert engine.configs == [GREEDY]


def test_prompt_has_instruction_and_chat_template(tmp_path, tiny_tok) -> None:
    task = load_task("summarize")
    items = read_items(write_jsonl(tmp_path / "d.jsonl", SUMMARIES[:1]), task)
    run = evaluate(ScriptedEngine(tiny_tok, {"cat.": "x"}), task, items, GREEDY)
    assert run.items[0].prompt == (
        "<|im_start|>user\nSummarize the text in one or two sentences.\n\nA long story about a cat.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_corpus_bleu_sums_item_statistics(tmp_path, tiny_tok) -> None:
    """Corpus BLEU and chrF come from statistics summed over items, not from a mean of sentence scores."""
    from llmlab.evaluation.metrics.bleu import corpus_bleu, sentence_bleu
    from llmlab.evaluation.metrics.chrf import corpus_chrf

    records = [
        {"input": "Le chat est sur le tapis.", "reference": "The cat is on the mat."},
        {"input": "Il pleut.", "reference": "It is raining today."},
        {"input": "Bonjour tout le monde.", "reference": "Hello everyone."},
    ]
    outputs = {"tapis.": "The cat sat on the mat.", "pleut.": "It rains today.", "monde.": "Hello, everyone."}
    task = load_task("translate")
    run = evaluate(
        ScriptedEngine(tiny_tok, outputs),
        task,
        read_items(write_jsonl(tmp_path / "d.jsonl", records), task),
        GREEDY,
    )
    preds, refs = list(outputs.values()), [[r["reference"]] for r in records]
    assert run.metrics["bleu"] == pytest.approx(corpus_bleu(preds, refs).score, abs=1e-9)
    assert run.metrics["chrf"] == pytest.approx(corpus_chrf(preds, refs).score, abs=1e-9)
    sentence_mean = sum(sentence_bleu(p, r).score for p, r in zip(preds, refs, strict=True)) / 3
    assert abs(run.metrics["bleu"] - sentence_mean) > 1
    assert len(run.items[0].statistics["bleu"]) == 10 and not run.items[0].scores


def numbered(n: int) -> list[dict[str, str]]:
    return [{"input": f"text number {i}.", "reference": f"summary {i}"} for i in range(n)]


def test_few_shot_examples_never_include_the_item_itself(tmp_path, tiny_tok) -> None:
    """With the data as the pool and k = 2, item 0 gets items 1 and 2, items 1 and 2 get the other two of
    0..2, item 3 gets 0 and 1; each example's answer is its reference."""
    task = load_task("summarize")
    items = read_items(write_jsonl(tmp_path / "d.jsonl", numbered(4)), task)
    engine = ScriptedEngine(tiny_tok, {f"text number {i}.": f"out {i}" for i in range(4)})
    run = evaluate(engine, task, items, GREEDY, shots=2, pool=items)
    expected = {0: (1, 2), 1: (0, 2), 2: (0, 1), 3: (0, 1)}
    for item in run.items:
        i = int(item.id)
        shown = [
            j
            for j in range(4)
            if f"text number {j}.<|im_end|>\n<|im_start|>assistant\nsummary {j}" in item.prompt
        ]
        assert shown == list(expected[i]), item.prompt
        assert item.prompt.endswith(f"text number {i}.<|im_end|>\n<|im_start|>assistant\n")
        assert item.shots == 2
    assert [i.prediction for i in run.items] == ["out 0", "out 1", "out 2", "out 3"]


def test_examples_are_dropped_to_fit_the_context(tmp_path, tiny_tok) -> None:
    task = load_task("summarize")
    items = read_items(write_jsonl(tmp_path / "d.jsonl", numbered(6)), task)
    # With the tiny tokenizer the zero-shot prompt is 61 tokens and each example adds 37: a 200-token
    # context less 16 new tokens leaves room for 3 of the 5 examples.
    engine = ScriptedEngine(tiny_tok, {f"text number {i}.": "x" for i in range(6)}, context_length=200)
    run = evaluate(engine, task, items, GREEDY, shots=5, pool=items)
    assert [i.shots for i in run.items] == [3] * 6
    for item in run.items:
        assert len(tiny_tok(item.prompt, add_special_tokens=False)["input_ids"]) <= 200 - 16
    tight = ScriptedEngine(tiny_tok, {}, context_length=70)
    with pytest.raises(ConfigError, match=r"d.jsonl:1: the instruction and query alone are \d+ tokens"):
        evaluate(tight, task, items, GREEDY)


def test_batches_sorted_by_length_and_results_in_data_order(tmp_path, tiny_tok) -> None:
    records = [{"input": "x" * n + f" item{n}.", "reference": "r"} for n in (1, 9, 3, 7, 5)]
    task = load_task("summarize")
    items = read_items(write_jsonl(tmp_path / "d.jsonl", records), task)
    engine = ScriptedEngine(tiny_tok, {f"item{n}.": f"answer {n}" for n in (1, 9, 3, 7, 5)})
    progress: list[tuple[int, int]] = []
    run = evaluate(
        engine, task, items, GREEDY, batch_size=2, on_progress=lambda d, t: progress.append((d, t))
    )
    assert [len(b) for b in engine.batches] == [2, 2, 1]
    assert ["item9." in engine.batches[0][0], "item7." in engine.batches[0][1]] == [True, True]
    assert [i.prediction for i in run.items] == ["answer 1", "answer 9", "answer 3", "answer 7", "answer 5"]
    assert progress == [(2, 5), (4, 5), (5, 5)]


def test_results_round_trip_through_json(tmp_path, tiny_tok) -> None:
    task = load_task("summarize")
    items = read_items(write_jsonl(tmp_path / "d.jsonl", SUMMARIES), task)
    engine = ScriptedEngine(tiny_tok, {"cat.": "the cat", "dog.": "a dog"})
    run = evaluate(engine, task, items, GREEDY, info=RunInfo(model="m", data="d.jsonl"))
    again = EvalRun.from_json(json.loads(json.dumps(run.to_json())))
    assert again == run
    assert run.name == "m, 0-shot" and run.ids == "position" and [i.id for i in run.items] == ["0", "1"]
    with pytest.raises(ConfigError, match="is not an `llmlab eval run` results file"):
        EvalRun.from_json({"format": "other"}, "x.json")


# data and task errors ---------------------------------------------------------------------------------


def test_bad_data_lines_name_file_and_line(tmp_path) -> None:
    task = load_task("classify")
    path = tmp_path / "d.jsonl"
    write_jsonl(path, [{"input": "good", "label": "a"}, '{"input": "broken",'])
    with pytest.raises(DataError, match=r"d.jsonl:2: invalid JSON"):
        read_items(path, task)
    write_jsonl(path, [{"input": "good", "label": "a"}, "", {"input": "no label"}])
    with pytest.raises(DataError, match=r"d.jsonl:3: missing field\(s\) 'label'; each record of a 'classify' data file needs 'input', 'label'"):  # fmt: skip
        read_items(path, task)
    write_jsonl(path, [{"input": 3, "label": "a"}])
    with pytest.raises(DataError, match=r"d.jsonl:1: field 'input' must be a string, got int"):
        read_items(path, task)
    write_jsonl(path, [{"input": "x", "reference": []}])
    with pytest.raises(DataError, match=r"d.jsonl:1: field 'reference' must be a string or a non-empty list"):
        read_items(path, load_task("qa"))
    with pytest.raises(DataError, match=r"file not found: .*missing.jsonl"):
        read_items(tmp_path / "missing.jsonl", task)


def test_ids_unique_and_all_or_none(tmp_path) -> None:
    task = load_task("qa")
    path = tmp_path / "d.jsonl"
    write_jsonl(
        path, [{"id": 7, "input": "q", "reference": "a"}, {"id": "7", "input": "q2", "reference": "b"}]
    )
    with pytest.raises(DataError, match=r"d.jsonl:2: duplicate id '7' \(first on line 1\)"):
        read_items(path, task)
    write_jsonl(path, [{"id": 1, "input": "q", "reference": "a"}, {"input": "q2", "reference": "b"}])
    with pytest.raises(
        DataError,
        match=r"d.jsonl:2: this record has no 'id' but line 1 does; give every record an id or none",
    ):
        read_items(path, task)
    write_jsonl(path, [{"id": "a", "input": "q", "reference": ["x", "y"]}])
    (item,) = read_items(path, task)
    assert (item.id, item.has_id, item.references) == ("a", True, ["x", "y"])


def test_labels_outside_the_task_are_refused_and_respelled(tmp_path) -> None:
    task = Task("sentiment", "{text}", ("rouge1",), reference="label", postprocess="label", labels=("Positive", "Negative"))  # fmt: skip
    path = write_jsonl(
        tmp_path / "d.jsonl", [{"text": "t", "label": "positive"}, {"text": "u", "label": "meh"}]
    )
    with pytest.raises(DataError, match=r"d.jsonl:2: label 'meh' is not one of the task's labels \(Positive, Negative\)"):  # fmt: skip
        read_items(path, task)
    write_jsonl(path, [{"text": "t", "label": "positive"}])
    assert read_items(path, task)[0].references == ["Positive"]


def test_unknown_task_and_bad_task_files(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"unknown task 'sumarize'; built-in tasks: classify, qa, summarize, translate, or give a task FILE\.yaml"):  # fmt: skip
        load_task("sumarize")
    with pytest.raises(ConfigError, match=r"task file not found: .*nope.yaml"):
        load_task(tmp_path / "nope.yaml")
    bad = tmp_path / "t.yaml"
    bad.write_text("template: '{text}'\nmetrics: [rouge1]\nlabel: [a, b]\n")
    with pytest.raises(ConfigError, match=r"t.yaml:3: unknown key 'label'; allowed: name, description"):
        load_task(bad)
    bad.write_text("template: '{text}'\nmetrics: [rouge3000, bleu]\n")
    with pytest.raises(ConfigError, match=r"t.yaml: unknown metric\(s\) 'rouge3000'; known metrics: "):
        load_task(bad)
    bad.write_text("template: '{text'\nmetrics: [bleu]\n")
    with pytest.raises(ConfigError, match=r"t.yaml: template .* is malformed"):
        load_task(bad)
    bad.write_text("template: '{text}'\nmetrics: [bleu\n")
    with pytest.raises(ConfigError, match=r"t.yaml:3: invalid YAML"):
        load_task(bad)


def test_custom_task_file_template_and_reference_field(tmp_path, tiny_tok) -> None:
    """A user task: two data fields in the template, answers in `answers`, first-line post-processing."""
    spec = tmp_path / "capitals.yaml"
    spec.write_text(
        'name: capitals\ninstruction: Answer with the city.\ntemplate: "Country: {country}\\nQuestion: {question}"\n'
        'reference: answers\npostprocess: first_line\nmetrics: [rouge1]\nmax_new_tokens: 5\nstop: ["\\n\\n"]\n'
    )
    task = load_task(spec)
    assert (task.fields, task.max_new_tokens, task.stop) == (["country", "question"], 5, ("\n\n",))
    data = write_jsonl(
        tmp_path / "d.jsonl",
        [{"country": "France", "question": "Capital?", "answers": ["Paris", "paris city"]}],
    )
    run = evaluate(
        ScriptedEngine(tiny_tok, {"France": "\nParis\nis the capital"}), task, read_items(data, task), GREEDY
    )
    assert run.items[0].prediction == "Paris" and run.metrics["rouge1"] == 1.0
    assert "Answer with the city.\n\nCountry: France\nQuestion: Capital?" in run.items[0].prompt


REVIEWS = [
    {"input": "Loved every bite.", "label": "positive"},
    {"input": "Great service.", "label": "positive"},
    {"input": "Cold soup.", "label": "negative"},
    {"input": "Never again.", "label": "negative"},
]


def test_classify_maps_outputs_to_labels_and_counts_accuracy(tmp_path, tiny_tok) -> None:
    """Labels inferred from the data in order of appearance: positive, negative. Outputs map to "positive"
    (right), "negative" (wrong), "" (no label named: wrong), "negative" (right): accuracy 2/4."""
    from llmlab.evaluation.report import run_notes

    task = load_task("classify")
    items = read_items(write_jsonl(tmp_path / "d.jsonl", REVIEWS), task)
    outputs = {"bite.": "Positive!", "service.": "I think negative", "soup.": "neutral", "again.": "NEGATIVE"}
    run = evaluate(ScriptedEngine(tiny_tok, outputs), task, items, GREEDY)
    assert run.labels == ["positive", "negative"]
    assert [i.prediction for i in run.items] == ["positive", "negative", "", "negative"]
    assert [i.scores["accuracy"] for i in run.items] == [1.0, 0.0, 0.0, 1.0]
    assert run.metrics == {"accuracy": 0.5}
    assert "Classify the text. Answer with exactly one of these labels: positive, negative.\n\nLoved every bite." in run.items[0].prompt  # fmt: skip
    assert "1 of 4 outputs named none of the labels (positive, negative)" in run_notes(run)


def test_qa_squad_exact_match_and_f1_by_hand(tmp_path, tiny_tok) -> None:
    """1. "The Paris." vs "Paris": normalised equal (article and punctuation dropped): EM 1, F1 1.
    2. "Diderot" (first line kept) vs "Denis Diderot": EM 0; P = 1/1, R = 1/2, F1 = 2/3.
    3. "It opened in 1889" vs ["1889", "in 1889"]: EM 0; F1 = max(2 * 1/4 * 1 / (5/4) = 0.4,
       2 * 2/4 * 1 / (3/2) = 2/3) = 2/3.
    EM = 1/3, F1 = (1 + 2/3 + 2/3) / 3 = 7/9."""
    records = [
        {"input": "Capital of France?", "reference": "Paris"},
        {"input": "Who edited the Encyclopédie?", "reference": "Denis Diderot"},
        {"input": "When did the tower open?", "reference": ["1889", "in 1889"]},
    ]
    outputs = {
        "France?": "The Paris.",
        "Encyclopédie?": "Diderot\nwith d'Alembert",
        "open?": "It opened in 1889",
    }
    task = load_task("qa")
    run = evaluate(ScriptedEngine(tiny_tok, outputs), task, read_items(write_jsonl(tmp_path / "d.jsonl", records), task), GREEDY)  # fmt: skip
    assert run.metrics["exact_match"] == pytest.approx(1 / 3, abs=1e-12)
    assert run.metrics["f1"] == pytest.approx(7 / 9, abs=1e-12)
    assert [i.scores["f1"] for i in run.items] == pytest.approx([1, 2 / 3, 2 / 3], abs=1e-12)
