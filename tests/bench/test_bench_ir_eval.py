"""bench/ir_eval.py caches each split's candidates as JSON (no pickle) and reads them back exactly."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).parents[2] / "bench"


def load_bench():
    sys.path.insert(0, str(BENCH))  # ir_eval imports bench/public_data.py
    try:
        spec = importlib.util.spec_from_file_location("bench_ir_eval", BENCH / "ir_eval.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_prepared_round_trips_through_json():
    ir = load_bench()
    candidates = {"q1": ir.QueryCandidates([(3, 0.5), (7, 0.25)], [(7, 11.5)], {3: 0.0}, {7: 0.125})}
    prepared = ir.Prepared("nfcorpus", "test", {"q1": "vitamin d"}, {"q1": {"d3": 2}}, {3: "d3", 7: "d7"},
                           candidates, 2, 1.5, "cache/nfcorpus.sqlite")  # fmt: skip
    text = prepared.to_json()
    assert '"doc_of": {"3": "d3", "7": "d7"}' in text
    back = ir.Prepared.from_json(text)
    assert back == prepared and isinstance(next(iter(back.doc_of)), int)
    assert back.candidates["q1"].dense == [(3, 0.5), (7, 0.25)]
