"""`llmlab pretrain` on the guide and the project's retrieval articles beats the unigram baseline clearly."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]


@pytest.mark.slow
def test_pretrain_beats_the_unigram_baseline(tmp_path, capsys):
    """A tiny Llama (0.9M parameters, 1024-token BPE) trained for 200 steps of 8 × 128 tokens (about 3 passes
    over ~65k tokens): validation perplexity on held-out documents at most 0.6 × the add-one unigram baseline
    of the same tokens (measured on this project's machine: 155 vs 447 at step 200 of a 400-step run; the
    printed line gives this run's numbers)."""
    from llmlab.cli import main

    corpora = [str(REPO / "docs"), str(REPO / "bench" / "data" / "retrieval" / "docs")]
    settings = "--vocab-size 1024 --seq-len 128 --batch-size 8 --max-steps 200 --lr 3e-3 --eval-every 100"
    args = ["pretrain", "--data", corpora[0], "--data", corpora[1], *settings.split()]
    assert main([*args, "--precision", "fp32", "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    perplexity = float(re.search(r"validation loss [\d.]+, perplexity ([\d.]+)", out).group(1))
    unigram = float(re.search(r"unigram baseline perplexity ([\d.]+)", out).group(1))
    print(
        f"validation perplexity {perplexity:.1f}, unigram baseline {unigram:.1f} ({perplexity / unigram:.2f}x)"
    )
    assert perplexity < 0.6 * unigram
