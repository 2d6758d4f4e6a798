"""Build the grounded-answer training data (records, and the chat turns `finetune lora` trains on); see README.md.

Usage:
    python bench/data/grounded-answers/build.py --fairytaleqa FAIRYTALEQA_DIR [--count 1000] [--seed 14]
    python bench/data/grounded-answers/build.py --squad TRAIN_V2_JSON [--count 4000]
    python bench/data/grounded-answers/build.py --chat OUT.jsonl     (from the committed train.jsonl.xz)

The first two write the records to bench/data/grounded-answers/train.jsonl.xz (committed: `make adapter`
trains from it) and the chat turns to `$LLMLAB_DATA/grounded-answers/chat.jsonl`; `--chat` only renders the
committed records. Each record becomes one zero-shot conversation, in the free and the extractive answer
style by turns. Training splits only.
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

from llmlab.data.grounded_qa import chat_example, grounded_examples, read_fairytaleqa, read_squad

OUT = data_dir("grounded-answers", must_exist=False)
RECORDS = Path(__file__).parent / "train.jsonl.xz"
MAX_ANSWER_WORDS = 5
"""FairytaleQA questions with longer answers are left out: a grounded reply quotes a short phrase."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--fairytaleqa", type=Path, help="a checkout of uci-soe/FairytaleQAData (train split)"
    )
    source.add_argument("--squad", type=Path, help="SQuAD 2.0 train-v2.0.json (never the dev split)")
    source.add_argument("--chat", type=Path, help="render the committed records as chat turns into this file")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument(
        "--blocks", type=int, default=3, help="context blocks per example (AnswerConfig.chunks)"
    )
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    if args.chat is not None:
        with lzma.open(RECORDS, "rt", encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        write_chat(records, args.chat)
        print(f"{args.chat}: {len(records)} conversations from {RECORDS.name}")
        return
    if args.squad is not None:
        if "dev" in args.squad.name:
            parser.error(f"{args.squad} looks like a dev split; the adapter trains on training splits only")
        articles, mix = read_squad(args.squad), (0.6, 0.25, 0.15)
    else:
        articles = read_fairytaleqa(args.fairytaleqa, "train", max_answer_words=MAX_ANSWER_WORDS)
        mix = (0.75, 0.0, 0.25)  # no adversarial questions there: unanswerable = the section not retrieved
    examples = grounded_examples(articles, args.count, blocks=args.blocks, mix=mix, seed=args.seed)
    with lzma.open(RECORDS, "wt", encoding="utf-8", preset=9) as f:
        for example in examples:
            f.write(json.dumps(example, ensure_ascii=False) + "\n")
    write_chat(examples, OUT / "chat.jsonl")
    print(f"{RECORDS}: {len(examples)} examples {dict(Counter(e['kind'] for e in examples))}")


def write_chat(records: list[dict], path: Path) -> None:
    """Each record as one training conversation, the free and the extractive style by turns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for i, record in enumerate(records):
            style = ("free", "extractive")[i % 2]
            f.write(json.dumps(chat_example(record, style), ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
