"""n sampled answers per grounded prompt (what `llmlab feedback generate` and the flywheel ask): the prompt
prefilled once and its KV-cache rows copied (ours) vs each row its own prefill (the reference), same run.

    python bench/shared_prefill.py [--questions 6] [--n 8] [--max-new-tokens 48] [--precisions fp32,int8]

The prompts are the grounded prompts `llmlab rag ask` builds over docs/ for the first answerable questions of
bench/data/qa/guide.jsonl (bench/speculative.py's `guide_prompts`); each is answered n times at temperature
1.0 with seeds seed..seed+n-1, once with `Batcher.share_prefill` off and once on, taking turns. Printed: the
prompts' length, completions per second each way, the ratio, and whether every completion was the same
token for token (in fp32 they must be, or the run fails; int8 rounds a batched prefill, the reference, apart
from a one-row prefill, so some of its rows differ: neither is the other's rounding).
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


def measure(precision: str, prompts: list[str], args: argparse.Namespace) -> bool:
    """Print one precision's rows; True when the fp32 completions were token-identical (always True for
    other precisions, whose count is reported)."""
    from llmlab.generation import Engine, GenerationConfig
    from llmlab.generation.batcher import Batcher
    from llmlab.models import load_model

    engine = Engine.from_loaded(load_model("smollm2-135m-instruct", device="cpu"), precision=precision)
    lengths = [len(engine.encode(p)) for p in prompts]
    seconds = {False: 0.0, True: 0.0}
    outputs: dict[bool, list[list[int]]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for k, prompt in enumerate(prompts):
            config = GenerationConfig(temperature=1.0, seed=1000 * k, max_new_tokens=args.max_new_tokens)
            for shared in (False, True) if (repeat + k) % 2 == 0 else (True, False):
                Batcher.share_prefill = shared
                start = time.perf_counter()
                done = engine.generate([prompt] * args.n, config)
                seconds[shared] += time.perf_counter() - start
                if repeat == 0:
                    outputs[shared] += [c.token_ids for c in done]
    Batcher.share_prefill = True
    total = args.repeats * len(prompts) * args.n
    ref, ours = total / seconds[False], total / seconds[True]
    same = sum(a == b for a, b in zip(outputs[False], outputs[True], strict=True))
    print(f"\n{precision}: {len(prompts)} grounded prompts of {min(lengths)}-{max(lengths)} tokens")
    print(f"{'':34}{'completions/s':>14}")
    print(f"{'each row its own prefill (ref)':34}{ref:14.2f}")
    print(f"{'identical prompts prefilled once':34}{ours:14.2f}   {ours / ref:.2f}x")
    print(f"completions equal to the reference's: {same} of {len(outputs[True])}", end="")
    print("" if precision == "fp32" else " (int8 rounds a batched prefill apart from a one-row prefill)")
    return precision != "fp32" or same == len(outputs[True])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--n", type=int, default=8, help="samples per prompt (the flywheel's default)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precisions", default="fp32,int8")
    args = parser.parse_args()
    import torch
    from speculative import guide_prompts  # bench/speculative.py: the grounded prompts over the guide

    torch.set_num_threads(args.threads)
    prompts = guide_prompts(args.questions)
    load = os.getloadavg()[0]
    print(
        f"SmolLM2-135M-Instruct, {args.threads} threads, {args.n} samples per prompt at temperature 1.0, at "
        f"most {args.max_new_tokens} new tokens, {args.repeats} repeats, the two ways taking turns"
    )
    exact = [measure(precision, prompts, args) for precision in args.precisions.split(",")]
    print(f"\nload average (1 min) {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    if not all(exact):
        sys.exit("fp32 completions differ: a shared prefill must give each row what its own prefill gives")


if __name__ == "__main__":
    main()
