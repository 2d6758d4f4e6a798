"""Write the BFCL v4 subset that bench/agents.py scores into the data cache (see README.md).

Reads the Berkeley Function Calling Leaderboard's question and possible-answer files for four categories
(simple_python, multiple, parallel, irrelevance) from a snapshot of the gorilla repository, given as its git
folder (a bare mirror works: files are read with `git show COMMIT:PATH`), keeps a seeded random sample of
each category and writes, into `$LLMLAB_DATA/bfcl` (default `~/.cache/llmlab/data/bfcl`):

    BFCL_v4_{category}.jsonl          the sampled items, as BFCL stores them ({"id", "question", "function"})
    possible_answer_{category}.jsonl  their accepted answers ({"id", "ground_truth"}; none for irrelevance)
    source.json                       the commit, the seed and the item ids, to check a rebuild against

Usage: python bench/data/bfcl/build.py GORILLA_GIT_DIR [--commit SHA] [--per-category 20]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

COMMIT = "6ea57973c7a6097fd7c5915698c54c17c5b1b6c8"  # the snapshot the numbers in docs/agents.md come from
DATA = "berkeley-function-call-leaderboard/bfcl_eval/data"
CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")
SEED = 0


def read_jsonl(git_dir: Path, commit: str, path: str) -> list[dict[str, Any]]:
    """The records of one JSON-lines file at `commit` of the repository in `git_dir`."""
    done = subprocess.run(
        ["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"{git_dir}: cannot read {commit}:{path}: {done.stderr.strip()}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def draw(items: list[dict[str, Any]], count: int, seed: int) -> list[dict[str, Any]]:
    """`count` items drawn without replacement with random.Random(seed), kept in the file's order."""
    if count > len(items):
        raise SystemExit(f"--per-category {count} is more than the {len(items)} items of the category")
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), count))]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "git_dir", type=Path, help="git folder of a gorilla snapshot (github:ShishirPatil/gorilla)"
    )
    parser.add_argument(
        "--commit", default=COMMIT, help="the commit to read (default: the one the docs quote)"
    )
    parser.add_argument("--per-category", type=int, default=20, help="items drawn from each category")
    args = parser.parse_args()
    out = data_dir("bfcl", must_exist=False)
    out.mkdir(parents=True, exist_ok=True)
    ids: dict[str, list[str]] = {}
    for category in CATEGORIES:
        items = draw(
            read_jsonl(args.git_dir, args.commit, f"{DATA}/BFCL_v4_{category}.json"), args.per_category, SEED
        )
        write_jsonl(out / f"BFCL_v4_{category}.jsonl", items)
        ids[category] = [item["id"] for item in items]
        if category != "irrelevance":
            wanted = set(ids[category])
            answers = read_jsonl(args.git_dir, args.commit, f"{DATA}/possible_answer/BFCL_v4_{category}.json")
            kept = [a for a in answers if a["id"] in wanted]
            if len(kept) != len(wanted):
                raise SystemExit(
                    f"{category}: {len(wanted) - len(kept)} sampled items have no possible answer"
                )
            write_jsonl(out / f"possible_answer_{category}.jsonl", kept)
    source = {"repo": "github:ShishirPatil/gorilla", "commit": args.commit, "seed": SEED, "ids": ids}
    (out / "source.json").write_text(json.dumps(source, indent=1) + "\n", encoding="utf-8")
    print(f"{out}: {', '.join(f'{len(v)} {k}' for k, v in ids.items())} (commit {args.commit[:10]})")


if __name__ == "__main__":
    main()
