"""Answering from a store: retrieve, a grounded prompt within a token budget, generation, checked citations.

    question -> retrieve the best `chunks` hits -> numbered context blocks, fenced -> prompt (drop
    lowest-ranked blocks until it fits) -> generate (streamed) -> citations parsed and validated -> each
    sentence attributed to the block that supports it (citations.py) -> Answer(text, sources, hits used)

With --answer-style extractive (AnswerConfig.answer_style; free is the default) the generation step may only
copy a span of one block (extractive.py, through the engine's allowed_tokens hook), and the Answer cites that
block by construction instead of attributing sentences afterwards. With --answer-style reader no generator
runs: a trained span reader (reader.py) picks the span over the retrieved chunks (favouring better-ranked
ones), or replies NOT_FOUND when its fitted refusal (reader.json) finds the question unanswered there.

The prompt itself (rules, worked examples, fences) is llmlab/prompting/grounded.py; fitting it into the token
budget (build_prompt) and checking the generated text (finish_answer, AnswerStream) is grounded_answer.py. An optional relevance gate (`min_relevance`, off by default) replies
NOT_FOUND without generating when no retrieved chunk is close to the question. After generating, an answer
no passage supports has no sources, which the CLI says.

Two prompts are measured by bench/rag_answers.py: zero-shot and few-shot (two worked examples first). The
default is the better one on the project's QA set; ANSWER_DEFAULTS are the decoding settings used there.
Tests: tests/rag/test_answer.py (scripted fake engine), tests/rag/test_answer_slow.py (SmolLM2 + MiniLM).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from llmlab.errors import ConfigError
from llmlab.generation.config import GenerationConfig
from llmlab.prompting.grounded import NOT_FOUND, PROMPTS, STYLES
from llmlab.rag.extractive import SpanConstraint, extractive_answer, span_constraint
from llmlab.rag.grounded_answer import AnswerStream, GroundedPrompt, build_prompt, finish_answer
from llmlab.rag.relevance import THRESHOLD as GATE_THRESHOLD
from llmlab.rag.relevance import gate_applies, on_topic_probability, relevance_features
from llmlab.rag.result import Answer
from llmlab.rag.retrieval import MODES
from llmlab.rag.types import Hit

if TYPE_CHECKING:
    from llmlab.rag.reader import Reader
    from llmlab.rag.store import Store

ANSWER_STYLES = (*STYLES, "reader", "auto")
SPAN_CHOICES = ("greedy", "likelihood")
RELEVANCE_GATES = ("auto", "off")
AUTO_SMALL_MODEL_PARAMETERS = 1_000_000_000
"""--answer-style auto is the span reader (reader) with models under this many parameters or no generator,
else free: the 135M model's free answers restate the question with wrong facts (issue 14); on the guide's QA
set (bench/rag_answers.py) the reader is right more often (overall correct 0.397; 0.328 with its fitted rank
bonus and refusal) than extractive spans (0.224 with the adapter) or free answers (0.310 adapter, 0.172 not)."""

ANSWER_DEFAULTS: dict[str, Any] = {"max_new_tokens": 64, "greedy": True, "stop": ["\n\n", "</document"]}
"""Decoding settings for answers unless the caller overrides them: greedy, short, one paragraph, and never
an echo of the context's markup."""


class TextPieces(Protocol):
    def __iter__(self) -> Iterator[str]: ...


class AnswerEngine(Protocol):
    """What answering needs from a generator: `llmlab.generation.Engine`, or a scripted fake in tests."""

    tokenizer: Any
    context_length: int

    def stream(self, prompt: str, config: GenerationConfig | None = None) -> TextPieces: ...

    def generate(self, prompts: Sequence[str], config: GenerationConfig | None = None) -> Sequence[Any]:
        """Every prompt's completion (each has `.text`), decoded as one batch."""
        ...


@dataclass
class AnswerConfig:
    """How a question is answered from a store."""

    chunks: int = 3
    """Chunks retrieved and put in the prompt as numbered context blocks (--top-k is sampling's)."""
    mode: str = "hybrid"
    """Retrieval: hybrid (BM25 + dense), dense, or bm25."""
    prompt: str = "auto"
    """few-shot (two worked examples before the question), zero-shot, or auto: zero-shot when the engine
    runs a grounded-answer adapter (trained on zero-shot prompts), else few-shot."""
    adapter: str = "auto"
    """The grounded-answer adapter merged into the model when it loads (llmlab/rag/adapter.py): auto (the
    packaged one with the packaged model), none, or an adapter folder."""
    max_prompt_tokens: int = 2048
    """Token budget of the prompt; the lowest-ranked blocks are dropped to fit (never more than the
    model's context window minus --max-new-tokens)."""
    min_support: float = 0.35
    """Cosine similarity below which an answer sentence is attributed to no source."""
    answer_style: str = "auto"
    """free (the model writes the answer), extractive (decoding may only copy a span of one context block,
    cited by construction; llmlab/rag/extractive.py), reader (a trained span reader quotes a span of a
    retrieved chunk, no generator; llmlab/rag/reader.py), or auto (the default: reader for models under 1B
    parameters, free for larger ones)."""
    span_choice: str = "greedy"
    """How an extractive answer's span is chosen: greedy (decoding under the span mask) or likelihood (the
    likeliest of candidate spans, end included; llmlab/rag/span_scoring.py)."""
    reader: str = "auto"
    """The span reader of --answer-style reader: auto (the packaged one, trained by `make reader`) or the
    folder of a `llmlab finetune lora|full --task extractive-qa` run on minilm-l6."""
    min_relevance: float = 0.0
    """Reply "I don't know based on the documents." without generating when no retrieved chunk has a dense
    (cosine) similarity to the query of at least this; 0 disables (the default: with minilm-l6, on-topic questions about llmlab's
    guide scored as low as 0.25 and off-topic ones as high as 0.54, so no threshold separates them)."""
    relevance_gate: str = "auto"
    """auto: reply "I don't know based on the documents." without generating when the question is off
    topic by the gate fitted on training data (the hits' best cosine and the question's words found in
    them; llmlab/rag/relevance.py), for stores built with the embedder it was fitted for; off: never."""

    def __post_init__(self) -> None:
        if self.chunks < 1:
            raise ConfigError(f"--chunks must be at least 1, got {self.chunks}")
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.prompt not in (*PROMPTS, "auto"):
            raise ConfigError(f"--prompt must be one of auto, {', '.join(PROMPTS)}, got {self.prompt!r}")
        if self.answer_style not in ANSWER_STYLES:
            raise ConfigError(
                f"--answer-style must be one of {', '.join(ANSWER_STYLES)}, got {self.answer_style!r}"
            )
        if self.span_choice not in SPAN_CHOICES:
            raise ConfigError(
                f"--span-choice must be one of {', '.join(SPAN_CHOICES)}, got {self.span_choice!r}"
            )
        if self.max_prompt_tokens < 16:
            raise ConfigError(f"--max-prompt-tokens must be at least 16, got {self.max_prompt_tokens}")
        if self.relevance_gate not in RELEVANCE_GATES:
            raise ConfigError(
                f"--relevance-gate must be one of {', '.join(RELEVANCE_GATES)}, got {self.relevance_gate!r}"
            )
        for name, value in (("min-support", self.min_support), ("min-relevance", self.min_relevance)):
            if not -1.0 <= value <= 1.0:
                raise ConfigError(f"--{name} must be in [-1, 1], got {value}")


def answer_generation(**overrides: Any) -> GenerationConfig:
    """The decoding settings for answers: ANSWER_DEFAULTS, then `overrides` (e.g. the CLI's flags)."""
    return GenerationConfig(**{**ANSWER_DEFAULTS, **overrides})


class Answerer:
    """Answers questions from one store with one engine (see the module docstring for the steps)."""

    def __init__(
        self,
        store: Store,
        engine: AnswerEngine | None,
        config: AnswerConfig | None = None,
        generation: GenerationConfig | None = None,
        reader: Reader | None = None,
    ) -> None:
        """`engine` may be None with --answer-style reader (no generator runs); `reader` replaces the one
        AnswerConfig.reader names (tests pass a tiny one)."""
        self.store, self._engine = store, engine
        self.config = config or AnswerConfig()
        self.generation = generation or answer_generation()
        self._reader = reader

    @property
    def generator(self) -> AnswerEngine | None:
        """The generating engine, or None (--answer-style reader needs none)."""
        return self._engine

    @property
    def engine(self) -> AnswerEngine:
        if self._engine is None:
            raise ConfigError(
                f"--answer-style {self.config.answer_style} needs a generating model; give one, or use "
                "--answer-style reader (no generator)"
            )
        return self._engine

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            from llmlab.rag.reader import load_reader

            self._reader = load_reader(self.config.reader)
        return self._reader

    @property
    def budget(self) -> int:
        room = self.engine.context_length - self.generation.max_new_tokens
        return min(self.config.max_prompt_tokens, room)

    def retrieve(self, query: str) -> list[Hit]:
        if self.store.stats().documents == 0:
            raise ConfigError(
                f"store {self.store.location} holds no documents; add some with: llmlab rag ingest PATH --store NAME"
            )
        return self.store.search(query, mode=self.config.mode, top_k=self.config.chunks)

    def stream(
        self,
        question: str,
        *,
        query: str | None = None,
        hits: Sequence[Hit] | None = None,
        ask_as: str | None = None,
    ) -> AnswerStream:
        """Retrieve (unless `hits` are given) for `query` (default: the question) and start generating.

        Args:
            ask_as: the question as the model sees it (default: `question`); a chat puts the standalone
                rewrite of a follow-up here.
        """
        query = query or question
        hits = self.retrieve(query) if hits is None else list(hits)
        style = self.style
        features = relevance_features(query, hits)  # None without dense scores
        relevance = features["cosine"] if features else None
        on_topic = on_topic_probability(features) if features and self._gated_store else None
        gated = (relevance is not None and relevance < self.config.min_relevance) or (
            on_topic is not None and on_topic < GATE_THRESHOLD
        )
        if style == "reader":
            from llmlab.rag.reader import quoted_answer

            texts = [h.chunk.text for h in hits]
            span = None if gated or not hits else self.reader.answer_span(ask_as or question, texts)
            return quoted_answer(question, query, hits, span, relevance, on_topic, gated)
        prompt = build_prompt(
            ask_as or question, hits, self.engine.tokenizer, self.budget, self.prompt_style, style
        )
        if style == "extractive" and prompt.hits and not gated:
            return self._extractive(question, query, prompt, relevance, on_topic)
        embed = self.store.embedder.embed if hits else _no_embed
        generated = bool(prompt.hits) and not gated
        pieces = self._generate(prompt.text) if generated else iter([NOT_FOUND])

        def finish(text: str) -> Answer:
            answer = finish_answer(question, text, prompt, embed, self.config.min_support, query)
            answer.relevance, answer.on_topic, answer.gated = relevance, on_topic, gated
            return answer

        return AnswerStream(prompt, pieces, finish, query, generated)

    def _generate(self, prompt: str) -> Iterator[str]:
        """The engine's text pieces, started when first iterated (`answer_all` decodes a batch instead)."""
        yield from self.engine.stream(prompt, self.generation)

    def answer(self, question: str, *, query: str | None = None) -> Answer:
        return self.stream(question, query=query).result()

    def answer_all(self, questions: Sequence[str], batch_size: int = 8) -> list[Answer]:
        """Answer each question as `answer` does, in order; the generated answers are decoded `batch_size`
        prompts at a time (one `engine.generate` each), the longest prompts first, so a batch pads little."""
        streams = [self.stream(q) for q in questions]
        waiting = sorted((s for s in streams if s.generated), key=lambda s: -s.prompt.tokens)
        for at in range(0, len(waiting), batch_size):
            group = waiting[at : at + batch_size]
            done = self.engine.generate([s.prompt.text for s in group], self.generation)
            for s, completion in zip(group, done, strict=True):
                s.finish(completion.text)
        return [s.result() if s.answer is None else s.answer for s in streams]

    @functools.cached_property
    def _gated_store(self) -> bool:
        """Whether the fitted relevance gate is on for this store (read once: the store's embedder is fixed)."""
        if self.config.relevance_gate == "off":
            return False
        stored = self.store.backend.embedder()
        return gate_applies(stored[0] if stored else None)

    @property
    def prompt_style(self) -> str:
        """The grounded prompt: --prompt, where auto is zero-shot when the engine runs a grounded-answer
        adapter (it was trained on zero-shot prompts) and few-shot otherwise."""
        if self.config.prompt != "auto":
            return self.config.prompt
        return "zero-shot" if getattr(self.engine, "adapter", None) is not None else "few-shot"

    @functools.cached_property
    def _generator_size(self) -> int | None:
        """The generator's parameter count (counted once: an Answerer's engine is fixed); None without one."""
        model = getattr(self._engine, "model", None)
        return sum(p.numel() for p in model.parameters()) if model is not None else None

    @property
    def style(self) -> str:
        """The answer style in effect: --answer-style, with auto resolved by the model's size (reader under
        AUTO_SMALL_MODEL_PARAMETERS, or without a generator)."""
        style = self.config.answer_style
        if style == "auto" and self._engine is None:
            style = "reader"
        elif style == "auto":
            size = self._generator_size
            style = "reader" if size is not None and size < AUTO_SMALL_MODEL_PARAMETERS else "free"
        if style == "extractive" and not hasattr(self.engine, "eos_ids"):
            raise ConfigError(
                "--answer-style extractive needs llmlab's decoding engine (its allowed_tokens hook); "
                f"got {type(self.engine).__name__}; use --answer-style free"
            )
        return style

    def _extractive(
        self,
        question: str,
        query: str,
        prompt: GroundedPrompt,
        relevance: float | None,
        on_topic: float | None,
    ) -> AnswerStream:
        """Generate under the span constraint (extractive.py) and cite the block the span was copied from."""
        engine: Any = self.engine
        backend = getattr(engine, "backend", None)
        vocab = int(getattr(backend, "vocab_size", 0) or len(engine.tokenizer))
        constraint = span_constraint(
            engine.tokenizer,
            [h.chunk.text.strip() for h in prompt.hits],
            vocab,
            set(engine.eos_ids),
            [NOT_FOUND],
        )
        chosen: list[int] = []
        if self.config.span_choice == "likelihood":
            pieces: Any = self._scored_span(prompt, constraint, chosen)
        else:
            pieces = engine.stream(prompt.text, self.generation, allowed_tokens=constraint)

        def finish(text: str) -> Answer:
            ids = chosen or (pieces.completion.token_ids if getattr(pieces, "completion", None) else [])
            answer = extractive_answer(question, text, ids, constraint, prompt, self.generation.stop, query)
            answer.relevance, answer.on_topic = relevance, on_topic
            return answer

        return AnswerStream(prompt, pieces, finish, query)

    def _scored_span(
        self, prompt: GroundedPrompt, constraint: SpanConstraint, chosen: list[int]
    ) -> Iterator[str]:
        """The likeliest candidate span (span_scoring.py) as one piece; its ids go into `chosen`."""
        from llmlab.rag.span_scoring import choose_span

        engine: Any = self.engine
        chosen.extend(choose_span(engine.model, engine.encode(prompt.text), constraint))
        span = constraint.span(chosen)
        yield NOT_FOUND if span is None or span.block >= len(prompt.hits) else span.text


def _no_embed(texts: Sequence[str]) -> Any:
    raise AssertionError("nothing to attribute without context blocks")


def load_engine(
    model: str, device: str = "auto", precision: str = "auto", adapter: str | Path | None = None
) -> AnswerEngine:
    """A decoding Engine for a packaged model name, checkpoint folder or .gguf file, with an optional LoRA
    `adapter` merged in (`llmlab.generation.load_engine`)."""
    from llmlab.generation.engine import load_engine as load

    engine: AnswerEngine = load(model, device, precision, adapter)
    return engine


def ask_stream(
    question: str,
    store: Store | str,
    *,
    model: str | None = None,
    engine: AnswerEngine | None = None,
    config: AnswerConfig | None = None,
    generation: GenerationConfig | None = None,
) -> AnswerStream:
    """Stream an answer to `question` from `store` (a Store or a `--store` value), with the sources after.

        stream = ask_stream("How do I resume training?", store="notes")
        for piece in stream:
            print(piece, end="", flush=True)
        for source in stream.answer.sources: ...

    Args:
        model: the generating model (default smollm2-135m-instruct), unless `engine` is given.
    """
    from llmlab.models.registry import DEFAULT_CHAT_MODEL
    from llmlab.rag.adapter import answer_adapter
    from llmlab.rag.reader import needs_no_generator
    from llmlab.rag.store import Store

    if engine is None and not needs_no_generator((config or AnswerConfig()).answer_style, model):
        adapter = answer_adapter((config or AnswerConfig()).adapter, model)
        engine = load_engine(model or DEFAULT_CHAT_MODEL, adapter=adapter)
    if isinstance(store, str):
        with Store.open(store, create=False) as opened:
            stream = Answerer(opened, engine, config, generation).stream(question)
            opened.embedder  # noqa: B018 - loaded now, while the store is open; attribution runs later
        return stream
    return Answerer(store, engine, config, generation).stream(question)


def ask(
    question: str,
    store: Store | str,
    *,
    model: str | None = None,
    engine: AnswerEngine | None = None,
    config: AnswerConfig | None = None,
    generation: GenerationConfig | None = None,
) -> Answer:
    """Answer `question` from `store`: the text, its sources with snippets, and the hits used."""
    return ask_stream(
        question, store, model=model, engine=engine, config=config, generation=generation
    ).result()
