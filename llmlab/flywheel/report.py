"""`report.md` of a flywheel run: the split, which questions each step used, the commands, the measures with
their intervals, the curves the commands plotted, before/after examples and the served reply."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from llmlab.flywheel.questions import question_of
from llmlab.flywheel.run import FlywheelConfig, Step, base_adapter
from llmlab.rlhf.rankers import CRITERIA, EXPLAINED

USED = {  # which questions each step sees
    "split": "all (splits them)",
    "base": "none (merges the adapter into the model)",
    "ingest": "none (the documents)",
    "ask": "train and held-out (RAG answers and prompts; the held-out prompts are only evaluated)",
    "generate": "train",
    "rank": "train",
    "pairs": "train",
    "reward": "train (its pairs)",
    "dpo": "train (its pairs)",
    "ppo": "train",
    "eval": "held-out",
    "serve": "held-out (the first one)",
    "report": "-",
}
LABELS = {
    "rougeL": "ROUGE-L F1 vs reference",
    "f1": "token F1 vs reference (SQuAD)",
    "contains_reference": "answer contains the reference",
    "characters": "answer length, characters",
    "reward": "reward model score",
    "ranker_preference": "contains-the-reference rule prefers aligned (+1) / base (−1)",
    "sampled_f1": "sampled answers: mean token F1 vs reference",
    "sampled_contains_reference": "sampled answers: share containing the reference",
}


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _rel(path: Path, run: Path) -> str:
    return str(path.relative_to(run)) if path.is_relative_to(run) else str(path)


def write_report(config: FlywheelConfig, steps: list[Step]) -> Path:
    run = Path(config.out)
    train, heldout = _ids(run / "01-split" / "train.jsonl"), _ids(run / "01-split" / "heldout.jsonl")
    measures = json.loads((run / "10-eval" / "measures.json").read_text(encoding="utf-8"))
    adapter = base_adapter(config)
    lines = [
        "# Flywheel run",
        "",
        f"Questions: `{config.questions}` ({len(train) + len(heldout)} used), documents: `{config.documents}`, "
        f"model `{config.model}`, reward model body `{config.reward_model}`, seed {config.seed}.",
        "",
        (
            f"The base (what is asked, sampled, aligned, evaluated as `base` and served) is `{config.model}` with "
            f"the adapter `{adapter}` merged in (`--adapter {config.adapter}`, step base: "
            "`00-base/model`); `aligned` is that model with the DPO adapter."
            if adapter
            else f"The base is `{config.model}` as it is (`--adapter none`); `aligned` adds the DPO adapter."
        ),
        "",
        "## Split",
        "",
        f'Questions are ordered by sha256("{config.seed}:" + id); the first {len(heldout)} are held out and '
        f"used only by the final evaluation (and the served question); {len(train)} train questions are used "
        "for feedback, ranking, reward training and DPO.",
        "",
        f"- train ({len(train)}): {', '.join(train)}",
        f"- held-out ({len(heldout)}): {', '.join(heldout)}",
        "",
        "## Ranker: a scripted stand-in for people",
        "",
        (
            f"Rule (`{config.ranker}`): {EXPLAINED[config.ranker]}. It reads the "
            "reference answers of the TRAIN questions only (`03-ask/references.jsonl`); its rankings are "
            f"labelled `scripted:{config.ranker}:...`, not human feedback."
            if config.ranker in CRITERIA
            else f"Ranker `{config.ranker}` (its rule is printed in `05-rank/log.txt`), labelled "
            f"`scripted:{config.ranker}`, not human feedback."
        )
        + f" At most {config.max_pairs or 'every'} pairs per question. Replace the ranker with a person: "
        "`llmlab feedback rank 04-generate/completions.jsonl --out 05-rank/ranked.jsonl` (no `--ranker`).",
        "",
        "## Steps",
        "",
        "| step | questions | seconds | commands | artifacts |",
        "|---|---|---|---|---|",
    ]
    for step in steps:
        marker = run / step.folder / "done.json"
        seconds = json.loads(marker.read_text(encoding="utf-8"))["seconds"] if marker.is_file() else ""
        commands = "<br>".join(f"`llmlab {shlex.join(argv)}`" for argv in step.commands) or "(in-process)"
        artifacts = ", ".join(f"[{_rel(Path(w), run)}]({_rel(Path(w), run)})" for w in step.writes)
        lines.append(f"| {step.name} | {USED[step.name]} | {seconds} | {commands} | {artifacts} |")
    lines += ["", *_measures(measures, config), "", *_curves(run), "", *_examples(measures), *_served(run)]
    out = run / "report.md"
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def _measures(result: dict[str, Any], config: FlywheelConfig) -> list[str]:
    sampled = (
        f" The sampled measures average {config.heldout_samples} answers per question sampled at temperature "
        f"{config.temperature} from each model ([10-eval/base-samples.jsonl](10-eval/base-samples.jsonl), "
        "[10-eval/aligned-samples.jsonl](10-eval/aligned-samples.jsonl)): the policy's expected score under "
        "the ranker's rule, which is what DPO optimizes."
        if "sampled_f1" in result["measures"]
        else ""
    )
    lines = [
        "## Base vs aligned on the held-out questions",
        "",
        f"{result['items']} held-out questions, greedy answers (fp32), paired by {result['paired_by']}; "
        f"Δ = aligned − base with its 95% paired-bootstrap interval ({result['resamples']} resamples, seed "
        f"{result['seed']}). Files: [10-eval/base.json](10-eval/base.json), "
        "[10-eval/aligned.json](10-eval/aligned.json), [10-eval/measures.json](10-eval/measures.json)."
        + sampled,
        "",
        "| measure | base | aligned | Δ | 95% CI |",
        "|---|---|---|---|---|",
    ]
    for name, m in result["measures"].items():
        digits = 1 if name == "characters" else 4
        lines.append(f"| {LABELS.get(name, name)} | {m['base']:.{digits}f} | {m['aligned']:.{digits}f} | "
                     f"{m['delta']:+.{digits}f} | [{m['low']:+.{digits}f}, {m['high']:+.{digits}f}] |")  # fmt: skip
    return lines


def _curves(run: Path) -> list[str]:
    lines = ["## Curves", ""]
    for png in sorted([*run.glob("07-reward/rm/*.png"), *run.glob("08-dpo/adapter/*.png"),
                       *run.glob("09-ppo/adapter/*.png")]):  # fmt: skip
        lines += [f"![{_rel(png, run)}]({_rel(png, run)})", ""]
    return lines


def _examples(result: dict[str, Any], count: int = 3) -> list[str]:
    lines = ["## Before and after (first held-out questions)", ""]
    for ex in result["examples"][:count]:
        question = question_of(ex["prompt"])
        lines += [f"**{ex['id']}**: {question} (reference: {' / '.join(ex['references'])})", "",
                  f"- base: {ex['base']!r}", f"- aligned: {ex['aligned']!r}", ""]  # fmt: skip
    return lines


def _served(run: Path) -> list[str]:
    path = run / "11-serve" / "reply.json"
    if not path.is_file():
        return []
    reply = json.loads(path.read_text(encoding="utf-8"))
    question = question_of(reply["question"])
    return ["## Served", "", f"`llmlab serve --adapter` at {reply['url']}, model `{reply['model']}`, asked "
            f"through the {reply['client']} client: {question!r}", "", f"> {reply['reply']}", ""]  # fmt: skip
