"""The engine on a CUDA GPU (skipped without one; test_batcher.py checks device placement on `meta` on every
machine): greedy parity with transformers, rows joining a running batch, seeded sampling with generators on
the GPU, repetition penalty, and int8 refused with a clear message."""

from __future__ import annotations

import pytest
import torch

from llmlab.errors import ConfigError
from llmlab.generation import Engine, GenerationConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PROMPTS = ["The capital of France is", "Hello", "def add(a, b):\n    return"]
GREEDY = GenerationConfig(greedy=True, max_new_tokens=12, ignore_eos=True)


@pytest.fixture(scope="module")
def cuda_model(tiny_model):
    import copy

    return copy.deepcopy(tiny_model).to("cuda")


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_greedy_on_cuda_matches_transformers_and_joins_match_alone(cuda_model, tiny_tok, precision):
    engine = Engine(cuda_model, tiny_tok, precision=precision)
    for prompt in PROMPTS:
        ids = engine.encode(prompt)
        ref = cuda_model.generate(
            torch.tensor([ids], device="cuda"), do_sample=False, max_new_tokens=12, min_new_tokens=12,
            pad_token_id=tiny_tok.pad_token_id,
        )  # fmt: skip
        assert engine.generate([prompt], GREEDY)[0].token_ids == ref[0, len(ids) :].tolist()
    batcher = engine.batcher()
    rows = [batcher.add(PROMPTS[0], GREEDY)]
    batcher.step()
    rows.append(batcher.add(PROMPTS[2], GenerationConfig(greedy=True, max_new_tokens=4, ignore_eos=True)))
    batcher.step()
    rows.append(batcher.add(PROMPTS[1], GREEDY))
    for _ in batcher.run():
        pass
    assert [r.ids for r in rows] == [
        engine.generate([p], c)[0].token_ids
        for p, c in zip([PROMPTS[0], PROMPTS[2], PROMPTS[1]], [r.config for r in rows], strict=True)
    ]


def test_seeded_sampling_and_penalty_on_cuda(cuda_model, tiny_tok):
    engine = Engine(cuda_model, tiny_tok, precision="fp32")
    cfg = GenerationConfig(
        temperature=1.0,
        top_p=0.9,
        top_k=50,
        repetition_penalty=1.2,
        seed=3,
        max_new_tokens=12,
        ignore_eos=True,
    )
    batch = engine.generate(PROMPTS, cfg)
    again = engine.generate(PROMPTS, cfg)
    assert [c.token_ids for c in batch] == [c.token_ids for c in again]
    for i, prompt in enumerate(PROMPTS):
        alone = GenerationConfig(**{**vars(cfg), "seed": 3 + i})
        assert engine.generate([prompt], alone)[0].token_ids == batch[i].token_ids


def test_bf16_runs_and_int8_is_refused_on_cuda(cuda_model, tiny_tok):
    out = Engine(cuda_model, tiny_tok, precision="bf16").generate(PROMPTS, GREEDY)
    assert all(len(c.token_ids) == 12 for c in out)
    with pytest.raises(ConfigError, match="--precision int8 runs on the CPU only"):
        Engine(cuda_model, tiny_tok, precision="int8")
