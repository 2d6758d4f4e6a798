"""metrics.jsonl (one JSON object per logged step or validation run) and loss.png, the loss curve.

Lines look like
    {"step": 12, "epoch": 0, "loss": 2.31, "lr": 0.0004, "grad_norm": 0.8, "tokens_per_s": 5120.3, ...}
    {"step": 20, "val_loss": 2.05, "val_perplexity": 7.77, "val_accuracy": 0.41}
    {"step": 7, "skipped": "loss was nan in micro-batch 2 of 4"}
A resumed run first drops the lines after its checkpoint's step, so the file reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from llmlab.errors import MissingDependencyError
from llmlab.training.checkpoint import atomic_write_bytes, atomic_write_text


class MetricsLog:
    """Appends one JSON line per record; `enabled=False` on the ranks that must not write."""

    def __init__(self, path: Path, enabled: bool = True):
        self.path, self.enabled = path, enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]

    def truncate_after(self, step: int) -> None:
        """Forget what was logged after `step` (a resumed run logs it again)."""
        if self.enabled and self.path.is_file():
            kept = [r for r in self.read() if r.get("step", 0) <= step]
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))


def plot_losses(records: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """Training loss per step (and its moving average) and validation loss, written atomically as PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingDependencyError("matplotlib", "plot", e) from e
    import io

    train = [(r["step"], r["loss"]) for r in records if "loss" in r and math.isfinite(r["loss"])]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        steps, losses = zip(*train, strict=True)
        ax.plot(steps, losses, color="tab:blue", alpha=0.35, linewidth=1, label="train loss")
        window = max(1, len(losses) // 20)
        smooth = [sum(losses[max(0, i - window + 1) : i + 1]) / len(losses[max(0, i - window + 1) : i + 1])
                  for i in range(len(losses))]  # fmt: skip
        ax.plot(steps, smooth, color="tab:blue", linewidth=2, label=f"train loss (mean of {window})")
    if val:
        steps, losses = zip(*val, strict=True)
        ax.plot(steps, losses, "o-", color="tab:orange", linewidth=2, label="validation loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss (nats per target token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.subplots_adjust(
        left=0.1, right=0.97, top=0.92, bottom=0.13
    )  # fixed margins: tight_layout costs 0.3 s
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
