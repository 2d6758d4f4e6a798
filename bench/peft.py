"""PEFT training cost on SmolLM2-135M: full vs LoRA vs adapters vs prompt tuning vs selective, and LoRA vs peft.

    python bench/peft.py [--steps 4] [--threads 2] [--precision auto] [--seq-len 256] [--batch-size 4]

Every configuration runs in its own subprocess (so its peak resident memory is its own): load the model,
set the method up, then `--steps` optimizer steps (after one warm-up step) of the causal-LM loss on the same
random batch (batch 4 × 256 tokens, every position a target), AdamW, the same autocast precision for all.
Ours run through the shared training loop (`Trainer`, with the method's `AdapterSaver`); the reference is the
peft library's LoRA on transformers' own model and loss, with the same rank, alpha, dropout and targets, in a
plain loop (forward with labels, backward, AdamW step); the same for prompt tuning (20 virtual tokens) against
peft's prompt tuning. Reported: trainable parameters, median seconds per step, peak RSS of the process, and
the size of the saved weights (the adapter file, or model.safetensors for full fine-tuning).

Targets (issue 10): LoRA step time <= 1.0x peft's, peak memory <= 0.8x peft's, adapter files <= 2% of the
full checkpoint. The `lora` row is `finetune lora` as it runs by default: a lean backward (one cast input per
block, bool dropout masks, the gated MLP keeping two of its three activations) and the output layer with the
loss computed chunk by chunk with their gradients; `lora (checkpointed)` adds --gradient-checkpointing. Timings
on a shared machine are noisy: compare the ratios; the report prints the load average before and after, and
says when it was measured under load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# This file is named like the peft package: take its own folder off the import path so `import peft` finds it.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

MODEL = "smollm2-135m-instruct"
CONFIGS: dict[str, dict[str, Any]] = {
    "full": {},
    "lora": {"method": "lora"},
    "lora (checkpointed)": {"method": "lora", "gradient_checkpointing": True},
    "adapters": {"method": "adapters"},
    "prompt-tuning": {"method": "prompt-tuning"},
    "selective": {"method": "selective"},
    "peft lora": {"reference": "lora"},
    "peft prompt-tuning": {"reference": "prompt-tuning"},
}
LORA = {"rank": 8, "alpha": 16.0, "dropout": 0.05, "targets": ("q_proj", "v_proj")}


def _batch(batch_size: int, seq_len: int, vocab: int) -> dict[str, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch_size, seq_len + 1), generator=gen)
    positions = torch.arange(seq_len).repeat(batch_size, 1)
    return {"input_ids": ids[:, :-1], "targets": ids[:, 1:], "position_ids": positions}


class SameBatch:
    """A `BatchSource` giving the same batch every time."""

    def __init__(self, batch: dict[str, Any], count: int):
        self.batch, self.count = batch, count

    def __len__(self) -> int:
        return self.count

    def batches(self, epoch: int, start: int = 0) -> Any:
        for _ in range(start, self.count):
            yield dict(self.batch)


def _method(name: str, gc: bool, precision: str) -> Any:
    from llmlab.peft.adapters import BottleneckConfig
    from llmlab.peft.lora import LoraConfig
    from llmlab.peft.prompt_tuning import PromptTuningConfig
    from llmlab.peft.selective import SelectiveConfig
    from llmlab.training.peft_finetune import PeftMethod

    config = {
        "lora": LoraConfig(**LORA),
        "adapters": BottleneckConfig(),  # the default size: hidden / 16
        "prompt-tuning": PromptTuningConfig(20, "vocab"),
        "selective": SelectiveConfig(("norms",)),
    }[name]
    return PeftMethod(name, config, MODEL, gradient_checkpointing=gc, precision=precision)


def run_ours(spec: dict[str, Any], args: argparse.Namespace, out: Path) -> dict[str, Any]:
    from llmlab.models import load_model
    from llmlab.training import CausalLMObjective, FullModelSaver, TrainConfig, Trainer

    loaded = load_model(MODEL, device="cpu")
    model = loaded.model.train()
    if "method" in spec:
        trainable, saver = _method(
            spec["method"], spec.get("gradient_checkpointing", False), args.precision
        ).prepare(model, None)
    else:
        trainable, saver = None, FullModelSaver(model)
    steps = args.steps + 1
    batch = _batch(args.batch_size, args.seq_len, model.config.vocab_size)
    config = TrainConfig(
        out=str(out), max_steps=steps, batch_size=args.batch_size, seq_len=args.seq_len, precision=args.precision,
        eval_every=steps, save_every=steps, warmup_ratio=0.0, keep_last=1, lr=1e-4,
    )  # fmt: skip
    trainer = Trainer(
        model, CausalLMObjective(), SameBatch(batch, steps), config, trainable=trainable, saver=saver
    )
    times: list[float] = []
    last = [time.perf_counter()]

    def on_event(event: Any) -> None:
        if event.kind == "step":
            now = time.perf_counter()
            times.append(now - last[0])
            last[0] = now
        elif event.kind == "start":
            last[0] = time.perf_counter()

    trainer.on_event = on_event
    trainer.fit()
    files = [
        out / n for n in ("model.safetensors", "adapter_model.safetensors", "llmlab_adapter.safetensors")
    ]
    size = sum(f.stat().st_size for f in files if f.is_file())
    count = sum(p.numel() for p in trainer.trainable.values())
    return {"trainable": count, "step_s": statistics.median(times[1:]), "weights_bytes": size}


def _reference_model(model: Any, method: str) -> Any:
    """The peft library's version of `method` on `model`, with our settings (LoRA as LORA, 20 virtual tokens)."""
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    if method == "lora":
        config: Any = LoraConfig(
            r=LORA["rank"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
            target_modules=list(LORA["targets"]), task_type="CAUSAL_LM",
        )  # fmt: skip
    else:
        config = PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=20)
    return get_peft_model(model, config).train()


def run_reference(method: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    import torch

    from llmlab.models import load_model
    from llmlab.training.loop import resolve_precision

    loaded = load_model(MODEL, device="cpu")
    model = _reference_model(loaded.model, method)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    batch = _batch(args.batch_size, args.seq_len, loaded.model.config.vocab_size)
    dtype = resolve_precision(args.precision, torch.device("cpu"))
    ids = batch["input_ids"]  # (B, T); transformers shifts the labels itself: T - 1 targets per row
    times = []
    for _ in range(args.steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    model.save_pretrained(out)
    size = (out / "adapter_model.safetensors").stat().st_size
    return {
        "trainable": sum(p.numel() for p in params),
        "step_s": statistics.median(times[1:]),
        "weights_bytes": size,
    }


def child(name: str, args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    spec = CONFIGS[name]
    with tempfile.TemporaryDirectory() as tmp:
        if "reference" in spec:
            result = run_reference(spec["reference"], args, Path(tmp))
        else:
            result = run_ours(spec, args, Path(tmp))
    result["peak_rss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps (after one warm-up step)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--only", help="comma-separated configurations (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args)
        return
    names = args.only.split(",") if args.only else list(CONFIGS)
    results: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()[0]
    for name in names:
        argv = [
            sys.executable,
            __file__,
            "--child",
            name,
            "--steps",
            str(args.steps),
            "--threads",
            str(args.threads),
        ]
        argv += [
            "--precision",
            args.precision,
            "--seq-len",
            str(args.seq_len),
            "--batch-size",
            str(args.batch_size),
        ]
        env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false"}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        results[name] = json.loads(line[len("RESULT ") :])
        r = results[name]
        print(
            f"{name:<20} trainable {r['trainable']:>12,}  {r['step_s']:6.2f} s/step  peak RSS "
            f"{r['peak_rss'] / 1e9:5.2f} GB  weights {r['weights_bytes'] / 1e6:8.2f} MB",
            flush=True,
        )
    report(results, args, (load_before, os.getloadavg()[0]))


def under_load(load: tuple[float, float], threads: int) -> bool:
    """Whether other programs kept the cores busy: the load average at the start is theirs alone, the one at the
    end also counts this bench's own `threads` (its last minute of steps), so those are taken off it first; more
    than half a core busy with others is load."""
    return max(load[0], load[1] - threads) > 0.5


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace, load: tuple[float, float]) -> None:
    print(
        f"\nSmolLM2-135M, batch {args.batch_size} x {args.seq_len} tokens, precision {args.precision}, "
        f"{args.threads} threads, median of {args.steps} steps"
    )
    # Other processes on the cores slow every configuration, not equally over time: say how busy it was.
    print(
        f"load average (1 min) {load[0]:.1f} at the start, {load[1]:.1f} at the end, on {os.cpu_count()} CPUs"
        + (
            ": measured under load, compare the ratios, not the seconds"
            if under_load(load, args.threads)
            else ""
        )
    )
    full = results.get("full")
    if full:
        for name, r in results.items():
            if name != "full" and r["weights_bytes"]:
                share = r["weights_bytes"] / full["weights_bytes"]
                print(f"{name:<20} saved weights {100 * share:6.3f}% of the full checkpoint (target <= 2%)")
    pairs = [
        ("lora", "peft lora"),
        ("lora (checkpointed)", "peft lora"),
        ("prompt-tuning", "peft prompt-tuning"),
    ]
    for name, reference in pairs:
        if name in results and reference in results:
            r, ref = results[name], results[reference]
            targets = " (targets <= 1.0x, <= 0.8x)" if reference == "peft lora" else ""
            print(
                f"{name:<20} vs {reference}: step time {r['step_s'] / ref['step_s']:.2f}x, "
                f"peak memory {r['peak_rss'] / ref['peak_rss']:.2f}x{targets}"
            )


if __name__ == "__main__":
    main()
