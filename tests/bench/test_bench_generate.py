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
    assert fine.rates == {1: 20.0, 8: 80.0} and fine.ttft is None
    timed = bench.run_peer([sys.executable, "-c", 'print(\'{"1": 20.0, "ttft": 0.5}\')'], 60)
    assert timed.rates == {1: 20.0} and timed.ttft == 0.5  # the time to first token is not a batch size
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


def test_a_crashing_llama_cpp_is_measured_again_without_its_extra_buffers(capsys) -> None:
    bench = load_bench()
    asked: list[str] = []

    def crashes_by_default(peer: str):
        asked.append(peer)
        if peer == "llama.cpp":
            return bench.PeerResult(None, "crashed (SIGSEGV)")
        return bench.PeerResult({1: 50.0})

    assert bench.measure_llama_cpp(crashes_by_default) == ("llama.cpp-plain", bench.PeerResult({1: 50.0}))
    assert asked == ["llama.cpp", "llama.cpp-plain"]
    assert (
        "crashed (SIGSEGV) with its default CPU buffers; measured again without them"
        in capsys.readouterr().out
    )
    assert bench.PEERS["llama.cpp-plain"] == "llama.cpp Q4_1, no AMX/repack buffers"
    asked.clear()
    fine = bench.measure_llama_cpp(lambda peer: asked.append(peer) or bench.PeerResult({1: 80.0}))
    assert fine == ("llama.cpp", bench.PeerResult({1: 80.0})) and asked == ["llama.cpp"]  # no second run
    failed = bench.PeerResult(None, "failed (exit 1): no model")  # only a crash is retried
    assert bench.measure_llama_cpp(lambda peer: failed) == ("llama.cpp", failed)


def test_without_extra_buffers_sets_the_model_params_flag_and_restores_the_bindings() -> None:
    from types import SimpleNamespace

    bench = load_bench()

    def defaults():
        return SimpleNamespace(use_extra_bufts=True, n_gpu_layers=0)

    bindings = SimpleNamespace(llama_model_default_params=defaults)
    with bench.without_extra_buffers(bindings):
        params = bindings.llama_model_default_params()
        assert params.use_extra_bufts is False and params.n_gpu_layers == 0
    assert bindings.llama_model_default_params is defaults
    assert bindings.llama_model_default_params().use_extra_bufts is True
