"""`llmlab classify`: label texts with a classifier (a `finetune full --task classify` run, or the adapter of a
`finetune lora --task classify` run on its base model), or score it on a labelled JSONL file (accuracy,
llmlab.evaluation.metrics.accuracy)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from llmlab.cli.output import console, print_json, print_table
from llmlab.errors import ModelError


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="label texts with a fine-tuned classifier, or measure its accuracy on labelled data",
        description="Label each TEXT (or each line of standard input with -) with a sequence classifier: "
        "a run folder of `llmlab finetune full --task classify`, or any Hugging Face checkpoint of "
        "AutoModelForSequenceClassification. With --data FILE.jsonl of {'text', 'label'} records, print the "
        "accuracy (correct / total) and the accuracy of each label instead.",
    )
    parser.add_argument(
        "texts", nargs="*", metavar="TEXT", help='texts to label ("-": read lines from stdin)'
    )
    parser.add_argument("--model", required=True, help="the classifier: a run or checkpoint folder")
    parser.add_argument("--data", metavar="FILE.jsonl", help='labelled records {"text", "label"} to score')
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default: 32)")
    parser.add_argument("--seq-len", type=int, default=512, help="longest text in tokens (default: 512)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: cpu)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run_classify)


def load_classifier(model: str, device: str) -> tuple[Any, Any, list[str]]:
    """(model, tokenizer, label names) of a sequence-classification checkpoint."""
    import warnings

    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from llmlab.models.loading import model_folder, resolve_device

    adapter = _classifier_adapter(model)
    if adapter is not None:
        return _load_with_adapter(adapter, device)
    folder, _, _ = model_folder(model)
    architectures = AutoConfig.from_pretrained(folder).architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelError(
            f"{model} is not a sequence classifier (it is {', '.join(architectures) or 'unknown'}); "
            "train one with: llmlab finetune full --task classify --model ... --labels a,b"
        )
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = AutoModelForSequenceClassification.from_pretrained(folder)
            tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load a classifier from {folder}: {e}") from e
    labels = [clf.config.id2label[i] for i in range(clf.config.num_labels)]
    return clf.to(resolve_device(device)).eval(), tokenizer, labels


def _classifier_adapter(model: str) -> tuple[Path, dict[str, Any]] | None:
    """(adapter folder, its llmlab_adapter.json) when `model` is an adapter trained with --task classify."""
    from llmlab.peft.checkpoint import LLMLAB_CONFIG, resolve_adapter_folder

    if not Path(model).is_dir() or not any(Path(model).glob(f"**/{LLMLAB_CONFIG}")):
        return None
    folder = resolve_adapter_folder(model)
    meta = json.loads((folder / LLMLAB_CONFIG).read_text(encoding="utf-8"))
    if not meta.get("labels"):
        raise ModelError(
            f"{model} is an adapter for a generating model, not a classifier; run it with: llmlab generate "
            f"--model {meta.get('base_model') or 'BASE'} --adapter {model}"
        )
    return folder, meta


def _load_with_adapter(adapter: tuple[Path, dict[str, Any]], device: str) -> tuple[Any, Any, list[str]]:
    """The base model as a classifier with the adapter's labels, then the adapter (LoRA and the trained head)."""
    import warnings

    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    from llmlab.models.loading import model_folder, resolve_device
    from llmlab.peft.checkpoint import load_adapter

    folder, meta = adapter
    labels = [str(label) for label in meta["labels"]]
    base, _, _ = model_folder(meta["base_model"])
    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its report of a newly initialised head: the adapter brings the head
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf = AutoModelForSequenceClassification.from_pretrained(
                base, num_labels=len(labels), id2label=dict(enumerate(labels)),
                label2id={label: i for i, label in enumerate(labels)},
            )  # fmt: skip
            tokenizer = AutoTokenizer.from_pretrained(base)
    finally:
        hf_logging.set_verbosity(verbosity)
    load_adapter(clf, folder)
    return clf.to(resolve_device(device)).eval(), tokenizer, labels


def run_classify(args: argparse.Namespace) -> int:
    from llmlab.errors import ConfigError
    from llmlab.training.classify import predict

    if not args.texts and not args.data:
        raise ConfigError("give texts to label, - to read them from standard input, or --data FILE.jsonl")
    texts = [t for t in args.texts if t != "-"]
    if "-" in args.texts:
        texts += [line.rstrip("\n") for line in sys.stdin if line.strip()]
    records = _records(args.data) if args.data else []
    model, tokenizer, labels = load_classifier(args.model, args.device)
    if records:
        return _score(args, model, tokenizer, labels, records)
    probs = predict(model, tokenizer, texts, args.seq_len, args.batch_size)
    rows = []
    for text, p in zip(texts, probs, strict=True):
        best = max(range(len(labels)), key=lambda i: p[i])
        rows.append({"text": text, "label": labels[best], "probability": round(p[best], 4)})
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            console.print(f"{row['label']}\t{row['probability']:.3f}\t{row['text']}", markup=False)
    return 0


def _records(path: str) -> list[Any]:
    from llmlab.cli.output import err_console
    from llmlab.data.records import load_records

    loaded = load_records(path, "label")
    for problem in loaded.problems[:10]:
        err_console.print(f"skipped {problem}", markup=False, soft_wrap=True)
    return loaded.records


def _score(
    args: argparse.Namespace, model: Any, tokenizer: Any, labels: list[str], records: list[Any]
) -> int:
    from llmlab.evaluation.metrics.accuracy import accuracy_scores
    from llmlab.training.classify import label_index, predict

    gold = [labels[label_index(r, labels)] for r in records]
    probs = predict(model, tokenizer, [r.fields["text"] for r in records], args.seq_len, args.batch_size)
    predicted = [labels[max(range(len(labels)), key=lambda i: p[i])] for p in probs]
    scores = accuracy_scores(predicted, [[g] for g in gold])
    per_label = {
        name: [s for s, g in zip(scores, gold, strict=True) if g == name] for name in labels if name in gold
    }
    result = {
        "model": args.model, "data": args.data, "items": len(scores), "accuracy": sum(scores) / len(scores),
        "per_label": {k: {"items": len(v), "accuracy": sum(v) / len(v)} for k, v in per_label.items()},
    }  # fmt: skip
    if args.json:
        print_json(result)
        return 0
    rows: list[list[Any]] = [["accuracy", round(result["accuracy"], 3), len(scores)]]
    rows += [[f"  {k}", round(v["accuracy"], 3), v["items"]] for k, v in result["per_label"].items()]
    print_table(f"{args.model} on {args.data}", ["metric", "value", "items"], rows)
    return 0
