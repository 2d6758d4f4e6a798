"""Per-token overhead of batch-1 decoding, profiled: llmlab int8 vs transformers' generate (fp32), same run.

    python bench/decode_profile.py [--threads 2] [--new-tokens 32] [--rows 8]

For each engine: milliseconds per new token (median of 3 timed runs, greedy, 32 new tokens after a short chat
prompt, prefill included), the operator calls per token that torch.profiler records (aten:: and quantized::,
views included) and the operators that take the most self time. Prints the ratio transformers / llmlab for
both. A before/after comparison is two runs of this script, at the commit before and after a change
(docs/generation.md, "Per-token overhead").
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")

PROMPT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


def profile(run, new: int, rows: int) -> tuple[float, float, str]:
    """(ms per token, operator calls per token, table of the top operators by self time)."""
    from torch.profiler import ProfilerActivity, profile

    run()
    times = []
    for _ in range(3):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = prof.key_averages()
    calls = sum(e.count for e in events if e.key.startswith(("aten::", "quantized::")))
    table = events.table(sort_by="self_cpu_time_total", row_limit=rows)
    return statistics.median(times) / new * 1e3, calls / new, table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rows", type=int, default=8)
    args = parser.parse_args()
    import torch

    from llmlab.generation import Engine, GenerationConfig
    from llmlab.models import load_model

    torch.set_num_threads(args.threads)
    loaded = load_model("smollm2-135m-instruct", device="cpu")
    model, tok, new = loaded.model, loaded.tokenizer, args.new_tokens
    engine = Engine.from_loaded(loaded, precision="int8")
    config = GenerationConfig(greedy=True, max_new_tokens=new, ignore_eos=True, prompt_lookup=False)
    enc = tok([PROMPT], return_tensors="pt", add_special_tokens=False)

    def hf() -> None:
        model.generate(
            **enc, do_sample=False, max_new_tokens=new, min_new_tokens=new, pad_token_id=tok.pad_token_id
        )

    results = {}
    for name, run in (("transformers fp32", hf), ("llmlab int8", lambda: engine.generate([PROMPT], config))):
        results[name] = profile(run, new, args.rows)
    print(f"SmolLM2-135M-Instruct, batch 1, greedy, {new} new tokens, {args.threads} threads")
    print(f"{'engine':20} {'ms/token':>9} {'ops/token':>10}")
    for name, (ms, ops, _) in results.items():
        print(f"{name:20} {ms:9.2f} {ops:10.0f}")
    (ref_ms, ref_ops, _), (ms, ops, table) = results["transformers fp32"], results["llmlab int8"]
    print(
        f"ratio transformers / llmlab: {ref_ms / ms:.2f}x time per token, {ref_ops / ops:.2f}x operator calls"
    )
    print("\nllmlab int8, top operators by self time:\n" + table)


if __name__ == "__main__":
    main()
