"""The engine on the real packaged SmolLM2-135M-Instruct (slow tier)."""

from __future__ import annotations

import pytest
import torch

from llmlab.generation import Engine, GenerationConfig
from llmlab.prompting import render_chat

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of France?", "Name three colors of the rainbow.", "What is 12 plus 7?"]


def chat(tokenizer, question: str) -> str:
    return render_chat(tokenizer, [{"role": "user", "content": question}])


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_greedy_matches_transformers_on_smollm2(smollm, precision: str) -> None:
    engine = Engine.from_loaded(smollm, precision=precision)
    cfg = GenerationConfig(greedy=True, max_new_tokens=40)
    prompts = [chat(smollm.tokenizer, q) for q in QUESTIONS]
    ours = engine.generate(prompts, cfg)
    for prompt, completion in zip(prompts, ours, strict=True):
        ids = torch.tensor([engine.encode(prompt)])
        ref = smollm.model.generate(ids, do_sample=False, max_new_tokens=40)[0, ids.shape[1] :].tolist()
        if ref and ref[-1] in engine.eos_ids:
            ref = ref[:-1]
        assert completion.token_ids[: len(ref)] == ref
    assert ours[0].text == "The capital of France is Paris."


def test_int8_default_answers_the_france_question(smollm) -> None:
    engine = Engine.from_loaded(smollm)  # default precision: int8 where supported
    out = engine.generate(
        [chat(smollm.tokenizer, QUESTIONS[0])], GenerationConfig(greedy=True, max_new_tokens=40)
    )
    assert out[0].text.startswith("The capital of France is Paris.")


def test_sampling_is_repeatable_and_streams(smollm) -> None:
    engine = Engine.from_loaded(smollm)
    cfg = GenerationConfig(temperature=0.8, top_p=0.9, seed=11, max_new_tokens=30)
    prompt = chat(smollm.tokenizer, "Write one sentence about the sea.")
    first = engine.generate([prompt], cfg)[0].text
    stream = engine.stream(prompt, cfg)
    assert "".join(stream) == first and len(first) > 10
