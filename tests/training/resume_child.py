"""A training run for tests/training/test_resume.py: `python resume_child.py OUT [--kill-at N] [--resume]`.

Tiny Llama with dropout (so the RNG state matters), the reverse task, 2 micro-batches per step, 6 steps per
epoch, a checkpoint every 5 steps (mid-epoch), validation every 5. `--kill-at N` sends SIGKILL to this
process during the N-th training forward pass (inside an optimizer step).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import torch

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]

from synthetic import VOCAB, reverse_data  # noqa: E402
from tiny import tiny_llama  # noqa: E402

from llmlab.training.causal_lm import CausalLMObjective  # noqa: E402
from llmlab.training.config import TrainConfig  # noqa: E402
from llmlab.training.loop import Trainer  # noqa: E402


class KillAt(CausalLMObjective):
    def __init__(self, kill_at: int | None):
        self.kill_at, self.calls = kill_at, 0

    def loss(self, model, batch):
        if model.training:
            self.calls += 1
            if self.calls == self.kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
        return super().loss(model, batch)


def build(out: str, kill_at: int | None = None) -> Trainer:
    torch.manual_seed(0)
    model = tiny_llama(VOCAB, seed=0, initializer_range=0.02, attention_dropout=0.1).train()
    config = TrainConfig(
        out=out, max_steps=16, lr=5e-3, batch_size=8, grad_accum=2, save_every=5, eval_every=5,
        keep_last=2, precision="fp32",
    )  # fmt: skip
    val = reverse_data(32, seed=1, batch_size=16, shuffle=False)
    return Trainer(model, KillAt(kill_at), reverse_data(96, 0, 8), config, val_data=val)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--kill-at", type=int)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    build(args.out, args.kill_at).fit(resume=args.resume)


if __name__ == "__main__":
    main()
