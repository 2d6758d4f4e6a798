"""AdamW parameter groups and the warmup + cosine schedule (values derived by hand)."""

from __future__ import annotations

import math

import pytest
from synthetic import tiny

from llmlab.training.optim import lr_at, param_groups


def test_no_decay_on_norms_and_biases():
    model = tiny()
    named = list(model.named_parameters())
    decay, plain = param_groups(named, 0.1)
    decayed = {n for n, p in named if any(p is q for q in decay["params"])}
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all("norm" not in n for n in decayed) and any("q_proj" in n for n in decayed)
    assert {n for n, p in named if any(p is q for q in plain["params"])} == {
        n for n, _ in named if "norm" in n
    }


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        (0, 1e-3 * 1 / 10),  # warmup: (s + 1) / W
        (9, 1e-3),  # end of warmup
        (10, 1e-3),  # cosine starts at the peak
        (55, 1e-3 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))),  # half way: (peak + floor) / 2
        (100, 1e-4),  # the floor
    ],
)
def test_warmup_cosine(step, expected):
    assert lr_at(step, total=100, peak=1e-3, warmup=10, floor=0.1) == pytest.approx(expected)
