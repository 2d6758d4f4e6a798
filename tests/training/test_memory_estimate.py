"""The training memory check estimates llmlab's own step (lean MLPs, the loss a chunk of rows at a time), not
transformers' plain step: it covers what a real step keeps alive, and no longer counts whole logits."""

from __future__ import annotations

import torch
import transformers

from llmlab.models import dry_run
from llmlab.training.causal_lm import CHUNK_LOGITS, CausalLMObjective
from llmlab.training.lean import lean_mlps
from llmlab.training.memory import estimate_full_training

BATCH, SEQ = 4, 256


def config() -> transformers.LlamaConfig:
    # A vocabulary large enough that the step's logits (1,024 rows x 32,768) go through the chunked loss.
    return transformers.LlamaConfig(
        hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        vocab_size=32768, max_position_embeddings=512, tie_word_embeddings=True,
    )  # fmt: skip


def real_peak(cfg: transformers.LlamaConfig) -> int:
    """Live bytes at the peak of two real training steps as the trainer runs them (full fine-tuning, fp32)."""
    torch.manual_seed(0)
    model = dry_run.build_model(cfg, torch.float32)
    lean_mlps(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, cfg.vocab_size, (BATCH, SEQ))
    batch = {"input_ids": ids, "targets": ids, "position_ids": torch.arange(SEQ).repeat(BATCH, 1)}
    live = dry_run._LiveBytes()
    model.train()
    for p in model.parameters():
        live.track(p)  # the weights count, as in the estimate
    with dry_run._dispatch_mode(live):
        for _ in range(2):
            CausalLMObjective().loss(model, batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return live.peak


def test_the_estimate_covers_a_real_step_without_whole_logits() -> None:
    cfg = config()
    assert BATCH * SEQ * cfg.vocab_size > CHUNK_LOGITS
    estimate = estimate_full_training(cfg, BATCH, SEQ).total
    real = real_peak(cfg)
    assert real <= estimate, (real, estimate)
    assert estimate <= 1.25 * real, (real, estimate)  # close, not a loose upper bound
    # transformers' plain step (what `models info` shows) holds the whole fp32 logits and their gradient.
    plain = dry_run.training_peak(cfg, "full", BATCH, SEQ).peak_bytes
    logits = BATCH * SEQ * cfg.vocab_size * 4
    assert plain - estimate >= logits, (plain, estimate, logits)
