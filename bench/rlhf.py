"""DPO and reward-model step time and peak memory: llmlab's `align dpo` and `reward train` vs trl's DPOTrainer and
RewardTrainer, same model, pairs and settings, in one run.

DPO: both train a LoRA adapter (r = 8, alpha = 16, q_proj and v_proj) on SmolLM2-135M-Instruct in fp32, without
gradient checkpointing, on the same 64 synthetic pairs (prompts rendered through the chat template, each
completion ended by <|im_end|>, at most 128 tokens), 4 pairs per step, sigmoid loss, beta 0.1, AdamW. Each
runs in its own subprocess with the same thread count:

    ours            llmlab: reference log-probs precomputed once (the base model with the adapters disabled),
                    then one policy forward + backward per step, vocabulary projection on completion tokens only,
                    64 positions at a time and recomputed in the backward pass (no (N, V) logits kept)
    trl-precompute  trl 1.16 with precompute_ref_log_probs=True: the same algorithm
    trl             trl 1.16's default: the reference forward (adapters disabled) inside every step

Reward model: llmlab's `reward train` (a scalar head on the last token's hidden state, LoRA r = 8 on q_proj and
v_proj, the head trained) vs trl 1.16's RewardTrainer (AutoModelForSequenceClassification with num_labels = 1,
peft LoRA with task SEQ_CLS, which trains the score head too), the same pairs as the text
"PROMPT\n\nCOMPLETION<|im_end|>" (at most 128 tokens), 4 pairs per step, pairwise loss, AdamW, fp32.

Measured: the median time of an optimizer step after 2 warm-up steps, and the peak resident memory while the
steps run (sampled every 5 ms; the model is loaded and the reference log-probs computed before it starts).
Ratios are ours / trl's (below 1: ours is faster / smaller). Targets: <= 1.0x the time, <= 0.7x the memory of
trl with the same algorithm. Timings on a shared machine are disturbed by other work: report the ratio of one
run, and rerun on a quiet machine for absolute figures.

    python bench/rlhf.py [--steps 8] [--threads 2] [--only dpo|reward]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# `python bench/rlhf.py` puts bench/ first on sys.path, where bench/peft.py would shadow the peft package
# that trl's runs import: this script imports nothing from bench/, so the folder is dropped.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

MODEL = "smollm2-135m-instruct"
WARMUP = 2
VOCABULARY = (
    "the a model learns to answer questions about cities rivers mountains and history clearly briefly with "
    "care because people prefer helpful honest replies that stay on topic"
)
WORDS = VOCABULARY.split()


def make_pairs(path: Path, n: int = 64, seed: int = 0) -> None:
    rng = random.Random(seed)

    def sentence(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k)).capitalize() + "."

    with path.open("w", encoding="utf-8") as f:
        for _ in range(n):
            record = {"prompt": sentence(8) + " Answer briefly.", "chosen": sentence(rng.randint(20, 40)),
                      "rejected": sentence(rng.randint(20, 40))}  # fmt: skip
            f.write(json.dumps(record) + "\n")


class PeakRSS:
    """Samples the process's resident memory in a thread between start() and stop()."""

    def __init__(self) -> None:
        self.peak, self.start_rss, self._run = 0, 0, False
        self._thread: threading.Thread | None = None

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def start(self) -> None:
        self.start_rss = self.peak = self.rss()
        self._run = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while self._run:
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def stop(self) -> None:
        self._run = False
        if self._thread is not None:
            self._thread.join()


def step_clock(memory: PeakRSS, stamps: list[float]) -> Callable[[Any], None]:
    """An on_event for llmlab's Trainer: a time stamp at the start and after each step, memory while it runs."""

    def on_event(event: Any) -> None:
        if event.kind == "start":
            memory.start()
        if event.kind in ("start", "step"):
            stamps.append(time.perf_counter())
        elif event.kind == "end":
            memory.stop()

    return on_event


def run_ours(pairs: Path, out: Path, steps: int) -> dict[str, Any]:
    from llmlab.rlhf.dpo_train import DPOConfig, train_dpo

    memory, stamps = PeakRSS(), []
    on_event = step_clock(memory, stamps)

    config = DPOConfig(
        model=MODEL, pairs=str(pairs), out=str(out), max_steps=steps + WARMUP, batch_size=4, seq_len=128,
        lr=5e-5, beta=0.1, rank=8, alpha=16, targets="q_proj,v_proj", val_fraction=0.0, precision="fp32",
        save_every=10_000, memory_check=False,
    )  # fmt: skip
    preview, _ = train_dpo(config, on_event=on_event)
    times = [b - a for a, b in itertools.pairwise(stamps)][WARMUP:]
    return {"step_s": statistics.median(times), "peak_rss": memory.peak, "start_rss": memory.start_rss,
            "tokens": preview.stats["tokens"] / preview.stats["pairs"]}  # fmt: skip


def run_trl(pairs: Path, out: Path, steps: int, precompute: bool) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from llmlab.models.loading import model_folder
    from llmlab.rlhf.completions import render_prompt

    folder, _, _ = model_folder(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    records = [json.loads(line) for line in pairs.read_text().splitlines()]
    for r in records:  # the same text llmlab trains on: the chat template's prompt, completion + <|im_end|>
        r["prompt"] = render_prompt(tokenizer, r["prompt"])
    memory, stamps = PeakRSS(), []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            memory.start()
            stamps.append(time.perf_counter())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            memory.stop()

    args = DPOConfig(
        output_dir=str(out), max_steps=steps + WARMUP, per_device_train_batch_size=4, max_length=128,
        learning_rate=5e-5, beta=0.1, loss_type=["sigmoid"], precompute_ref_log_probs=precompute, bf16=False,
        gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(), save_strategy="no", report_to=[],
        logging_steps=1000, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                         processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])  # fmt: skip
    trainer.train()
    times = [b - a for a, b in itertools.pairwise(stamps)][WARMUP:]
    tokens = [
        len(r["prompt_ids"]) * 2 + len(r["chosen_ids"]) + len(r["rejected_ids"])
        for r in trainer.train_dataset
    ]
    return {"step_s": statistics.median(times), "peak_rss": memory.peak, "start_rss": memory.start_rss,
            "tokens": sum(tokens) / len(tokens)}  # fmt: skip


def run_ours_reward(pairs: Path, out: Path, steps: int) -> dict[str, Any]:
    from llmlab.rlhf.reward_train import RewardConfig, train_reward

    memory, stamps = PeakRSS(), []
    on_event = step_clock(memory, stamps)

    config = RewardConfig(
        model=MODEL, pairs=str(pairs), out=str(out), max_steps=steps + WARMUP, batch_size=4, seq_len=128,
        lr=5e-5, lora=True, rank=8, alpha=16, targets="q_proj,v_proj", val_fraction=0.0, precision="fp32",
        save_every=10_000, memory_check=False,
    )  # fmt: skip
    preview, _ = train_reward(config, on_event=on_event)
    times = [b - a for a, b in itertools.pairwise(stamps)][WARMUP:]
    return {"step_s": statistics.median(times), "peak_rss": memory.peak, "start_rss": memory.start_rss,
            "tokens": preview.stats["tokens"] / preview.stats["pairs"]}  # fmt: skip


def run_trl_reward(pairs: Path, out: Path, steps: int) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl import RewardConfig, RewardTrainer

    from llmlab.models.loading import model_folder
    from llmlab.rlhf.pair_data import REWARD_SEPARATOR

    folder, _, _ = model_folder(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    records = [json.loads(line) for line in pairs.read_text().splitlines()]
    for r in records:  # the text llmlab scores: PROMPT + "\n\n" + COMPLETION, then EOS (trl appends it)
        r["prompt"] = r["prompt"] + REWARD_SEPARATOR
    memory, stamps = PeakRSS(), []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, *args: Any, **kwargs: Any) -> None:
            memory.start()
            stamps.append(time.perf_counter())

        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

        def on_train_end(self, *args: Any, **kwargs: Any) -> None:
            memory.stop()

    args = RewardConfig(
        output_dir=str(out), max_steps=steps + WARMUP, per_device_train_batch_size=4, max_length=128,
        learning_rate=5e-5, bf16=False, gradient_checkpointing=False, use_cpu=not torch.cuda.is_available(),
        save_strategy="no", report_to=[], logging_steps=1000, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    model = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1, dtype=torch.float32)
    model.config.pad_token_id = tokenizer.pad_token_id
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS")
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_list(records),
                            processing_class=tokenizer, peft_config=lora, callbacks=[Clock()])  # fmt: skip
    trainer.train()
    times = [b - a for a, b in itertools.pairwise(stamps)][WARMUP:]
    tokens = [len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in trainer.train_dataset]
    return {"step_s": statistics.median(times), "peak_rss": memory.peak, "start_rss": memory.start_rss,
            "tokens": sum(tokens) / len(tokens)}  # fmt: skip


RUNNERS: dict[str, Any] = {
    "dpo ours": run_ours,
    "dpo trl-precompute": lambda pairs, out, steps: run_trl(pairs, out, steps, True),
    "dpo trl": lambda pairs, out, steps: run_trl(pairs, out, steps, False),
    "reward ours": run_ours_reward,
    "reward trl": run_trl_reward,
}


def worker(kind: str, pairs: Path, out: Path, steps: int) -> None:
    print("RESULT " + json.dumps(RUNNERS[kind](pairs, out, steps)))


def report(results: dict[str, dict[str, Any]], threads: int, steps: int) -> None:
    print(f"{MODEL} + LoRA r=8 (q, v), fp32, 4 pairs/step, max 128 tokens, {threads} threads, median of {steps} "
          "steps after 2 warm-up steps; one run, same machine (a shared machine is disturbed by other work)")  # fmt: skip
    print(f"{'':20} {'step s':>8} {'peak RSS MB':>12} {'over start MB':>14} {'tokens/pair':>12}")
    for kind, r in results.items():
        print(f"{kind:20} {r['step_s']:8.2f} {r['peak_rss'] / 2**20:12.0f} "
              f"{(r['peak_rss'] - r['start_rss']) / 2**20:14.0f} {r['tokens']:12.1f}")  # fmt: skip
    for ours, refs, target in (("dpo ours", ("dpo trl-precompute", "dpo trl"), "time <= 1.0x, memory <= 0.7x"),
                               ("reward ours", ("reward trl",), "")):  # fmt: skip
        for kind in refs:
            if ours not in results or kind not in results:
                continue
            a, b = results[ours], results[kind]
            print(f"{ours} / {kind}: time {a['step_s'] / b['step_s']:.2f}x, peak memory "
                  f"{a['peak_rss'] / b['peak_rss']:.2f}x, memory over the loaded model "
                  f"{(a['peak_rss'] - a['start_rss']) / max(1, b['peak_rss'] - b['start_rss']):.2f}x"
                  + (f" (targets: {target})" if target else ""))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--steps", type=int, default=8, help="measured optimizer steps (after 2 warm-up steps)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=["dpo", "reward"], help="run one comparison (default: both)")
    parser.add_argument("--worker", choices=list(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--pairs", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        worker(args.worker, Path(args.pairs), Path(args.out), args.steps)
        return
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "OMP_WAIT_POLICY": "PASSIVE",
                        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}  # fmt: skip
    results: dict[str, dict[str, Any]] = {}
    kinds = [k for k in RUNNERS if args.only is None or k.startswith(args.only)]
    with tempfile.TemporaryDirectory() as tmp:
        pairs = Path(tmp) / "pairs.jsonl"
        make_pairs(pairs)
        for i, kind in enumerate(kinds):
            command = [sys.executable, __file__, "--worker", kind, "--pairs", str(pairs), "--out",
                       str(Path(tmp) / str(i)), "--steps", str(args.steps), "--threads", str(args.threads)]  # fmt: skip
            proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
            results[kind] = json.loads(line[len("RESULT ") :])
            print(f"{kind}: done", file=sys.stderr)
    report(results, args.threads, args.steps)


if __name__ == "__main__":
    main()
