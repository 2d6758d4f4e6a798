"""A batch of grounded prompts of different lengths (what `Answerer.answer_all`, `eval run` and a server's joins
decode): prefills of similar lengths (ours, `batcher._similar_lengths`) vs one left-padded prefill of every
newcomer (the reference, the batcher before), same run.

    python bench/prefill_groups.py [--questions 40] [--batch 8] [--max-new-tokens 48] [--precision fp32]

The prompts are the grounded prompts `llmlab rag ask` builds over docs/ for the first answerable questions of
bench/data/qa/guide.jsonl (bench/speculative.py's `guide_prompts`), greedy answers, `--batch` prompts to a
`generate` call in their order, the two ways taking turns. The reference is the same batcher with the grouping
thresholds set so high that every newcomer shares one prefill. Printed: the prompts' lengths, answers per
second each way, the ratio, and whether every answer was the same token for token (in fp32 they must be, or
the run fails: a row prefilled in a smaller group is what it is alone).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="fp32")
    args = parser.parse_args()
    import torch
    from speculative import guide_prompts  # bench/speculative.py: the grounded prompts over the guide

    from llmlab.generation import Engine, GenerationConfig, batcher
    from llmlab.models import load_model

    torch.set_num_threads(args.threads)
    prompts = guide_prompts(args.questions)
    engine = Engine.from_loaded(load_model("smollm2-135m-instruct", device="cpu"), precision=args.precision)
    lengths = [len(engine.encode(p)) for p in prompts]
    config = GenerationConfig(greedy=True, max_new_tokens=args.max_new_tokens, prompt_lookup=False)
    grouped = (batcher.PAD_WASTE, batcher.PAD_TOKENS)
    seconds = {False: 0.0, True: 0.0}
    outputs: dict[bool, list[list[int]]] = {False: [], True: []}
    load = os.getloadavg()[0]
    for repeat in range(args.repeats):
        for ours in (False, True) if repeat % 2 == 0 else (True, False):
            batcher.PAD_WASTE, batcher.PAD_TOKENS = grouped if ours else (float("inf"), 1 << 30)
            for at in range(0, len(prompts), args.batch):
                start = time.perf_counter()
                done = engine.generate(prompts[at : at + args.batch], config)
                seconds[ours] += time.perf_counter() - start
                if repeat == 0:
                    outputs[ours] += [c.token_ids for c in done]
    batcher.PAD_WASTE, batcher.PAD_TOKENS = grouped
    total = args.repeats * len(prompts)
    ref, ours_rate = total / seconds[False], total / seconds[True]
    same = sum(a == b for a, b in zip(outputs[False], outputs[True], strict=True))
    print(
        f"SmolLM2-135M-Instruct {args.precision}, {args.threads} threads, {len(prompts)} grounded prompts of "
        f"{min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.0f}), {args.batch} a call, "
        f"greedy, at most {args.max_new_tokens} new tokens, {args.repeats} repeats taking turns"
    )
    print(f"{'':36}{'answers/s':>10}")
    print(f"{'one padded prefill (ref)':36}{ref:10.2f}")
    print(f"{'prefills of similar lengths':36}{ours_rate:10.2f}   {ours_rate / ref:.2f}x")
    print(f"answers equal to the reference's: {same} of {len(outputs[True])}")
    print(f"load average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    if args.precision == "fp32" and same != len(outputs[True]):
        sys.exit("fp32 answers differ: a row prefilled in a smaller group must get what it gets alone")


if __name__ == "__main__":
    main()
