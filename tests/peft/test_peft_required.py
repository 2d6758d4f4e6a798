"""The peft parity tests fail, never skip, when the peft library is missing: LoRA's forward, prompt tuning's
forward, selective norms (LN tuning), and adapter files both ways. Bottleneck adapters
have no counterpart in peft, so none of their tests needs it.

Runs a handful of them in a child pytest with `peft` hidden (`hide` of tests/test_reference_libraries.py).
"""

from __future__ import annotations

from pathlib import Path

from test_reference_libraries import hide, pytest_run

PARITY = [
    "tests/peft/test_lora.py::test_lora_matches_peft[qv-decoder-only]",
    "tests/peft/test_prompt_tuning.py::test_forward_matches_peft[decoder-only]",
    "tests/peft/test_selective.py::test_norms_match_peft_ln_tuning[decoder-only]",
    "tests/peft/test_adapter_checkpoint.py::test_saved_here_loads_in_peft[decoder-only-lora]",
    "tests/peft/test_adapter_checkpoint.py::test_made_by_peft_loads_here[decoder-only-lora]",
]


def test_peft_parity_tests_fail_without_peft(tmp_path: Path) -> None:
    done = pytest_run(PARITY, hide(tmp_path, "peft"))
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 1 and summary.startswith(f"{len(PARITY)} failed"), done.stdout
    assert "passed" not in summary and "skipped" not in summary, done.stdout
    assert "No module named 'peft' (hidden by the test)" in done.stdout, done.stdout
