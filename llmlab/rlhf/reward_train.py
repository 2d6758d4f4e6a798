"""`llmlab reward train`: a reward model from preference pairs, on the shared training loop.

Recipe: read the pairs (a bad line stops with `file:line`), hold out --val-fraction of them by seed (or read
--val), encode both sides of every pair (llmlab/rlhf/pair_data.py), put a scalar head on the model's body
(decoders: the last token; encoders: the mean of the tokens; llmlab/rlhf/reward_model.py), optionally LoRA on
the body, then run `Trainer` with `RewardObjective`:

    loss = -mean log sigma(r(x, y_chosen) - r(x, y_rejected))          (llmlab/rlhf/reward.py)

Validation runs before the first step too, so the result carries the held-out pairwise accuracy of the
untrained model (about 0.5: its random head orders pairs by chance) next to the trained one. The run folder's
top holds the best checkpoint's reward model (`llmlab reward score RUN`, `llmlab align ppo --reward RUN`).
Tests: tests/rlhf/test_reward_train.py (>= 90% held-out accuracy on synthetic preferences; resume).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmlab.data.tokenize import Tokenized
from llmlab.errors import ConfigError
from llmlab.rlhf.pair_data import PairBatches, encode_reward_pair
from llmlab.rlhf.recipe import LoraSettings, add_lora, check_pair_inputs, load_pair_split, resume_from
from llmlab.rlhf.reward import REWARD_LOSSES, pairwise_accuracy
from llmlab.training.config import TrainConfig
from llmlab.training.loop import Event, Trainer, TrainResult
from llmlab.training.objective import Batch, LossOutput
from llmlab.training.run import Preview, check_memory, prepare_out, require_out, seed_everything


@dataclass
class RewardConfig(LoraSettings, TrainConfig):
    """Reward-model training on preference pairs."""

    model: str = ""
    """The body of the reward model: a decoder (e.g. smollm2-135m-instruct) or an encoder (e.g. minilm-l6)."""
    pairs: str = ""
    """Preference pairs, JSONL: {"prompt", "chosen", "rejected"} a line (`llmlab feedback pairs` writes them)."""
    val: str = ""
    """Held-out pairs in the same format (default: hold out --val-fraction of --pairs)."""
    val_fraction: float = 0.1
    """Share of --pairs held out to measure pairwise accuracy when --val is not given."""
    loss: str = "pairwise"
    """pairwise: -log sigma(r_chosen - r_rejected); centered: the same + 0.01 (r_chosen + r_rejected)^2."""
    lora: bool = False
    """Train LoRA adapters on the body and the head (default: every weight)."""
    lr: float = 5e-5
    """Peak learning rate (AdamW), reached after the warmup, then cosine decay to --min-lr-ratio of it."""
    seq_len: int = 256
    """Longest text (prompt + completion) in tokens; longer ones are cut (decoders keep the end)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_pair_inputs(
            self.model, self.pairs, self.val_fraction, "the reward model's body, e.g. minilm-l6"
        )
        if self.loss not in REWARD_LOSSES:
            raise ConfigError(f"--loss must be one of {', '.join(REWARD_LOSSES)}, got {self.loss!r}")


class RewardObjective:
    """The pairwise loss summed over a micro-batch's pairs; reports accuracy and the score margin."""

    perplexity = False

    def __init__(self, loss: str = "pairwise"):
        self.loss_fn = REWARD_LOSSES[loss]

    def units(self, batch: Batch) -> int:
        return int(batch["input_ids"].shape[0]) // 2

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"])

    def loss(self, model: Any, batch: Batch) -> LossOutput:
        n = self.units(batch)
        scores = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))  # (2n,)
        chosen, rejected = scores[:n], scores[n:]
        loss = self.loss_fn(chosen, rejected) * n
        metrics = {
            "accuracy": pairwise_accuracy(chosen.detach(), rejected.detach()) * n,
            "margin": float((chosen - rejected).detach().sum()),
        }
        return LossOutput(loss, metrics)


@dataclass
class RewardData:
    train: PairBatches
    val: PairBatches | None
    preview: Preview
    tokenizer: Any
    kind: str
    folder: Any


def prepare_reward_data(config: RewardConfig) -> RewardData:
    from llmlab.rlhf.reward_model import body_files

    folder, tokenizer, kind, _ = body_files(config.model)
    train, val = load_pair_split(config.pairs, config.val, config.val_fraction, config.seed)
    encode = [encode_reward_pair(tokenizer, kind, p, config.seq_len, where) for p, where in train]
    held = [encode_reward_pair(tokenizer, kind, p, config.seq_len, where) for p, where in val]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    batches = PairBatches(encode, config.batch_size, pad, seed=config.seed)
    val_batches = PairBatches(held, config.batch_size, pad, shuffle=False) if held else None
    examples = [
        Tokenized(side.input_ids, [True] * len(side.input_ids), f"{encode[0].source} ({name})")
        for name, side in (("chosen", encode[0].chosen), ("rejected", encode[0].rejected))
    ]
    stats = {
        "kind": kind, "pairs": len(encode), "val_pairs": len(held),
        "tokens": sum(p.tokens for p in encode), "steps_per_epoch": -(-len(batches) // config.grad_accum),
    }  # fmt: skip
    preview = Preview(examples, stats, seq_len=batches.longest, tokenizer=tokenizer)
    return RewardData(batches, val_batches, preview, tokenizer, kind, folder)


def reward_meta(config: RewardConfig, kind: str, lora: dict[str, Any] | None) -> dict[str, Any]:
    from llmlab.rlhf.reward_model import FORMAT, POOLING

    return {
        "format": FORMAT, "version": 1, "base_model": config.model, "kind": kind, "pooling": POOLING[kind],
        "seq_len": config.seq_len, "lora": lora, "loss": config.loss, "pairs": config.pairs,
    }  # fmt: skip


def train_reward(
    config: RewardConfig, on_event: Callable[[Event], None] | None = None, dry_run: bool = False
) -> tuple[Preview, TrainResult | None]:
    """Train a reward model; with `dry_run`, only prepare and report."""
    import torch

    from llmlab.models.loading import resolve_device
    from llmlab.rlhf.reward_model import RewardModel, RewardSaver, load_body

    require_out(config, dry_run)
    resume = resume_from(config) if not dry_run else False
    seed_everything(config.seed)
    data = prepare_reward_data(config)
    device = resolve_device(config.device)
    if not config.lora:
        from llmlab.models.loading import load_config

        hf_config = load_config(config.model)
        data.preview.memory, data.preview.available = check_memory(
            hf_config, config, device, data.preview.seq_len
        )
    if dry_run:
        return data.preview, None
    prepare_out(config, resume)
    body = load_body(data.folder)
    torch.manual_seed(config.seed)
    model = RewardModel(body, data.kind)
    lora = add_lora(body, config) if config.lora else None
    model.to(device)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    data.preview.stats["trainable"] = sum(p.numel() for p in trainable.values())
    meta = reward_meta(config, data.kind, lora)
    saver = RewardSaver(model, list(trainable), data.tokenizer, meta)

    def record(event: Event) -> None:  # held-out accuracy into the files the next checkpoint writes
        if event.kind == "start" and trainer.first_eval:  # a resumed run: restored from the checkpoint
            meta["untrained_val_accuracy"] = trainer.first_eval.get("val_accuracy")
        if event.kind == "eval":
            meta["val_accuracy"] = event.data.get("val_accuracy")
            meta["step"] = event.step
            if event.step == 0:
                meta["untrained_val_accuracy"] = event.data.get("val_accuracy")
        if on_event:
            on_event(event)

    if on_event:
        on_event(Event("preview", 0, 0, {"preview": data.preview}))
    trainer = Trainer(
        model, RewardObjective(config.loss), data.train, config, trainable=trainable, val_data=data.val,
        saver=saver, on_event=record, eval_at_start=True,
    )  # fmt: skip
    return data.preview, trainer.fit(resume=resume)
