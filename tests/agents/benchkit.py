"""Import a bench script (bench/NAME.py) from a test without leaving bench/ on sys.path.

bench/ holds modules such as rag.py and agents.py whose names would shadow the test packages (tests/rag,
tests/agents) for every test collected later, so the module is loaded as `bench_NAME`, and sys.path and the
plain names of the bench modules it imported are put back as they were.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench"


def bench_module(name: str) -> ModuleType:
    """bench/NAME.py, imported as `bench_NAME` (its own bench imports resolved while it loads)."""
    if f"bench_{name}" in sys.modules:
        return sys.modules[f"bench_{name}"]
    path, before = list(sys.path), set(sys.modules)
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    finally:
        sys.path[:] = path
        for added in set(sys.modules) - before:
            if (BENCH / f"{added}.py").is_file():
                del sys.modules[added]
    return module
