"""A scripted engine for the agent tests: it writes what a test says the model intends, through the same
`generate(prompts, config, allowed_tokens=...)` interface as llmlab's Engine, honouring the token masks.

`intend(prompt) -> str` is the reply the model wants to give to a prompt. When the prompt already ends with
the start of that reply (the caller puts `<tool_call>\\n{"name": ...` in the prompt), the engine continues
from there. Wherever a mask forbids the intended token, it takes the lowest allowed id instead, so a test
sees the constraint at work. `score(prompt, token)` gives the log-probability reported for each token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

from llmlab.generation.engine import Completion


class ScriptedEngine:
    def __init__(
        self,
        tokenizer: Any,
        intend: Callable[[str], str],
        score: Callable[[str, int], float] | None = None,
    ):
        self.tokenizer = tokenizer
        self.intend = intend
        self.score = score or (lambda prompt, token: -1.0)
        self.eos_ids = {tokenizer.eos_token_id}
        self.model = SimpleNamespace(config=SimpleNamespace(vocab_size=len(tokenizer)))
        self.prompts: list[str] = []

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        if not isinstance(prompt, str):
            return list(prompt)
        return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])

    def generate(
        self, prompts: Sequence[str] | str, config: Any = None, *, allowed_tokens: Any = None
    ) -> list[Completion]:
        batch = [prompts] if isinstance(prompts, str) else list(prompts)
        return [self._one(r, p, config, allowed_tokens) for r, p in enumerate(batch)]

    def _one(self, row: int, prompt: str, config: Any, hook: Any) -> Completion:
        self.prompts.append(prompt)
        wanted = self._continuation(prompt, self.intend(prompt))
        intended = self.encode(wanted)
        eos = self.tokenizer.eos_token_id
        ids: list[int] = []
        logprobs: list[float] = []
        for step in range(config.max_new_tokens):
            token = intended[step] if step < len(intended) else eos
            if hook is not None:
                mask = hook(row, ids)
                if mask is not None and not bool(mask[token]):
                    token = int(mask.nonzero()[0, 0])
            if token == eos:
                return self._done(prompt, ids, logprobs, config, "stop")
            ids.append(token)
            logprobs.append(self.score(prompt, token))
            text = self.tokenizer.decode(ids)
            for stop in config.stop:
                if stop in text:
                    return self._done(prompt, ids, logprobs, config, "stop", cut=text.index(stop))
        return self._done(prompt, ids, logprobs, config, "length")

    def _done(
        self,
        prompt: str,
        ids: list[int],
        logprobs: list[float],
        config: Any,
        reason: str,
        cut: int | None = None,
    ) -> Completion:
        text = self.tokenizer.decode(ids)
        text = text if cut is None else text[:cut]
        return Completion(text, ids, reason, len(self.encode(prompt)), logprobs if config.logprobs else None)  # type: ignore[arg-type]

    @staticmethod
    def _continuation(prompt: str, reply: str) -> str:
        """What is left of `reply` when the prompt already ends with its beginning."""
        for k in range(len(reply), 0, -1):
            if prompt.endswith(reply[:k]):
                return reply[k:]
        return reply
