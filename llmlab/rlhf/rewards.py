"""What PPO maximises: a reward function of (prompt, completion) texts, named by `--reward`.

    RUN_FOLDER            a reward model trained by `llmlab reward train` (llmlab/rlhf/reward_model.py)
    contains:WORD         1 when the completion contains WORD (any case, as a whole word), else 0
    shorter:N             1 - min(words, N) / N: fewer words is better, 0 from N words on
    python:MODULE:NAME    any function f(prompts: list[str], completions: list[str]) -> list[float]

The scripted rewards are stand-ins with a stated rule, for tests, demos and the whole-loop walkthrough, as
the scripted rankers of llmlab/rlhf/rankers.py are for rankings. A reward that returns NaN or infinity for a
completion is not an error: PPO leaves that completion out of the update and reports it.
Tests: tests/rlhf/test_ppo_train.py.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from llmlab.errors import ConfigError

RewardFn = Callable[[Sequence[str], Sequence[str]], list[float]]


def contains(word: str) -> RewardFn:
    """1.0 for completions containing `word` (case-insensitive, whole word), else 0.0."""
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.IGNORECASE)

    def reward(prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        return [float(bool(pattern.search(c))) for c in completions]

    return reward


def shorter(limit: int) -> RewardFn:
    """1 - min(words, limit) / limit: an empty completion scores 1, one of `limit` words or more 0."""

    def reward(prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        return [1.0 - min(len(c.split()), limit) / limit for c in completions]

    return reward


def python_function(spec: str) -> RewardFn:
    """The function MODULE:NAME (importable from the current folder or the installed packages)."""
    import sys

    module_name, _, name = spec.partition(":")
    if "" not in sys.path:
        sys.path.insert(0, "")  # the current folder, as `python -m` would
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(f"--reward python:{spec}: cannot import {module_name!r} ({e})") from e
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"--reward python:{spec}: {module_name} has no function {name!r}")
    reward: RewardFn = function
    return reward


def check_reward(spec: str) -> str:
    """The kind of a --reward value (contains, shorter, python or model), checked without loading anything.

    Raises:
        ConfigError: an unknown scripted reward, a malformed argument, or a path that is not a folder.
    """
    kind, sep, arg = spec.partition(":")
    if sep and kind == "contains":
        if not arg.strip():
            raise ConfigError("--reward contains: needs a word, e.g. --reward contains:Paris")
        return kind
    if sep and kind == "shorter":
        if not arg.isdigit() or int(arg) < 1:
            raise ConfigError(f"--reward shorter:N needs a positive whole number of words, got {arg!r}")
        return kind
    if sep and kind == "python":
        if arg.count(":") != 1:
            raise ConfigError(f"--reward {spec}: write python:MODULE:FUNCTION, e.g. python:my_rewards:score")
        return kind
    if Path(spec).is_dir():
        return "model"
    raise ConfigError(
        f"--reward {spec!r} is neither a reward model folder nor a scripted reward; give the --out folder of "
        "`llmlab reward train`, contains:WORD, shorter:N or python:MODULE:FUNCTION"
    )


def make_reward(spec: str, device: str = "cpu") -> tuple[RewardFn, str]:
    """(reward function, a description) for a --reward value (see `check_reward`)."""
    kind = check_reward(spec)
    arg = spec.partition(":")[2].strip()
    if kind == "contains":
        return contains(arg), f"scripted: 1 if the completion contains {arg!r}, else 0"
    if kind == "shorter":
        return shorter(int(arg)), f"scripted: 1 - min(words, {arg}) / {arg}"
    if kind == "python":
        return python_function(arg), f"python function {arg}"
    from llmlab.rlhf.reward_model import load_reward_model

    scorer = load_reward_model(spec, device=device)
    return scorer, f"reward model {spec} ({scorer.meta['base_model']})"
