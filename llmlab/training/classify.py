"""Sequence classification with an encoder-only model: a label per text (sentiment, topic, intent).

    h = encoder(x)                                       (B, T, H) last hidden states
    p = tanh(W_p h[:, 0] + b_p)                          the [CLS] position through BERT's pooler
    logits = W_c dropout(p) + b_c                        (B, C), C = number of labels
    loss_sum = Σ_i −log softmax(logits_i)[y_i]           summed over the micro-batch's examples (the units)

The head is transformers' own `AutoModelForSequenceClassification` (for BERT/MiniLM: the [CLS] pooler and a
linear layer), so a run folder is an ordinary HF checkpoint: `AutoModelForSequenceClassification
.from_pretrained(RUN)` gives the same predictions, and so does every tool that reads that format; its
`config.json` carries the label names (`id2label`). Why [CLS] and not mean pooling, although MiniLM was
trained as a sentence embedder with mean pooling: a mean-pooling head is not a transformers class for BERT,
so the checkpoint would need llmlab's code to be read back. Full fine-tuning moves the [CLS] representation
quickly; bench/sentiment.py measures the result (and the frozen mean-pooled embedding + logistic regression
baseline next to it).

Texts are encoded like any tokenizer's `__call__` ([CLS] text [SEP] for BERT), cut to --seq-len tokens, and
right-padded per micro-batch with an attention mask. Labels are names (`--labels negative,positive`, or the
sorted names found in the training data); a record may also give the index of its label.
Tests: tests/training/test_classify.py (a tiny BERT learns a synthetic task; the saved folder loads in
transformers and predicts the same), tests/training/test_sentiment_slow.py (MiniLM on restaurant reviews).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from llmlab.data.packing import IGNORE
from llmlab.data.records import Record
from llmlab.errors import ConfigError, DataError
from llmlab.training.objective import Batch, LossOutput

if TYPE_CHECKING:
    from torch import nn


@dataclass
class LabelledText:
    """One classification example."""

    input_ids: list[int]
    label: int
    source: str
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.input_ids)


def parse_labels(text: str) -> list[str]:
    """`negative,positive` -> ["negative", "positive"] (names stripped, no empty or repeated names)."""
    names = [n.strip() for n in text.split(",")] if text.strip() else []
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(
            f"--labels must be distinct comma-separated names such as negative,positive, got {text!r}"
        )
    if len(names) == 1:
        raise ConfigError(f"--labels needs at least two labels, got {text!r}")
    return names


def labels_in(records: Sequence[Record]) -> list[str]:
    """The sorted label names of records (indices are not names: they need --labels)."""
    found = {r.fields["label"] for r in records}
    if any(isinstance(label, int) for label in found):
        raise ConfigError("the data gives labels by index; name them in order with --labels a,b,...")
    if len(found) < 2:
        raise DataError(
            f"the training data has only the label(s) {sorted(found)}; a classifier needs two or more"
        )
    return sorted(found)


def label_index(record: Record, labels: Sequence[str]) -> int:
    """The index of the record's label in `labels`."""
    label = record.fields["label"]
    if isinstance(label, int):
        if not 0 <= label < len(labels):
            raise DataError(
                f"label index {label} is outside 0..{len(labels) - 1} (--labels {','.join(labels)})",
                record.source,
            )
        return label
    if label not in labels:
        raise DataError(
            f"label {label!r} is not one of --labels {','.join(labels)}; add it or fix the record",
            record.source,
        )
    return labels.index(label)


def encode_labelled(tokenizer: Any, record: Record, labels: Sequence[str], seq_len: int) -> LabelledText:
    """The record's text as the tokenizer encodes it (special tokens included), cut to `seq_len` tokens."""
    ids = list(tokenizer(record.fields["text"], add_special_tokens=True)["input_ids"])
    truncated = len(ids) > seq_len
    if truncated:  # keep the closing special token ([SEP]) where the tokenizer adds one
        last = ids[-1] if ids[-1] in tokenizer.all_special_ids else None
        ids = [*ids[: seq_len - 1], last] if last is not None else ids[:seq_len]
    return LabelledText(ids, label_index(record, labels), record.source, truncated)


def collate_labelled(items: Sequence[LabelledText], pad_id: int) -> Batch:
    """input_ids and attention_mask (B, T) right-padded to the longest, labels (B,), the real token count."""
    width = max(len(x) for x in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, x in enumerate(items):
        ids[i, : len(x)] = torch.tensor(x.input_ids)
        mask[i, : len(x)] = 1
    labels = torch.tensor([x.label for x in items], dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels, "tokens": mask.sum()}


def empty_labelled_batch(pad_id: int) -> Batch:
    """A batch that contributes nothing (one pad row whose label is ignored): a process with no example."""
    batch = collate_labelled([LabelledText([pad_id], 0, "")], pad_id)
    batch["labels"][:] = IGNORE
    return batch


class ClassificationObjective:
    """Cross-entropy of the label, summed over examples; reports accuracy (no perplexity)."""

    perplexity = False

    def units(self, batch: Batch) -> int:
        return int((batch["labels"] != IGNORE).sum())

    def tokens(self, batch: Batch) -> int:
        return int(batch["tokens"])

    def loss(self, model: nn.Module, batch: Batch) -> LossOutput:
        import torch.nn.functional as F

        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits  # (B, C)
        labels = batch["labels"]  # (B,)
        loss = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE, reduction="sum")
        keep = labels != IGNORE
        correct = (logits.detach().argmax(-1) == labels)[keep]
        return LossOutput(loss, {"accuracy": float(correct.sum())})


@torch.no_grad()
def predict(
    model: Any, tokenizer: Any, texts: Sequence[str], seq_len: int = 512, batch_size: int = 32
) -> list[list[float]]:
    """Label probabilities (one list of C floats per text), batched, in the order of `texts`."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    model.eval()
    probs: list[list[float]] = []
    for start in range(0, len(texts), batch_size):
        chunk = [Record("label", {"text": t, "label": 0}, "") for t in texts[start : start + batch_size]]
        batch = collate_labelled([encode_labelled(tokenizer, r, ["x"], seq_len) for r in chunk], pad)
        logits = model(
            input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)
        ).logits
        probs += logits.float().softmax(-1).tolist()
    return probs
