"""bench/generate.py survives a peer that crashes: each peer runs in its own process, and a crash is a row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench" / "generate.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_generate", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_crashing_peer_is_a_row_and_the_others_still_run() -> None:
    bench = load_bench()
    segfault = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"]
    crashed = bench.run_peer(segfault, timeout=60)
    assert (crashed.rates, crashed.error) == (None, "crashed (SIGSEGV)")
    failing = bench.run_peer([sys.executable, "-c", "raise SystemExit('no model here')"], timeout=60)
    assert failing.error == "failed (exit 1): no model here"
    fine = bench.run_peer([sys.executable, "-c", "print('loading'); print('{\"1\": 20.0, \"8\": 80.0}')"], 60)
    assert fine.rates == {1: 20.0, 8: 80.0}
    base = {1: 10.0, 8: 40.0}
    assert bench.row("llama.cpp Q4_1", 1, crashed, base, None).split() == [
        "llama.cpp",
        "Q4_1",
        "1",
        "crashed",
        "(SIGSEGV)",
    ]
    assert bench.row("llmlab int8", 8, fine, base, None).split() == [
        "llmlab",
        "int8",
        "8",
        "80.0",
        "2.00x",
        "-",
    ]
    assert bench.row("llmlab int8", 1, fine, base, 40.0).split()[-2:] == ["2.00x", "0.50x"]
