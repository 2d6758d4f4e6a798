"""Parity tests fail, never skip, when their reference library is missing (issue 8).

A parity test that skips when rouge-score, sacrebleu, nltk, peft, sentence-transformers or transformers is not
installed turns the run green without checking anything. The test modules import their references plainly, so
a missing one is a collection error (the run fails and names the module); these tests keep it that way.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent
REPO = TESTS.parent
# Ways a test could step around a missing module instead of failing.
SKIPS_ON_IMPORT = re.compile(r"importorskip|find_spec\(|except (\(?\w+, )?(ImportError|ModuleNotFoundError)")


def hide(folder: Path, *modules: str) -> dict[str, str]:
    """An environment in which importing any of `modules` fails as if it were not installed."""
    for module in modules:
        (folder / module).mkdir(parents=True)
        (folder / module / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{module}' (hidden by the test)\", name={module!r})\n"
        )
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))


def pytest_run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def test_no_test_skips_on_a_missing_import() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if path != Path(__file__)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if SKIPS_ON_IMPORT.search(line)
    ]
    assert not offenders, "import the reference plainly, so that a missing one fails:\n" + "\n".join(
        offenders
    )


def test_missing_references_fail_collection(tmp_path: Path) -> None:
    """Module-level references (sacrebleu, rouge-score, nltk): the run stops with a collection error."""
    env = hide(tmp_path, "sacrebleu", "rouge_score", "nltk")
    files = ["test_bleu.py", "test_chrf.py", "test_rouge.py", "test_porter.py"]
    done = pytest_run(["--collect-only", *(f"tests/evaluation/{name}" for name in files)], env)
    assert done.returncode != 0, done.stdout
    assert "4 errors" in done.stdout and "skipped" not in done.stdout, done.stdout
    for module in ("sacrebleu", "rouge_score", "nltk"):
        assert f"No module named '{module}' (hidden by the test)" in done.stdout


def test_missing_references_fail_the_tests_that_use_them(tmp_path: Path) -> None:
    """References imported inside a test (peft, sentence-transformers): those tests fail."""
    tests = [
        "tests/rag/test_embedding.py::test_tiny_embedder_matches_sentence_transformers",
        "tests/peft/test_peft_format.py::test_fan_in_fan_out_conv1d_matches_peft",
    ]
    done = pytest_run(tests, hide(tmp_path, "sentence_transformers", "peft"))
    assert done.returncode == 1 and "2 failed" in done.stdout and "skipped" not in done.stdout, done.stdout
    for module in ("sentence_transformers", "peft"):
        assert f"No module named '{module}' (hidden by the test)" in done.stdout
