"""bench/peft.py says "measured under load" only when other programs kept the cores busy, not its own steps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "peft.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_peft", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_its_own_threads_are_not_load() -> None:
    bench = load_bench()
    # A quiet machine: 0.1 before, 2.1 after two threads of training steps (its own work, not load).
    assert not bench.under_load((0.1, 2.1), threads=2)
    # Another program on one core the whole time: 1.0 before, 3.0 after.
    assert bench.under_load((1.0, 3.0), threads=2)
    # Busy at the start only, or only beside the bench at the end.
    assert bench.under_load((0.8, 2.0), threads=2)
    assert bench.under_load((0.0, 2.8), threads=2)
    assert not bench.under_load((0.4, 1.3), threads=1)
