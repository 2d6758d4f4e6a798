"""Prompt-lookup decoding on RAG answers over the guide: tokens/s with vs without, same engine, same run.

    python bench/speculative.py [--questions 20] [--precisions int8,fp32] [--threads 2] [--repeats 2]

The questions are the answerable ones of bench/data/qa/guide.jsonl; each gets the grounded prompt `llmlab
rag ask` builds (hybrid search over a fresh store of docs/, the default prompt and chunk count) and is
answered with the answer defaults (greedy, 64 new tokens at most, stop at a blank line), once with
`prompt_lookup=False` (the reference: one forward pass per token) and once with it (ours), taking turns.
Printed per precision: decode tokens/s (after the first token: what drafting changes), answer tokens/s
(prefill included: what a user waits for), their ratios, the share of drafted tokens accepted, and how many
answers were token-identical (all of them, or the run says which were not).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
QA = Path(__file__).parent / "data" / "qa" / "guide.jsonl"


def guide_prompts(limit: int) -> list[str]:
    """The grounded prompts for the first `limit` answerable guide questions (as `llmlab rag ask` builds them)."""
    from llmlab.models import load_model
    from llmlab.rag.answer import AnswerConfig, answer_generation
    from llmlab.rag.grounded_answer import build_prompt
    from llmlab.rag.ingest import IngestConfig
    from llmlab.rag.store import Store

    questions = [json.loads(line) for line in QA.read_text().splitlines() if line.strip()]
    questions = [q["question"] for q in questions if q.get("answer") is not None][:limit]
    tokenizer = load_model("smollm2-135m-instruct", device="cpu").tokenizer
    config, generation = AnswerConfig(), answer_generation()
    budget = min(config.max_prompt_tokens, 8192 - generation.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(str(Path(tmp) / "guide.sqlite"))
        store.ingest([ROOT / "docs"], config=IngestConfig(include=("*.md",)))
        prompts = []
        for question in questions:
            hits = store.search(question, mode=config.mode, top_k=config.chunks)
            prompts.append(build_prompt(question, hits, tokenizer, budget, config.prompt).text)
        store.close()
    return prompts


@dataclass
class Tally:
    tokens: int = 0
    decode_tokens: int = 0
    seconds: float = 0.0
    decode_seconds: float = 0.0
    answers: list[list[int]] = field(default_factory=list)


def answer(engine, prompt: str, lookup: bool, tally: Tally, stats: list[int]) -> None:
    """One answer, timed: the first token (prefill) and the rest (decode)."""
    from llmlab.rag.answer import answer_generation

    batcher = engine.batcher(max_batch=1)
    row = batcher.add(prompt, answer_generation(prompt_lookup=lookup))
    start = time.perf_counter()
    first = None
    for _ in batcher.run():
        first = time.perf_counter() if first is None else first
    end = time.perf_counter()
    ids = row.completion().token_ids
    tally.tokens += len(ids)
    tally.decode_tokens += len(ids) - 1
    tally.seconds += end - start
    tally.decode_seconds += end - (first or end)
    tally.answers.append(ids)
    s = batcher.speculation
    stats[0], stats[1], stats[2] = stats[0] + s.passes, stats[1] + s.drafted, stats[2] + s.accepted


def measure(precision: str, prompts: list[str], repeats: int) -> None:
    from llmlab.generation import load_engine

    engine = load_engine("smollm2-135m-instruct", device="cpu", precision=precision)
    answer(engine, prompts[0], True, Tally(), [0, 0, 0])  # warm-up
    plain, lookup = Tally(), Tally()
    stats = [0, 0, 0]
    for rep in range(repeats):
        for prompt in prompts:  # alternate which goes first: the machine's load drifts
            order = ((False, plain), (True, lookup)) if rep % 2 == 0 else ((True, lookup), (False, plain))
            for flag, tally in order:
                answer(engine, prompt, flag, tally, stats)
    same = sum(a == b for a, b in zip(plain.answers, lookup.answers, strict=True))
    differ = [
        i % len(prompts) for i, (a, b) in enumerate(zip(plain.answers, lookup.answers, strict=True)) if a != b
    ]
    print(
        f"\n{precision}: {len(prompts)} answers x {repeats}, {plain.tokens / len(plain.answers):.1f} tokens each"
    )
    print(f"{'':28} {'plain':>9} {'lookup':>9} {'ratio':>7}")
    for name, num, den in (
        ("decode tokens/s", "decode_tokens", "decode_seconds"),
        ("answer tokens/s (+prefill)", "tokens", "seconds"),
    ):
        a = getattr(plain, num) / getattr(plain, den)
        b = getattr(lookup, num) / getattr(lookup, den)
        print(f"{name:28} {a:9.1f} {b:9.1f} {b / a:6.2f}x")
    passes, drafted, accepted = stats
    print(
        f"verify passes {passes}, drafted {drafted}, accepted {accepted} "
        f"({accepted / max(drafted, 1):.0%}); {accepted / max(passes, 1):.2f} extra tokens per pass"
    )
    print(
        f"token-identical answers: {same}/{len(plain.answers)}"
        + (f"; differ: {sorted(set(differ))}" if differ else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--precisions", default="int8,fp32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    prompts = guide_prompts(args.questions)
    print(
        f"SmolLM2-135M-Instruct, {args.threads} threads, greedy answers over docs/ (prompt-lookup: off vs on)"
    )
    for precision in args.precisions.split(","):
        measure(precision, prompts, args.repeats)


if __name__ == "__main__":
    main()
