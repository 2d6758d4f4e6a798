"""Predictions and references: checking that they pair up.

Every text metric takes `predictions: Sequence[str]` and `references: Sequence[Sequence[str]]`, where
`references[i]` lists the one or more references of `predictions[i]`.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmlab.errors import ConfigError


def check_pairs(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> None:
    """Raise ConfigError unless there is at least one item and every item has at least one reference."""
    if isinstance(predictions, str):
        raise ConfigError("predictions must be a list of strings, got one string")
    if not predictions:
        raise ConfigError("no predictions to score; give at least one item")
    if len(predictions) != len(references):
        raise ConfigError(
            f"{len(predictions)} predictions but {len(references)} reference lists; pair them 1:1"
        )
    for i, refs in enumerate(references):
        if isinstance(refs, str) or not refs:
            raise ConfigError(f"item {i + 1}: references must be a non-empty list of strings, got {refs!r}")
