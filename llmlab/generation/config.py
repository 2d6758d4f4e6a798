"""Decoding settings as plain dataclasses (no torch import, so the CLI can build its flags instantly)."""

from __future__ import annotations

from dataclasses import dataclass, field

from llmlab.errors import ConfigError


@dataclass(frozen=True)
class SamplingParams:
    """How the next token is chosen from the logits."""

    temperature: float = 1.0
    """Divide logits by this before sampling; 0 means greedy (argmax)."""
    top_k: int = 0
    """Keep only the k most likely tokens; 0 disables."""
    top_p: float = 1.0
    """Keep the smallest set of tokens whose probabilities sum to at least p; 1 disables."""
    min_p: float = 0.0
    """Drop tokens whose probability is below min_p times the top token's; 0 disables."""
    repetition_penalty: float = 1.0
    """Penalise tokens already in the prompt or the output (> 1 discourages repeats); 1 disables."""
    greedy: bool = False
    """Always pick the most likely token (same as temperature 0)."""

    def __post_init__(self) -> None:
        if not self.temperature >= 0:
            raise ConfigError(
                f"--temperature must be >= 0, got {self.temperature}; use 0 for greedy decoding"
            )
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ConfigError(f"--top-k must be >= 0 (0 disables it), got {self.top_k}")
        if not 0 <= self.min_p <= 1:
            raise ConfigError(f"--min-p must be in [0, 1], got {self.min_p}")
        if not self.repetition_penalty > 0:
            raise ConfigError(f"--repetition-penalty must be > 0, got {self.repetition_penalty}")

    @property
    def is_greedy(self) -> bool:
        return self.greedy or self.temperature == 0


@dataclass
class GenerationConfig:
    """Decoding settings shared by the library, `llmlab generate` and `llmlab chat`."""

    max_new_tokens: int = 256
    """Stop after this many generated tokens."""
    temperature: float = 0.7
    """Sampling temperature; 0 means greedy. Lower is more focused."""
    top_k: int = 0
    """Sample only from the k most likely tokens; 0 disables."""
    top_p: float = 0.9
    """Nucleus sampling: the smallest set of tokens with this much probability; 1 disables."""
    min_p: float = 0.0
    """Drop tokens less likely than min_p times the most likely one; 0 disables."""
    repetition_penalty: float = 1.0
    """Above 1 discourages repeating tokens already seen; 1 disables."""
    greedy: bool = False
    """Always take the most likely token (deterministic; ignores temperature, top-k, top-p)."""
    seed: int | None = None
    """Seed for sampling; the same seed gives the same text."""
    stop: list[str] = field(default_factory=list)
    """Stop when the output contains this string (not included in the output)."""
    stop_token_ids: list[int] = field(default_factory=list)
    """Extra token ids that end generation (the model's end-of-sequence tokens always do)."""
    ignore_eos: bool = False
    """Keep going past end-of-sequence tokens (for benchmarks)."""
    logprobs: bool = False
    """Return each generated token's log-probability under the model (before temperature and filters)."""
    prompt_lookup: bool | None = None
    """Greedy only: draft tokens by copying them from the prompt and check them all in one forward pass
    (faster when the answer quotes the prompt). Unset: on where the text stays token-identical (fp32
    weights); --prompt-lookup also with int8/bf16 weights, where a token can change where two logits
    nearly tie; --no-prompt-lookup turns it off."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}")
        self.sampling()  # validates the sampling knobs

    def sampling(self) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            min_p=self.min_p,
            repetition_penalty=self.repetition_penalty,
            greedy=self.greedy,
        )
