"""--answer-style reader with a tiny rule-based span reader: the span is quoted verbatim from the chunk that
holds it and cited to it, NOT_FOUND below the margin, the relevance gate still applies, no generator is
needed, and bad settings fail with what to do."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from llmlab.errors import ConfigError
from llmlab.prompting.grounded import NOT_FOUND
from llmlab.rag.answer import AnswerConfig, Answerer
from llmlab.rag.reader import MAX_THREADS, Reader, load_reader
from llmlab.rag.types import Chunk, Hit


def word_tokenizer():
    """BERT's pair template over one word, "gold"; every other word is [UNK]."""
    from training.task_data import bert_tokenizer

    return bert_tokenizer(["gold"])


GOLD = 5  # "gold", after the five special tokens


class GoldReader(nn.Module):
    """Start logit 5 on "gold" in the context, end logit 5 on the token after it, 1 + 1 on [CLS] (null)."""

    def __init__(self) -> None:
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, input_ids, token_type_ids, attention_mask):
        gold = ((input_ids == GOLD) & (token_type_ids == 1)).float()  # (B, T)
        start = 5 * gold
        end = 5 * torch.nn.functional.pad(gold[:, :-1], (1, 0))
        start[:, 0] = end[:, 0] = 1.0
        return SimpleNamespace(start_logits=start, end_logits=end)


def hits(*texts: str, dense: float | None = None) -> list[Hit]:
    scores = {"dense": dense} if dense is not None else {}
    return [
        Hit(Chunk(t, f"/d/{i}.md", "markdown", 0), score=1.0, rank=i, scores=dict(scores))
        for i, t in enumerate(texts, start=1)
    ]


def answer(texts: list[str], reader: Reader | None = None, **config):
    found = hits(*texts, dense=config.pop("dense", None))
    answerer = Answerer(None, None, AnswerConfig(answer_style="reader", **config), reader=reader or READER)  # type: ignore[arg-type]
    stream = answerer.stream("Where is the gold?", hits=found)
    text = "".join(stream)
    assert stream.answer is not None
    return text, stream.answer


READER = Reader(GoldReader(), word_tokenizer(), margin=0.0)


class ThreadCounting(GoldReader):
    """GoldReader that records torch's thread count at each forward."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []

    def forward(self, input_ids, token_type_ids, attention_mask):
        self.threads.append(torch.get_num_threads())
        return super().forward(input_ids, token_type_ids, attention_mask)


def test_reader_caps_threads_only_while_it_reads(tmp_path):
    """Loading a reader leaves torch's thread count as it was (it used to lower it to 8 for good); a read runs
    on at most MAX_THREADS threads and restores the count after."""
    from training.task_data import save_tiny_bert

    before = torch.get_num_threads()
    many = MAX_THREADS + 4
    torch.set_num_threads(many)
    try:
        load_reader(str(save_tiny_bert(tmp_path / "bert", tokenizer=word_tokenizer())))
        assert torch.get_num_threads() == many
        model = ThreadCounting()
        span = Reader(model, word_tokenizer()).read("Where is the gold?", ["the gold is here"])
        assert span is not None and span.text == "gold is"
        assert model.threads == [MAX_THREADS]
        assert torch.get_num_threads() == many
    finally:
        torch.set_num_threads(before)


def test_quotes_the_span_and_cites_its_chunk():
    text, result = answer(["the river is wide", "under the bridge gold coins lie", "nothing here"])
    assert text == result.text == "gold coins"
    assert result.citations == [2] and [s.block for s in result.sources] == [2]
    assert result.sources[0].hit.chunk.source == "/d/2.md"
    assert result.text in result.hits[1].chunk.text and not result.not_found


def test_no_span_over_the_margin_is_not_found():
    text, result = answer(["the river is wide", "nothing here"])
    assert text == result.text == NOT_FOUND and result.not_found and result.sources == []
    strict = Reader(GoldReader(), word_tokenizer(), margin=9.0)  # the span beats [CLS] by 10 - 2 = 8
    _, result = answer(["under the bridge gold coins lie"], reader=strict)
    assert result.not_found and result.citations == []


def test_relevance_gate_applies_before_reading():
    _, result = answer(
        ["under the bridge gold coins lie"], dense=0.2, min_relevance=0.5, relevance_gate="off"
    )
    assert result.gated and result.not_found and result.text == NOT_FOUND


def test_other_styles_need_a_generator():
    answerer = Answerer(None, None, AnswerConfig(answer_style="free"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs a generating model; give one, or use --answer-style reader"):
        answerer.stream("Where?", hits=hits("a b"))


def test_bad_reader_settings(tmp_path):
    with pytest.raises(ConfigError, match="--answer-style must be one of free, extractive, reader, auto"):
        AnswerConfig(answer_style="span")
    with pytest.raises(
        ConfigError, match=r"no reader at .*give a folder of `llmlab finetune lora --task extractive-qa`"
    ):
        load_reader(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"holds neither adapter_config\.json nor config\.json"):
        load_reader(str(tmp_path))


def test_decision_ranks_chunks_and_refuses_by_its_fitted_model():
    """With fixed numbers: a rank bonus lets a slightly weaker span in the better-retrieved chunk win, and
    the fitted refusal turns down a when-question whose span holds no number or date."""
    from llmlab.rag.reader import Decision, decide, span_features
    from llmlab.training.extractive_qa import SpanChoice

    question = "When did the dam open?"
    texts = ["in 1954 the dam opened", "the dam opened in spring"]
    spans = [SpanChoice(6.0, 3, 7, 1.0), SpanChoice(6.5, 18, 24, 2.0)]  # (score, start, end, null score)
    plain = decide(question, texts, spans, Decision(margin=0.0))
    assert plain is not None and (plain.chunk, plain.text) == (1, "spring")
    assert (plain.margin, plain.chunk_margin, plain.probability) == (5.5, 4.5, None)  # 6.5 - min null 1.0
    assert Decision(margin=5.0).answers(plain) and not Decision(margin=6.0).answers(plain)
    assert span_features(question, plain) == {
        "margin": 5.5, "chunk_margin": 4.5, "score": 6.5, "words": 1.0, "number_missing": 1.0, "rank": 1.0
    }  # fmt: skip
    ranked = Decision(rank_bonus=(0.0, -1.0))
    got = decide(question, texts, spans, ranked)
    assert got is not None and (got.chunk, got.text, got.margin) == (0, "1954", 5.0)
    weights = {"margin": 0.5, "number_missing": -4.0, "intercept": -1.0}
    fitted = decide(question, texts, spans, Decision(rank_bonus=(0.0, -1.0), weights=weights))
    assert fitted is not None and fitted.text == "1954"
    assert fitted.probability == pytest.approx(1 / (1 + math.exp(-1.5)))  # -1 + 0.5 * 5.0
    assert Decision(weights=weights).answers(fitted)
    unranked = decide(question, texts, spans, Decision(weights=weights))
    assert unranked is not None and unranked.text == "spring"
    assert unranked.probability == pytest.approx(1 / (1 + math.exp(2.25)))  # -1 + 0.5 * 5.5 - 4
    assert not Decision(weights=weights).answers(unranked)
    assert decide(question, texts, [None, None], ranked) is None


class CountedParameters(nn.Module):
    """A 10-parameter stand-in for a generator's model that counts the calls to parameters()."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(10))
        self.calls = 0

    def parameters(self, recurse: bool = True):
        self.calls += 1
        return super().parameters(recurse)


def test_auto_style_sizes_the_generator_once():
    """--answer-style auto picks the reader for a small generator, counting its parameters on the first
    question only (an Answerer's engine is fixed)."""
    model = CountedParameters()
    config = AnswerConfig(answer_style="auto")
    answerer = Answerer(None, SimpleNamespace(model=model), config, reader=READER)  # type: ignore[arg-type]
    for _ in range(2):
        stream = answerer.stream("Where is the gold?", hits=hits("under the bridge gold coins lie"))
        assert "".join(stream) == "gold coins"
    assert model.calls == 1


def spans_of(text: str, start: str, end: str):
    """A SpanChoice over `text` from the first `start` to the end of the first `end` after it."""
    from llmlab.training.extractive_qa import SpanChoice

    a = text.index(start)
    return SpanChoice(2.0, a, text.index(end, a) + len(end), -1.0)


@pytest.mark.parametrize(
    ("text", "start", "end", "quote"),
    [
        # A span that starts in a short code span (a name, a flag) is that code span, not the sentence after.
        ("Use `llmlab chat` is a multi-turn conversation.", "chat", "multi-turn", "llmlab chat"),
        ("| `--include GLOB`, `--exclude GLOB` | all files |", "include", "exclude GLOB", "--include GLOB"),
        # One table cell, not the row.
        ("| `--repetition-penalty R` | 1.0 (off) | R > 1 |", "1.0", "R > 1", "1.0 (off)"),
        ("| 2.11 GB | 2.12 GB |", "2.11", "2.12 GB", "2.11 GB"),
        # Prose, and a span that starts outside any code span, keep the reader's span.
        ("The server listens on port 8000 by default.", "port", "8000", "port 8000"),
        ("Set `a` and then the b value here.", "then", "value", "then the b value"),
        # In a longer code span (a message, not a name), the span keeps its start and ends with the code span.
        ("It says `not a valid .docx file (BadZipFile)` here.", "BadZipFile", "here", "BadZipFile)"),
        # A backtick left open on the line (no closing one) is not a code span.
        ("a ` lone backtick then words", "lone", "words", "lone backtick then words"),
    ],
)
def test_a_span_keeps_to_the_markdown_unit_it_starts_in(text, start, end, quote) -> None:
    from llmlab.rag.reader import whole_markup

    got = whole_markup(text, spans_of(text, start, end))
    assert got is not None and text[got.start : got.end] == quote
    assert (got.score, got.null_score) == (2.0, -1.0)
    assert whole_markup(text, None) is None


def _adapter(folder, model, modules, rank, alpha, seed):
    """A PEFT LoRA adapter folder with random A and B on `modules` of `model`, and its own span head."""
    import json

    from safetensors.torch import save_file

    torch.manual_seed(seed)
    named = dict(model.named_modules())
    tensors = {}
    for name in modules:
        layer = named[name]
        tensors[f"base_model.model.{name}.lora_A.weight"] = torch.randn(rank, layer.in_features)
        tensors[f"base_model.model.{name}.lora_B.weight"] = torch.randn(layer.out_features, rank)
    tensors["base_model.model.qa_outputs.weight"] = torch.randn_like(model.qa_outputs.weight)
    tensors["base_model.model.qa_outputs.bias"] = torch.randn_like(model.qa_outputs.bias)
    folder.mkdir()
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": alpha, "target_modules": ["query", "value"],
              "modules_to_save": ["qa_outputs"], "task_type": "QUESTION_ANS", "bias": "none"}  # fmt: skip
    (folder / "adapter_config.json").write_text(json.dumps(config))


def test_stacked_adapter_equals_merging_both(tmp_path):
    """bench/reader_stack.py: one rank r1 + r2 adapter (B scaled by s_i / s) merges to the same weights as the
    first adapter merged, then the second merged on top; the span head is the second's. Different scales
    (alpha / rank: 4 / 2 and 3 / 3) check the rescaling."""
    import importlib.util
    from pathlib import Path

    from transformers import BertConfig, BertForQuestionAnswering

    from llmlab.peft.peft_format import merge_lora_adapter

    path = Path(__file__).resolve().parents[2] / "bench" / "reader_stack.py"
    spec = importlib.util.spec_from_file_location("reader_stack", path)
    stack = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stack)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)  # fmt: skip
    base = BertForQuestionAnswering(config).eval()
    modules = [f"bert.encoder.layer.{i}.attention.self.{m}" for i in range(2) for m in ("query", "value")]
    _adapter(tmp_path / "first", base, modules, rank=2, alpha=4.0, seed=1)
    _adapter(tmp_path / "second", base, modules, rank=3, alpha=3.0, seed=2)
    written = stack.stack(tmp_path / "first", tmp_path / "second", tmp_path / "stacked")
    assert written["r"] == 5 and written["lora_alpha"] == 10.0  # scale 2, the first's
    both = merge_lora_adapter(merge_lora_adapter(base, tmp_path / "first"), tmp_path / "second")
    stacked = merge_lora_adapter(base, tmp_path / "stacked")
    for (name, want), (_, got) in zip(both.state_dict().items(), stacked.state_dict().items(), strict=True):
        torch.testing.assert_close(got, want, msg=name)
    assert not torch.equal(
        stacked.state_dict()[f"{modules[0]}.weight"], base.state_dict()[f"{modules[0]}.weight"]
    )
