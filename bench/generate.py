"""Decoding speed: llmlab's engine vs transformers' generate (and llama.cpp when installed), same run.

    python bench/generate.py [--threads 2] [--new-tokens 128] [--repeats 3]

Prints tokens/s for batch 1 and batch 8 (greedy, fixed number of new tokens, prefill included), the ratio to
transformers' fp32 generate on the same model, prompts and thread count, the ratio to llama.cpp
(llama-cpp-python on the same GGUF; `make bench-llama` installs it), and the memory-bandwidth bound: weight
bytes read per token / measured read bandwidth. Also the int8 path's perplexity on a fixed text vs fp32, and
the time to first token for a RAG prompt of 1,000 tokens (`rag_prompt`: llmlab's grounded prompt over
passages of docs/rag-store.md; prefill and one token; llama.cpp's prompt cache is reset before each run).

Each peer (transformers, llama.cpp, llmlab int8, llmlab fp32) runs in its own subprocess, one after the
other, so a peer that crashes (llama-cpp-python built from source segfaults on some Intel CPUs) is printed
as a row saying so, and the others are still measured. When llama.cpp crashes, it is measured again with its
extra CPU buffer types off (`use_extra_bufts = False`: no AMX buffers and no repacked weights), the setting
that avoids the known crash in `ggml_backend_amx_mul_mat` on Sapphire Rapids (ggml-org/llama.cpp#20824;
dspy removed the AMX variant from its CI for the same segfault); that row is labelled, since without
repacking llama.cpp is slower than it is where its defaults run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from llmlab.generation import Engine, GenerationConfig
from llmlab.generation.fused_llama import FusedLlama
from llmlab.models import load_model
from llmlab.models.int8 import calibration_ids
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


RAG_TOKENS = 1000
RAG_QUESTION = "How do I use PostgreSQL as the store?"


def rag_prompt(tok: Any) -> list[int]:
    """llmlab's zero-shot grounded prompt (chat template) over docs/rag-store.md, cut to RAG_TOKENS tokens of
    prompt: the passages are the page's paragraphs, as many as fit (prompting.budget.fit_to_budget)."""
    from llmlab.prompting.budget import fit_to_budget
    from llmlab.prompting.grounded import render_grounded

    page = (Path(__file__).parents[1] / "docs" / "rag-store.md").read_text(encoding="utf-8")
    paragraphs = [p for p in page.split("\n\n") if p.strip()]

    def ids(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    fitted = fit_to_budget(
        lambda k: render_grounded(tok, RAG_QUESTION, ["\n\n".join(paragraphs[:k])], "zero-shot"),
        len(paragraphs), RAG_TOKENS, lambda text: len(ids(text)), least=1,
    )  # fmt: skip
    return ids(fitted.text)


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


@contextmanager
def without_extra_buffers(bindings: Any) -> Iterator[None]:
    """Within the block, llama.cpp models load with `use_extra_bufts = False` (plain CPU buffers: no AMX, no
    repacked weights). `bindings` is `llama_cpp.llama_cpp`, whose `llama_model_default_params` `Llama` calls."""
    original = bindings.llama_model_default_params

    def plain() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    bindings.llama_model_default_params = plain
    try:
        yield
    finally:
        bindings.llama_model_default_params = original


def llama_cpp_rates(
    prompt: str, rag: list[int], new: int, threads: int, repeats: int, plain: bool = False
) -> dict[str, float] | None:
    """{"1": tokens/s at batch 1, "ttft": seconds to the first token of the RAG prompt}, or None."""
    try:
        import llama_cpp.llama_cpp as bindings
        from llama_cpp import Llama
    except ImportError:
        return None
    with without_extra_buffers(bindings) if plain else nullcontext():
        llm = Llama(
            model_path=str(resolve("smollm2-135m-instruct").path),
            n_threads=threads,
            n_ctx=2048,
            verbose=False,
        )
    eos = llm.token_eos()

    def run() -> None:
        llm.create_completion(prompt, max_tokens=new, temperature=0.0, logit_bias={eos: -1e9})

    def first() -> None:
        llm.reset()  # no prompt cache: the whole prompt is evaluated each time
        llm.create_completion(rag, max_tokens=1, temperature=0.0)

    return {"1": new / median_time(run, repeats), "ttft": median_time(first, repeats)}


def perplexity(fused: FusedLlama, ids: torch.Tensor) -> float:
    T = ids.shape[1]
    logits = fused.forward(fused.new_cache(1, T), torch.arange(T)[None], None, ids, last_only=False)
    return math.exp(float(F.cross_entropy(logits[0, :-1], ids[0, 1:])))


PEERS = {
    "hf": "transformers generate fp32",
    "llama.cpp": "llama.cpp Q4_1 (llama-cpp-python)",
    "llama.cpp-plain": "llama.cpp Q4_1, no AMX/repack buffers",
    "int8": "llmlab int8",
    "fp32": "llmlab fp32",
}


def measure_peer(peer: str, args: argparse.Namespace) -> dict[str, float] | None:
    """tokens/s by batch size ("1", "8") and "ttft" (seconds) for one peer, measured in this process (None:
    llama.cpp not installed)."""
    torch.set_num_threads(args.threads)
    os.environ["LLMLAB_THREADS"] = str(args.threads)  # the engine keeps this count (generation/threads.py)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    loaded = load_model("smollm2-135m-instruct", device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    prompts = [render_chat(tok, [{"role": "user", "content": q}]) for q in QUESTIONS]
    new, reps = args.new_tokens, args.repeats
    half = max(new // 2, 1)
    rag = rag_prompt(tok)
    if peer == "hf":
        ids = torch.tensor([rag])

        def first() -> None:
            model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=1,
                           pad_token_id=tok.pad_token_id)  # fmt: skip

        return {"1": hf_tokens_per_second(model, tok, prompts[:1], new, reps),
                "8": hf_tokens_per_second(model, tok, prompts, half, reps), "ttft": median_time(first, reps)}  # fmt: skip
    if peer.startswith("llama.cpp"):
        return llama_cpp_rates(prompts[0], rag, new, args.threads, reps, plain=peer.endswith("plain"))
    engine = Engine.from_loaded(loaded, precision=peer)
    one = GenerationConfig(greedy=True, max_new_tokens=1)
    return {"1": ours_tokens_per_second(engine, prompts[:1], new, reps),
            "8": ours_tokens_per_second(engine, prompts, half, reps),
            "ttft": median_time(lambda: engine.generate([rag], one), reps)}  # fmt: skip


@dataclass
class PeerResult:
    rates: dict[int, float] | None
    """tokens/s by batch size; None when the peer is not installed or failed."""
    error: str | None = None
    """Why there are no rates: `crashed (SIGSEGV)`, `failed (exit 1): ...`, `timed out after N s`."""
    ttft: float | None = None
    """seconds to the first token of the RAG prompt"""


def run_peer(argv: list[str], timeout: float) -> PeerResult:
    """Run one peer's measurement as a subprocess; its last stdout line is JSON {batch: tokens/s} or null."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return PeerResult(None, f"timed out after {timeout:.0f} s")
    if done.returncode < 0:
        return PeerResult(None, f"crashed ({signal.Signals(-done.returncode).name})")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return PeerResult(None, f"failed (exit {done.returncode}): {last}")
    rates = json.loads(lines[-1])
    if rates is None:
        return PeerResult(None)
    ttft = rates.pop("ttft", None)
    return PeerResult({int(b): float(r) for b, r in rates.items()}, ttft=ttft)


def measure_llama_cpp(run: Callable[[str], PeerResult]) -> tuple[str, PeerResult]:
    """llama.cpp with its defaults; when that crashes, again with its extra buffer types off: (peer, result)."""
    result = run("llama.cpp")
    if result.error is not None and result.error.startswith("crashed"):
        plain = run("llama.cpp-plain")
        if plain.rates is not None:
            print(f"llama.cpp: {result.error} with its default CPU buffers; measured again without them")
            return "llama.cpp-plain", plain
    return "llama.cpp", result


def row(name: str, batch: int, result: PeerResult, base: dict[int, float], cpp: float | None) -> str:
    """One line of the table: the rate and its ratios, or the reason there is none."""
    if result.rates is None or batch not in result.rates:
        return f"{name:36} {batch:>5} {result.error or 'not installed':>8}"
    rate = result.rates[batch]
    vs_hf = f"{rate / base[batch]:.2f}x" if batch in base else "-"
    vs_cpp = f"{rate / cpp:.2f}x" if cpp is not None and batch == 1 else "-"
    return f"{name:36} {batch:>5} {rate:>8.1f} {vs_hf:>11} {vs_cpp:>13}"


def print_bounds(threads: int) -> None:
    """Read bandwidth, the batch-1 bound per precision, and the int8 path's perplexity vs fp32."""
    torch.set_num_threads(threads)
    loaded = load_model("smollm2-135m-instruct", device="cpu")
    model, tok = loaded.model, loaded.tokenizer
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer", choices=sorted(PEERS), help="measure one peer here and print its JSON")
    parser.add_argument("--peer-timeout", type=float, default=1800, help="seconds per peer")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.peer:
        print(json.dumps(measure_peer(args.peer, args)), flush=True)
        return
    half = max(args.new_tokens // 2, 1)
    print(
        f"SmolLM2-135M-Instruct, {args.threads} threads, greedy, {args.new_tokens} new tokens at batch 1, "
        f"{half} at batch 8; each peer in its own process"
    )
    print(f"{'engine':36} {'batch':>5} {'tok/s':>8} {'vs HF fp32':>11} {'vs llama.cpp':>13}", flush=True)
    common = [
        "--threads",
        str(args.threads),
        "--new-tokens",
        str(args.new_tokens),
        "--repeats",
        str(args.repeats),
    ]
    base: dict[int, float] = {}
    cpp: float | None = None

    def run(peer: str) -> PeerResult:
        return run_peer([sys.executable, __file__, "--peer", peer, *common], args.peer_timeout)

    firsts: list[tuple[str, float]] = []
    for peer in ("hf", "llama.cpp", "int8", "fp32"):
        if peer == "llama.cpp":
            peer, result = measure_llama_cpp(run)
        else:
            result = run(peer)
        name = PEERS[peer]
        if peer == "llama.cpp" and result.rates is None and result.error is None:
            print("llama.cpp: not installed (run `make bench-llama` to compile llama-cpp-python, ~5 min)")
            continue
        if peer == "hf" and result.rates:
            base = result.rates
        if peer.startswith("llama.cpp") and result.rates:
            cpp = result.rates[1]
        for batch in (1,) if peer.startswith("llama.cpp") else (1, 8):
            print(row(name, batch, result, base, cpp), flush=True)
        if result.ttft is not None:
            firsts.append((name, result.ttft))
    if firsts:
        print(f"\ntime to first token, a {RAG_TOKENS}-token RAG prompt (prefill and one token):")
        print(f"{'engine':36} {'seconds':>8} {'vs HF fp32':>11}")
        hf = dict(firsts).get(PEERS["hf"])
        for name, seconds in firsts:
            print(f"{name:36} {seconds:>8.3f} {f'{hf / seconds:.2f}x' if hf else '-':>11}")
    print_bounds(args.threads)


if __name__ == "__main__":
    main()
