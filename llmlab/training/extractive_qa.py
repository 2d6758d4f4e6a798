"""Extractive question answering with an encoder (a span reader): BERT's SQuAD head (Devlin et al., 2019,
arXiv:1810.04805, section 4.2) with SQuAD 2.0's no-answer convention (Rajpurkar et al., 2018, arXiv:1806.03822).

    x = [CLS] question [SEP] context window [SEP]        windows of --seq-len tokens, `stride` tokens overlap
    s, e = W h + b                                        (B, T) start and end logits, W: (2, H) (`qa_outputs`)
    loss_sum = Σ_i (−log softmax(s_i)[a_i] − log softmax(e_i)[b_i]) / 2     a_i, b_i: the answer's first and
                                                          last token; 0 ([CLS]) when the window has no answer
    answer = argmax_{a <= b < a + max_tokens, a, b in the context} s_a + e_b, kept when it beats the
             no-answer score s_0 + e_0 by `margin` (SQuAD 2.0's null-score threshold)

The model is transformers' own `AutoModelForQuestionAnswering` (BertForQuestionAnswering for MiniLM), so a
run folder is an ordinary HF checkpoint and a LoRA run saves `qa_outputs` next to the adapter (peft's
QUESTION_ANS modules_to_save). Windows follow transformers' question-answering example (`run_qa.py`):
truncation="only_second", `return_overflowing_tokens`, offsets to map tokens back to characters. A window
that does not hold the whole answer is trained to point at [CLS], as an unanswerable question is.
Records: {"question", "context", "answer": text or null, "answer_start": char offset (optional: the first
occurrence of the answer otherwise)}.
Parity: tests/training/test_extractive_qa.py::test_loss_matches_bert_for_question_answering.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmlab.errors import DataError
from llmlab.training.objective import Batch, LossOutput

if TYPE_CHECKING:
    from torch import nn

DOC_STRIDE = 128
"""Tokens two consecutive context windows share (transformers' run_qa.py default), at most half a window."""


@dataclass
class QARecord:
    question: str
    context: str
    answer: str | None
    answer_start: int | None
    source: str


@dataclass
class SpanWindow:
    """One training window: token ids, segment ids and the answer's token positions (0, 0: no answer)."""

    input_ids: list[int]
    token_type_ids: list[int]
    start: int
    end: int
    source: str

    def __len__(self) -> int:
        return len(self.input_ids)


def _problem(where: str, record: Any) -> str | None:
    if not isinstance(record, dict):
        return 'expected a JSON object {"question", "context", "answer", "answer_start"}'
    for key in ("question", "context"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            return f'"{key}" must be a non-empty string'
    if "answer" not in record:
        return '"answer" is missing; give the answer text, or null when the context does not answer'
    answer, start = record["answer"], record.get("answer_start")
    if answer is None:
        return None
    if not isinstance(answer, str) or not answer.strip():
        return '"answer" must be a non-empty string or null'
    if start is not None and (isinstance(start, bool) or not isinstance(start, int)):
        return f'"answer_start" must be a character offset (an integer), got {start!r}'
    at = record["context"].find(answer) if start is None else start
    if at < 0 or record["context"][at : at + len(answer)] != answer:
        where_ = "" if start is None else f" at answer_start {start}"
        return f'"answer" {answer!r} is not in "context"{where_}; fix the offset or the answer'
    return None


def load_qa_records(path: str | Path) -> tuple[list[QARecord], list[str]]:
    """The good records of a JSONL file and a `file:line: problem` for each bad line.

    Raises:
        DataError: no such file, or not one good record in it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            "no such file; write JSONL records {'question', 'context', 'answer'} there", str(path)
        )
    records, problems = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as e:
            problems.append(f"{where}: invalid JSON ({e.msg}); write one JSON object per line")
            continue
        problem = _problem(where, raw)
        if problem:
            problems.append(f"{where}: {problem}")
            continue
        answer, start = raw["answer"], raw.get("answer_start")
        if answer is not None and start is None:
            start = raw["context"].find(answer)
        records.append(QARecord(raw["question"], raw["context"], answer, start, where))
    if not records:
        shown = "; ".join(problems[:3]) or "the file is empty"
        raise DataError(f"no extractive-qa record ({shown})", str(path))
    return records, problems


def encode_windows(
    tokenizer: Any, question: str, context: str, seq_len: int, stride: int = DOC_STRIDE
) -> Any:
    """The tokenizer's windows of (question, context): input_ids, token_type_ids, offset_mapping and
    sequence ids per window (context tokens have sequence id 1)."""
    stride = min(stride, seq_len // 4)
    return tokenizer(
        question, context, truncation="only_second", max_length=seq_len, stride=stride,
        return_overflowing_tokens=True, return_offsets_mapping=True, padding=False,
    )  # fmt: skip


def encode_qa(tokenizer: Any, record: QARecord, seq_len: int, stride: int = DOC_STRIDE) -> list[SpanWindow]:
    """The record's training windows; the answer's first and last token where a window holds all of it."""
    enc = encode_windows(tokenizer, record.question, record.context, seq_len, stride)
    windows = []
    for w in range(len(enc["input_ids"])):
        ids, offsets, seq = enc["input_ids"][w], enc["offset_mapping"][w], enc.sequence_ids(w)
        start = end = 0
        if record.answer is not None and record.answer_start is not None:
            lo, hi = record.answer_start, record.answer_start + len(record.answer)
            inside = [i for i, s in enumerate(seq) if s == 1]
            if inside and offsets[inside[0]][0] <= lo and offsets[inside[-1]][1] >= hi:
                start = next(i for i in inside if offsets[i][1] > lo)
                end = next(i for i in reversed(inside) if offsets[i][0] < hi)
        types = enc["token_type_ids"][w] if "token_type_ids" in enc else [0] * len(ids)
        windows.append(SpanWindow(list(ids), list(types), start, end, record.source))
    return windows


def collate_windows(items: Sequence[SpanWindow], pad_id: int) -> Batch:
    """input_ids, token_type_ids, attention_mask (B, T) right-padded; start/end_positions (B,)."""
    width = max(len(x) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    types = torch.zeros((len(items), width), dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, x in enumerate(items):
        ids[i, : len(x)] = torch.tensor(x.input_ids)
        types[i, : len(x)] = torch.tensor(x.token_type_ids)
        mask[i, : len(x)] = 1
    return {
        "input_ids": ids, "token_type_ids": types, "attention_mask": mask,
        "start_positions": torch.tensor([x.start for x in items]),
        "end_positions": torch.tensor([x.end for x in items]), "tokens": mask.sum(),
    }  # fmt: skip


class ExtractiveQAObjective:
    """Start and end cross-entropy, averaged per window and summed over windows (the units); reports the
    exact-span accuracy (start and end both right, [CLS] included)."""

    perplexity = False

    def units(self, batch: Batch) -> int:
        return int(batch["start_positions"].numel())

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"])

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        import torch.nn.functional as F

        out = model(
            input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"],
            attention_mask=batch["attention_mask"],
        )  # fmt: skip
        start, end = out.start_logits.float(), out.end_logits.float()  # (B, T) each
        a, b = batch["start_positions"], batch["end_positions"]
        loss = (F.cross_entropy(start, a, reduction="sum") + F.cross_entropy(end, b, reduction="sum")) / 2
        right = (start.detach().argmax(-1) == a) & (end.detach().argmax(-1) == b)
        return LossOutput(loss, {"accuracy": float(right.sum())})


# ---- decoding: the best span of a window, and of several ----------------------------------------------------


@dataclass
class SpanChoice:
    """The best span of a window: its score s_a + e_b, characters [start, end) of the context, and the
    window's no-answer score s_0 + e_0."""

    score: float
    start: int
    end: int
    null_score: float

    @property
    def margin(self) -> float:
        return self.score - self.null_score


def best_span(
    start_logits: Sequence[float],
    end_logits: Sequence[float],
    offsets: Sequence[tuple[int, int]],
    context_mask: Sequence[bool],
    max_tokens: int = 30,
) -> SpanChoice | None:
    """The highest s_a + e_b with a <= b < a + max_tokens, both context tokens, mapped to characters through
    `offsets`; None when the window has no context token."""
    s = torch.as_tensor(start_logits, dtype=torch.float32)
    e = torch.as_tensor(end_logits, dtype=torch.float32)
    keep = torch.as_tensor(context_mask, dtype=torch.bool)
    if not bool(keep.any()):
        return None
    T = s.numel()
    scores = s[:, None] + e[None, :]  # (T, T): start a, end b
    a, b = torch.arange(T)[:, None], torch.arange(T)[None, :]
    allowed = (b >= a) & (b < a + max_tokens) & keep[:, None] & keep[None, :]
    scores = scores.masked_fill(~allowed, -float("inf"))
    flat = int(scores.argmax())
    first, last = divmod(flat, T)
    return SpanChoice(
        float(scores[first, last]), int(offsets[first][0]), int(offsets[last][1]), float(s[0] + e[0])
    )


@torch.inference_mode()
def read_spans(
    model: Any,
    tokenizer: Any,
    question: str,
    contexts: Sequence[str],
    seq_len: int = 384,
    max_tokens: int = 30,
    batch_size: int = 16,
) -> list[SpanChoice | None]:
    """For each context, its best span over all its windows (the highest score) and its no-answer score (the
    lowest over its windows, as transformers' postprocess_qa_predictions takes the minimum null score)."""
    windows: list[tuple[int, list[int], list[int], list[tuple[int, int]], list[bool]]] = []
    for c, context in enumerate(contexts):
        enc = encode_windows(tokenizer, question, context, seq_len)
        for w in range(len(enc["input_ids"])):
            seq = enc.sequence_ids(w)
            types = enc["token_type_ids"][w] if "token_type_ids" in enc else [0] * len(seq)
            windows.append((c, enc["input_ids"][w], types, enc["offset_mapping"][w], [s == 1 for s in seq]))
    best: list[SpanChoice | None] = [None] * len(contexts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    model.eval()
    for lo in range(0, len(windows), batch_size):
        part = windows[lo : lo + batch_size]
        batch = collate_windows([SpanWindow(ids, types, 0, 0, "") for _, ids, types, _, _ in part], pad)
        out = model(**{k: batch[k].to(device) for k in ("input_ids", "token_type_ids", "attention_mask")})
        for i, (c, ids, _, offsets, mask) in enumerate(part):
            n = len(ids)
            got = best_span(out.start_logits[i, :n].tolist(), out.end_logits[i, :n].tolist(), offsets, mask,
                            max_tokens)  # fmt: skip
            if got is None:
                continue
            old = best[c]
            if old is None:
                best[c] = got
                continue
            null = min(old.null_score, got.null_score)
            kept = got if got.score > old.score else old
            best[c] = SpanChoice(kept.score, kept.start, kept.end, null)
    return best
