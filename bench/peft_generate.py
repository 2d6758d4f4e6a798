"""Decoding with an adapter: LoRA merged into the fused copy vs unmerged on transformers' forward, same run.

    python bench/peft_generate.py [--threads 2] [--new-tokens 64] [--repeats 3]

SmolLM2-135M, batch 1, greedy, a fixed number of new tokens (prefill included). Rows: the base model on the
fused path (default precision: int8 on CPUs with VNNI, else fp32) and on transformers' forward; a random
LoRA adapter (r=8, non-zero B) on q,v and on every linear layer, merged into the fused copy when the engine
is built (what `llmlab generate --adapter` does) and unmerged on transformers' forward (precision hf); a
bottleneck adapter (64), which only runs on transformers' forward. Ratios are to the base fused row. Also the
time to build an engine, which is what switching adapters on a loaded base model costs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from llmlab.generation import Engine, GenerationConfig
from llmlab.models import load_model
from llmlab.peft import apply_lora, delete_adapter, set_active_adapter
from llmlab.peft.adapters import apply_adapters
from llmlab.prompting import render_chat


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def tokens_per_second(engine: Engine, prompt: str, new: int, repeats: int) -> float:
    config = GenerationConfig(greedy=True, max_new_tokens=new, ignore_eos=True)
    return new / median_time(lambda: engine.generate([prompt], config), repeats)


def randomize_adapter(model: torch.nn.Module, name: str) -> None:
    """Non-zero B (and up-projections): the adapter really changes every targeted layer."""
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param_name, param in model.named_parameters():
            if f".{name}." in param_name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loaded = load_model("smollm2-135m-instruct", device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    prompt = render_chat(tok, [{"role": "user", "content": "Explain in two sentences why the sky is blue."}])
    apply_lora(model, rank=8, alpha=16, name="lora-qv", train=False)
    apply_lora(model, targets="all-linear", rank=8, alpha=16, name="lora-all", train=False)
    apply_adapters(model, bottleneck=64, name="bottleneck", train=False)
    for name in ("lora-qv", "lora-all", "bottleneck"):
        randomize_adapter(model, name)
    rows: list[tuple[str, str, float, float]] = []  # (setting, path, build seconds, tokens/s)
    for adapter, precision in [
        (None, "auto"), (None, "hf"), ("lora-qv", "auto"), ("lora-qv", "hf"),
        ("lora-all", "auto"), ("lora-all", "hf"), ("bottleneck", "auto"),
    ]:  # fmt: skip
        set_active_adapter(model, adapter)
        start = time.perf_counter()
        engine = Engine(model, tok, precision=precision)
        build = time.perf_counter() - start
        path = type(engine.backend.forward).__name__.removesuffix("Forward").lower()  # type: ignore[attr-defined]
        if path == "fused":
            path += f" {engine.backend.forward.fused.precision}"  # type: ignore[attr-defined]
        rate = tokens_per_second(engine, prompt, args.new_tokens, args.repeats)
        rows.append((adapter or "base", path, build, rate))
        print(f"{adapter or 'base':<11} {path:<11} build {build:6.2f} s  {rate:6.1f} tok/s", flush=True)
    base = rows[0][3]
    print(
        f"\nSmolLM2-135M, batch 1, {args.new_tokens} new tokens, {args.threads} threads (median of {args.repeats})"
    )
    print(f"{'adapter':<11} {'path':<11} {'engine build':>12} {'tok/s':>7} {'vs base fused':>14}")
    for setting, path, build, rate in rows:
        print(f"{setting:<11} {path:<11} {build:>10.2f} s {rate:>7.1f} {rate / base:>13.2f}x")
    for name in ("lora-qv", "lora-all", "bottleneck"):
        delete_adapter(model, name)


if __name__ == "__main__":
    main()
