"""`llmlab distill`: a smaller student learns one task from a teacher model.

Recipe:
1. Read the prompts ({"prompt", "reference"?} JSONL) and hold out --val-fraction of them by seed.
2. The teacher answers every prompt with the decoding engine (greedy, the prompt rendered as `llmlab
   generate` renders it): sequence-level distillation (Kim and Rush, 2016, arXiv:1606.07947) trains the
   student on these completions as instruction records ({"instruction": prompt, "output": completion}),
   loss on the completion tokens only.
3. When the two tokenizers are the same (vocabulary and chat template; always for a student built from a
   config, which takes the teacher's tokenizer), token-level distillation adds the KL divergence between
   the teacher's and the student's next-token distributions at temperature T (Hinton et al., 2015;
   `llmlab.training.kd_loss`): loss = alpha · T² · KL + (1 − alpha) · cross-entropy on the same tokens.
4. The shared loop trains the student (`DistillObjective` or `CausalLMObjective`); then both models answer
   the held-out prompts and the report gives their parameters, decoding speed and task score: accuracy
   against the references when every held-out prompt has one, else the share of the student's answers equal
   to the teacher's. The report is written to RUN/distill.json.

Learning check: tests/training/test_distill.py (a teacher trained in the test first; a student with about
a quarter of its parameters reaches a stated share of its accuracy).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmlab.data.packing import IGNORE, single_rows, split_by_seed
from llmlab.data.records import Record
from llmlab.data.tokenize import tokenize_record, truncate
from llmlab.errors import ConfigError, DataError
from llmlab.training.batches import RowBatches
from llmlab.training.causal_lm import CausalLMObjective, target_logits
from llmlab.training.checkpoint import FullModelSaver, atomic_write_text, list_checkpoints
from llmlab.training.config import TrainConfig
from llmlab.training.kd_loss import distillation_loss
from llmlab.training.loop import Event, Trainer, TrainResult
from llmlab.training.objective import Batch, LossOutput, Objective
from llmlab.training.run import Preview, check_memory, prepare_out, require_out, seed_everything

if TYPE_CHECKING:
    from torch import nn

LEVELS = ("auto", "sequence", "token")
REPORT = "distill.json"


@dataclass
class DistillConfig(TrainConfig):
    """Knowledge distillation."""

    teacher: str = ""
    """The teacher: a packaged model name, a checkpoint folder or a .gguf file."""
    student: str = ""
    """The student: a model to start from (name or folder), or a new decoder built with the teacher's
    tokenizer: tiny, small, or a YAML file of LlamaConfig fields."""
    prompts: str = ""
    """The task's prompts, JSONL: {"prompt": ..., "reference"?: ...} (references score the held-out part)."""
    level: str = "auto"
    """sequence (train on the teacher's completions), token (also match its next-token distributions; needs
    the same tokenizer), or auto (token when the tokenizers match)."""
    alpha: float = 0.5
    """Token level: weight of the KL term; 1 - alpha weighs the cross-entropy on the teacher's tokens."""
    temperature: float = 2.0
    """Token level: softmax temperature T of both distributions (the KL is scaled by T²)."""
    max_new_tokens: int = 64
    """Longest teacher completion (and student answer when scoring), in tokens."""
    val_fraction: float = 0.1
    """Share of the prompts held out for validation and for the final scores."""
    lr: float = 5e-4
    """Peak learning rate (AdamW); about 1e-3 for a new student, 5e-5 for one that starts from a model."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("teacher", "student", "prompts"):
            if not getattr(self, name):
                raise ConfigError(f"--{name} is required (see llmlab distill --help)")
        if self.level not in LEVELS:
            raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, got {self.level!r}")
        if not 0 <= self.alpha <= 1:
            raise ConfigError(f"--alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise ConfigError(f"--temperature must be above 0, got {self.temperature}; try 2")
        if self.max_new_tokens < 1:
            raise ConfigError(f"--max-new-tokens must be a positive integer, got {self.max_new_tokens}")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(
                f"--val-fraction must be in (0, 1): the held-out prompts give the scores, got {self.val_fraction}"
            )


class DistillObjective:
    """alpha · T² · KL(teacher ‖ student) + (1 − alpha) · cross-entropy, on the target tokens."""

    perplexity = False  # the mixed loss is not a log-likelihood; val_ce is

    def __init__(self, teacher: nn.Module, alpha: float, temperature: float, vocab_size: int):
        self.teacher = teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        self.alpha, self.temperature, self.vocab_size = alpha, temperature, vocab_size

    def units(self, batch: Batch) -> int:
        return int((batch["targets"] != IGNORE).sum())

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"]) if "tokens" in batch else batch["input_ids"].numel()

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        student, y = target_logits(model, batch)  # (N, V_s), (N,)
        with torch.no_grad():
            teacher, _ = target_logits(self.teacher, batch)  # (N, V_t)
        V = min(student.shape[-1], teacher.shape[-1], self.vocab_size)  # padded embeddings cut to the vocab
        loss, kd, ce = distillation_loss(student[:, :V], teacher[:, :V], y, self.alpha, self.temperature)
        correct = float((student.detach()[:, :V].argmax(-1) == y).sum())
        return LossOutput(loss, {"accuracy": correct, "kd": float(kd.detach()), "ce": float(ce.detach())})


@dataclass
class ModelScore:
    name: str
    parameters: int
    tokens_per_s: float
    score: float


@dataclass
class DistillReport:
    level: str
    metric: str
    """accuracy (against the references) or agreement (with the teacher's answers)."""
    items: int
    teacher: ModelScore
    student: ModelScore
    examples: list[dict[str, str]] = field(default_factory=list)
    """The first held-out prompts with both answers."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def read_prompts(path: str) -> list[dict[str, str]]:
    from llmlab.data.jsonl import read_records

    return read_records(path, ("prompt",), ("reference",), kind="prompt record")


def render_prompts(prompts: Sequence[str], tokenizer: Any) -> list[str]:
    """Each prompt as `llmlab generate PROMPT` sends it (the chat template when the model has one)."""
    from llmlab.prompting import FewShotPrompt, render

    return [render(FewShotPrompt(query=p), tokenizer).text for p in prompts]


def answer(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, batch_size: int = 16
) -> tuple[list[str], float]:
    """(greedy answers to the prompts, tokens per second), with the decoding engine."""
    from llmlab.generation import Engine, GenerationConfig

    engine = Engine(model, tokenizer, "decoder-only", precision="fp32")  # exact on every CPU
    config = GenerationConfig(greedy=True, max_new_tokens=max_new_tokens)
    texts, tokens, started = [], 0, time.perf_counter()
    rendered = render_prompts(prompts, tokenizer)
    for start in range(0, len(rendered), batch_size):
        for c in engine.generate(rendered[start : start + batch_size], config):
            texts.append(c.text.strip())
            tokens += c.completion_tokens
    return texts, tokens / max(time.perf_counter() - started, 1e-9)


def _sharded_answers(model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int) -> list[str]:
    """The teacher's answers; under torchrun each process answers its share and all get every answer."""
    from llmlab.training import distributed

    world = distributed.init_from_env()
    if world == 1:
        return answer(model, tokenizer, prompts, max_new_tokens)[0]
    import torch.distributed as dist

    rank = distributed.rank()
    mine = answer(model, tokenizer, list(prompts)[rank::world], max_new_tokens)[0]
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, mine)
    out = [""] * len(prompts)
    for r, part in enumerate(gathered):
        out[r::world] = part
    return out


def same_tokenizer(a: Any, b: Any) -> bool:
    """Same vocabulary, special tokens and chat template: the same text gives the same ids and prompts."""
    return bool(
        a.get_vocab() == b.get_vocab()
        and a.eos_token_id == b.eos_token_id
        and a.bos_token_id == b.bos_token_id
        and getattr(a, "chat_template", None) == getattr(b, "chat_template", None)
    )


def _student(config: DistillConfig, teacher_tokenizer: Any) -> tuple[Any, Any]:
    """(student model, its tokenizer): loaded, or built from a preset / YAML with the teacher's tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    from llmlab.models.loading import model_folder
    from llmlab.models.presets import PRESETS, decoder_config

    if config.student in PRESETS or config.student.endswith((".yaml", ".yml")):
        torch.manual_seed(config.seed)
        return LlamaForCausalLM(
            decoder_config(config.student, teacher_tokenizer, config.seq_len)
        ), teacher_tokenizer
    folder, _, _ = model_folder(config.student)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32), tokenizer


def _rows(
    prompts: Sequence[str], answers: Sequence[str], tokenizer: Any, seq_len: int, stops: set[int]
) -> tuple[list[Any], int]:
    """Training rows of (prompt, teacher answer) pairs; the number of pairs dropped (empty or too long)."""
    examples, dropped = [], 0
    for i, (p, a) in enumerate(zip(prompts, answers, strict=True)):
        if not a:
            dropped += 1
            continue
        record = Record("instruction", {"instruction": p, "output": a}, f"teacher answer {i + 1}")
        cut = truncate(tokenize_record(tokenizer, record, stops), seq_len)
        if cut is None:
            dropped += 1
            continue
        examples.append(cut)
    return single_rows(examples), dropped


def distill(
    config: DistillConfig, on_event: Callable[[Event], None] | None = None, dry_run: bool = False
) -> tuple[Preview, TrainResult | None]:
    """Distil `config.teacher` into `config.student` on the prompts' task; the report goes to RUN/distill.json."""
    from transformers.utils import logging as hf_logging

    from llmlab.models import load_model
    from llmlab.models.loading import resolve_device
    from llmlab.training import distributed

    hf_logging.disable_progress_bar()
    require_out(config, dry_run)
    resume = bool(config.resume)
    if resume and not list_checkpoints(Path(config.out)):
        raise ConfigError(
            f"--resume {config.out}: no checkpoint there yet; start the run again without --resume"
        )
    seed_everything(config.seed)
    records = read_prompts(config.prompts)
    train, held = split_by_seed(records, config.val_fraction, config.seed)
    device = resolve_device(config.device)
    teacher = load_model(config.teacher, device=device)
    if teacher.kind != "decoder-only":
        raise ConfigError(
            f"--teacher {config.teacher} is {teacher.kind}; distill trains decoder-only students"
        )
    student, tokenizer = _student(config, teacher.tokenizer)
    token_level = config.level != "sequence" and same_tokenizer(teacher.tokenizer, tokenizer)
    if config.level == "token" and not token_level:
        raise ConfigError("--level token needs the teacher's tokenizer in the student; use --level sequence")
    level = "token" if token_level else "sequence"
    params = {"teacher": _count(teacher.model), "student": _count(student)}
    stats: dict[str, Any] = {
        "prompts": len(records),
        "train prompts": len(train),
        "held-out prompts": len(held),
        "level": level,
    }
    stats |= {f"{k} parameters": v for k, v in params.items()}
    shown = [
        f"prompt {i}: {p}"
        for i, p in enumerate(render_prompts([r["prompt"] for r in records[:2]], tokenizer), 1)
    ]
    preview = Preview([], stats, shown=shown, tokenizer=tokenizer)
    preview.memory, preview.available = check_memory(student.config, config, device, config.seq_len)
    preview.seq_len = config.seq_len
    if dry_run:
        return preview, None
    prepare_out(config, resume)
    prompts, held_prompts = [r["prompt"] for r in train], [r["prompt"] for r in held]
    answers = _sharded_answers(
        teacher.model, teacher.tokenizer, prompts + held_prompts, config.max_new_tokens
    )
    stops = _stops(student, tokenizer)
    train_rows, dropped = _rows(prompts, answers[: len(prompts)], tokenizer, config.seq_len, stops)
    val_rows, _ = _rows(held_prompts, answers[len(prompts) :], tokenizer, config.seq_len, stops)
    if not train_rows:
        raise DataError(f"{config.prompts}: the teacher gave no usable answer to any training prompt")
    stats |= {"teacher answers dropped": dropped, "loss tokens": sum(r.loss_tokens for r in train_rows)}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train_data = RowBatches(train_rows, config.batch_size, pad, seed=config.seed)
    val_data = RowBatches(val_rows, config.batch_size, pad, shuffle=False) if val_rows else None
    objective: Objective = (
        DistillObjective(teacher.model, config.alpha, config.temperature, len(tokenizer))
        if token_level
        else CausalLMObjective()
    )
    student.to(device)
    if on_event:
        on_event(Event("preview", 0, 0, {"preview": preview}))
    trainer = Trainer(
        student, objective, train_data, config, val_data=val_data, saver=FullModelSaver(student, tokenizer),
        on_event=on_event,
    )  # fmt: skip
    result = trainer.fit(resume=resume)
    if distributed.rank() == 0:
        report = score(
            teacher.model,
            teacher.tokenizer,
            student,
            tokenizer,
            held,
            answers[len(prompts) :],
            config,
            level,
            params,
        )
        atomic_write_text(Path(config.out) / REPORT, json.dumps(report.to_json(), indent=2) + "\n")
    return preview, result


def _count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _stops(model: Any, tokenizer: Any) -> set[int]:
    from llmlab.data.tokenize import stop_token_ids

    return stop_token_ids(tokenizer, model)


def score(
    teacher: Any, teacher_tokenizer: Any, student: Any, tokenizer: Any, held: Sequence[dict[str, str]],
    teacher_answers: Sequence[str], config: DistillConfig, level: str, params: dict[str, int],
) -> DistillReport:  # fmt: skip
    """Both models answer the held-out prompts; accuracy against references, or agreement with the teacher."""
    from llmlab.evaluation.metrics.accuracy import accuracy

    prompts = [r["prompt"] for r in held]
    _, teacher_speed = answer(teacher, teacher_tokenizer, prompts, config.max_new_tokens)
    student_answers, student_speed = answer(student.eval(), tokenizer, prompts, config.max_new_tokens)
    if all("reference" in r for r in held):
        metric, refs = "accuracy", [[r["reference"]] for r in held]
        teacher_score = accuracy(teacher_answers, refs)
    else:
        metric, refs = "agreement", [[a] for a in teacher_answers]
        teacher_score = 1.0
    student_score = accuracy(student_answers, refs)
    examples = [
        {"prompt": p, "teacher": t, "student": s}
        for p, t, s in list(zip(prompts, teacher_answers, student_answers, strict=True))[:3]
    ]
    return DistillReport(
        level, metric, len(prompts),
        ModelScore(config.teacher, params["teacher"], teacher_speed, teacher_score),
        ModelScore(config.student, params["student"], student_speed, student_score),
        examples,
    )  # fmt: skip
