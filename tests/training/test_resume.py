"""A run killed with SIGKILL in the middle of an epoch and resumed ends with the same weights, bit for bit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from llmlab.training.checkpoint import list_checkpoints

CHILD = Path(__file__).with_name("resume_child.py")


def run(*args: str) -> subprocess.CompletedProcess:
    env = os.environ | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run(
        [sys.executable, str(CHILD), *args], env=env, capture_output=True, text=True, timeout=600
    )


def test_resume_after_sigkill_equals_uninterrupted(tmp_path):
    """The killed run (a real process, killed by the kernel) dies inside step 13 (first micro-batch; steps 11-12 done but not checkpointed; the last
    checkpoint, step 10, is 4 micro-batches into epoch 1 of 6-step epochs). Resuming restores the weights,
    AdamW's moments, the RNG (dropout is on) and the data position, so the last 6 steps compute exactly what
    the uninterrupted run computed: equal bytes in model.safetensors, equal losses in metrics.jsonl."""
    from resume_child import build

    killed = run(str(tmp_path / "killed"), "--kill-at", "25")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert [s for s, _ in list_checkpoints(tmp_path / "killed")] == [5, 10]
    # The resumed and the uninterrupted runs go on in this process (one thread, as in the child).
    build(str(tmp_path / "killed")).fit(resume=True)
    build(str(tmp_path / "whole")).fit()

    a, b = (tmp_path / "whole" / "model.safetensors"), (tmp_path / "killed" / "model.safetensors")
    assert a.read_bytes() == b.read_bytes()
    final = {s: p for s, p in list_checkpoints(tmp_path / "killed")}
    assert (final[16] / "training_state.safetensors").is_file()
    # The resumed metrics file reads as one run: same steps, same losses (steps 11-12 were logged twice, the
    # first time by the killed process, and dropped at resume).
    lines = [(tmp_path / r / "metrics.jsonl").read_text().splitlines() for r in ("whole", "killed")]
    strip = lambda line: {k: v for k, v in json.loads(line).items() if k not in ("tokens_per_s", "elapsed_s")}  # noqa: E731
    assert [strip(x) for x in lines[0]] == [strip(x) for x in lines[1]]
