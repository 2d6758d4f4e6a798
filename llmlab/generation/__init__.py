"""Decoding: samplers (logits -> token) and the KV-cache engine (prefill, step, stop, stream, batch)."""

from llmlab.generation.engine import Completion, Engine, GenerationConfig, TextStream
from llmlab.generation.sampling import SamplingParams

__all__ = ["Completion", "Engine", "GenerationConfig", "SamplingParams", "TextStream"]
