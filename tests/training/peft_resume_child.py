"""A LoRA run for tests/training/test_peft_finetune.py: `python peft_resume_child.py OUT [--kill-at N]`.

The run of resume_child.py (tiny Llama, the reverse task, 2 micro-batches per step, a checkpoint every 5
steps) with the base frozen and a LoRA adapter (dropout 0.1, so the RNG state matters) trained instead;
checkpoints hold only the adapter (`AdapterSaver`). `--kill-at N` sends SIGKILL during the N-th training
forward pass.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from resume_child import KillAt  # noqa: E402
from synthetic import VOCAB, reverse_data  # noqa: E402
from tiny import tiny_llama  # noqa: E402

from llmlab.peft.lora import LoraConfig  # noqa: E402
from llmlab.training.config import TrainConfig  # noqa: E402
from llmlab.training.loop import Trainer  # noqa: E402
from llmlab.training.peft_finetune import PeftMethod  # noqa: E402


def build(out: str, kill_at: int | None = None) -> Trainer:
    torch.manual_seed(0)
    model = tiny_llama(VOCAB, seed=0, initializer_range=0.02).train()
    lora = LoraConfig(rank=4, alpha=8.0, dropout=0.1, targets=("q_proj", "v_proj", "down_proj"))
    trainable, saver = PeftMethod("lora", lora, base_model="tiny").prepare(model, None)
    config = TrainConfig(
        out=out, max_steps=16, lr=1e-2, batch_size=8, grad_accum=2, save_every=5, eval_every=5,
        keep_last=2, precision="fp32",
    )  # fmt: skip
    val = reverse_data(32, seed=1, batch_size=16, shuffle=False)
    return Trainer(
        model, KillAt(kill_at), reverse_data(96, 0, 8), config, trainable=trainable, val_data=val, saver=saver
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--kill-at", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    build(args.out, args.kill_at).fit()


if __name__ == "__main__":
    main()
