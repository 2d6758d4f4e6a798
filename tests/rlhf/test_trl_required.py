"""The trl parity tests fail, never skip, when trl is missing (the check tests/test_reference_libraries.py
makes for the other reference libraries): trl is imported inside each parity test, so hiding it fails them."""

from __future__ import annotations

from pathlib import Path

from test_reference_libraries import hide, pytest_run


def test_missing_trl_fails_the_parity_tests(tmp_path: Path) -> None:
    tests = [
        "tests/rlhf/test_dpo.py::test_matches_trl_dpo_trainer",
        "tests/rlhf/test_reward_loss.py::test_matches_trl_reward_trainer",
    ]
    done = pytest_run(tests, hide(tmp_path, "trl"))
    assert done.returncode == 1 and "skipped" not in done.stdout, done.stdout
    assert " failed" in done.stdout and " passed" not in done.stdout, done.stdout
    assert "No module named 'trl' (hidden by the test)" in done.stdout
