"""Decoding speed: llmlab's engine vs transformers' generate (and llama.cpp when installed), same run.

    python bench/generate.py [--threads 2] [--new-tokens 128] [--repeats 3]

Prints tokens/s for batch 1 and batch 8 (greedy, fixed number of new tokens, prefill included), the ratio to
transformers' fp32 generate on the same model, prompts and thread count, the ratio to llama.cpp
(llama-cpp-python on the same GGUF; `make bench-llama` installs it), and the memory-bandwidth bound: weight
bytes read per token / measured read bandwidth. Also the int8 path's perplexity on a fixed text vs fp32.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from llmlab.generation import Engine, GenerationConfig
from llmlab.generation.fused_llama import FusedLlama
from llmlab.generation.int8 import calibration_ids
from llmlab.models import load_model
from llmlab.models.registry import resolve
from llmlab.prompting import render_chat

QUESTIONS = [
    "What is the capital of France?",
    "Explain in two sentences why the sky is blue.",
    "Write a short poem about a lighthouse.",
    "List three uses of a paperclip.",
    "How do plants make food?",
    "Give me a tip for learning a new language.",
    "What is a language model?",
    "Describe a rainy afternoon in a city.",
]


def median_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_bandwidth() -> float:
    """GB/s for streaming reads of a 512 MB buffer (a sum touches every byte once)."""
    buf = torch.ones(128 * 1024 * 1024)
    seconds = median_time(lambda: buf.sum(), 5)
    return buf.numel() * 4 / seconds / 1e9


def weight_bytes(fused: FusedLlama, model: torch.nn.Module) -> int:
    """Bytes of weights read per decoded token: every linear once, in the path's precision."""
    per_param = {"fp32": 4, "bf16": 2, "int8": 1}[fused.precision]
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return linear * per_param


def hf_tokens_per_second(model, tok, prompts: list[str], new: int, repeats: int) -> float:
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)

    def run() -> None:
        model.generate(
            **enc, do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=tok.pad_token_id
        )

    return len(prompts) * new / median_time(run, repeats)


def ours_tokens_per_second(engine: Engine, prompts: list[str], new: int, repeats: int) -> float:
    cfg = GenerationConfig(greedy=True, max_new_tokens=new, ignore_eos=True)
    return len(prompts) * new / median_time(lambda: engine.generate(prompts, cfg), repeats)


def llama_cpp_tokens_per_second(prompt: str, new: int, threads: int, repeats: int) -> float | None:
    try:
        from llama_cpp import Llama
    except ImportError:
        return None
    llm = Llama(
        model_path=str(resolve("smollm2-135m-instruct").path), n_threads=threads, n_ctx=1024, verbose=False
    )
    eos = llm.token_eos()

    def run() -> None:
        llm.create_completion(prompt, max_tokens=new, temperature=0.0, logit_bias={eos: -1e9})

    return new / median_time(run, repeats)


def perplexity(fused: FusedLlama, ids: torch.Tensor) -> float:
    T = ids.shape[1]
    logits = fused.forward(fused.new_cache(1, T), torch.arange(T)[None], None, ids, last_only=False)
    return math.exp(float(F.cross_entropy(logits[0, :-1], ids[0, 1:])))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    loaded = load_model("smollm2-135m-instruct", device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    prompts = [render_chat(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]
    new, reps = args.new_tokens, args.repeats
    half = max(new // 2, 1)

    print(
        f"SmolLM2-135M-Instruct, {args.threads} threads, greedy, {new} new tokens at batch 1, {half} at batch 8"
    )
    print(f"{'engine':36} {'batch':>5} {'tok/s':>8} {'vs HF fp32':>11} {'vs llama.cpp':>13}", flush=True)
    cpp = llama_cpp_tokens_per_second(prompts[0], new, args.threads, reps)
    base = {1: hf_tokens_per_second(model, tok, prompts[:1], new, reps)}
    base[8] = hf_tokens_per_second(model, tok, prompts, half, reps)

    def report(name: str, batch: int, rate: float) -> None:
        vs_cpp = f"{rate / cpp:.2f}x" if cpp is not None and batch == 1 else "-"
        print(f"{name:36} {batch:>5} {rate:>8.1f} {rate / base[batch]:>10.2f}x {vs_cpp:>13}", flush=True)

    report("transformers generate fp32", 1, base[1])
    report("transformers generate fp32", 8, base[8])
    if cpp is not None:
        report("llama.cpp Q4_1 (llama-cpp-python)", 1, cpp)
    for precision in ("int8", "fp32"):
        engine = Engine.from_loaded(loaded, precision=precision)
        report(f"llmlab {precision}", 1, ours_tokens_per_second(engine, prompts[:1], new, reps))
        report(f"llmlab {precision}", 8, ours_tokens_per_second(engine, prompts, half, reps))
    if cpp is None:
        print("llama.cpp: not installed (run `make bench-llama` to compile llama-cpp-python, ~5 min)")

    bandwidth = read_bandwidth()
    print(f"\nmeasured read bandwidth: {bandwidth:.1f} GB/s")
    text = (Path(__file__).parents[1] / "tests" / "fixtures" / "perplexity.txt").read_text()
    ids = torch.tensor([tok(text)["input_ids"]])
    fp32 = FusedLlama(model, "fp32")
    int8 = FusedLlama(model, "int8", calibration_ids(tok))
    for fused in (fp32, int8):
        mb = weight_bytes(fused, model) / 1e6
        print(
            f"bound {fused.precision}: {mb:.0f} MB of weights per token -> {bandwidth * 1e3 / mb:.0f} tok/s at batch 1"
        )
    p32, p8 = perplexity(fp32, ids), perplexity(int8, ids)
    print(
        f"perplexity on tests/fixtures/perplexity.txt: fp32 {p32:.3f}, int8 {p8:.3f} ({(p8 / p32 - 1) * 100:+.2f}%)"
    )


if __name__ == "__main__":
    main()
