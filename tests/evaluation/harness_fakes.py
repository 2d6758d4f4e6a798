"""A scripted engine for harness tests: answers each prompt by the query it ends with, records every batch."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any


class ScriptedEngine:
    """`answers` maps a query text to the output to return; the query is the key found last in the prompt
    (the evaluated item comes after its examples). Unknown prompts fail loudly."""

    def __init__(self, tokenizer: Any, answers: Mapping[str, str], context_length: int = 2048):
        self.tokenizer, self.answers, self.context_length = tokenizer, dict(answers), context_length
        self.batches: list[list[str]] = []
        self.configs: list[Any] = []

    def answer(self, prompt: str) -> str:
        found = [(prompt.rfind(key), key) for key in self.answers if key in prompt]
        assert found, f"no scripted answer for prompt {prompt!r}"
        return self.answers[max(found)[1]]

    def generate(self, prompts: Sequence[str], config: Any) -> list[SimpleNamespace]:
        self.batches.append(list(prompts))
        self.configs.append(config)
        return [SimpleNamespace(text=self.answer(p)) for p in prompts]


def write_jsonl(path: Path, records: Sequence[Mapping[str, Any] | str]) -> Path:
    """One record a line; a str is written as is (to plant bad lines)."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
