"""Evaluation results as table rows (for the terminal) and Markdown (for reports and pull requests)."""

from __future__ import annotations

from collections.abc import Sequence

from llmlab.evaluation.compare import Comparison
from llmlab.evaluation.harness import EvalRun


def number(value: float, signed: bool = False) -> str:
    """4 decimals for scores in [0, 1], 2 for 0-100 scales (BLEU, chrF)."""
    digits = 4 if abs(value) < 10 else 2
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def run_title(run: EvalRun) -> str:
    adapter = f" + adapter {run.adapter}" if run.adapter else ""
    return f"{run.task}: {run.model}{adapter}, {run.shots}-shot, {len(run.items)} items from {run.data}"


def run_rows(run: EvalRun) -> list[list[str]]:
    """[metric, value] for each metric."""
    return [[metric, number(value)] for metric, value in run.metrics.items()]


def run_notes(run: EvalRun) -> list[str]:
    """Facts a reader needs next to the scores (unlabelled outputs, dropped examples, decoding)."""
    notes = []
    if run.labels:
        unmatched = sum(1 for item in run.items if not item.prediction)
        notes.append(
            f"{unmatched} of {len(run.items)} outputs named none of the labels ({', '.join(run.labels)})"
        )
    short = [item for item in run.items if item.shots < run.shots]
    if short:
        notes.append(f"{len(short)} prompts kept fewer than {run.shots} examples to fit the context window")
    gen = run.generation
    mode = (
        "greedy"
        if gen.get("greedy") or gen.get("temperature") == 0
        else f"sampled (T={gen.get('temperature')})"
    )
    notes.append(f"decoding: {mode}, max_new_tokens={gen.get('max_new_tokens')}")
    return notes


def comparison_columns(comparison: Comparison) -> list[str]:
    level = f"{comparison.confidence:.0%} CI"
    columns = ["metric", comparison.names[0]]
    for i, name in enumerate(comparison.names[1:], start=2):
        columns += [name, f"Δ ({i} − 1)" if len(comparison.names) > 2 else "Δ", level]
    return columns


def comparison_rows(comparison: Comparison) -> list[list[str]]:
    rows = []
    for row in comparison.rows:
        cells = [row.metric, number(row.values[0])]
        for value, diff in zip(row.values[1:], row.differences, strict=True):
            cells += [
                number(value),
                number(diff.value, True),
                f"[{number(diff.low, True)}, {number(diff.high, True)}]",
            ]
        rows.append(cells)
    return rows


def comparison_note(comparison: Comparison) -> str:
    return (
        f"Δ = run − {comparison.names[0]}; paired bootstrap over {comparison.items} items paired by "
        f"{comparison.paired_by}, {comparison.resamples} resamples, seed {comparison.seed}, percentile interval"
    )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    align = ["---"] + ["---:"] * (len(columns) - 1)
    return "\n".join([line(columns), "|" + "|".join(align) + "|", *(line(r) for r in rows)])


def run_markdown(run: EvalRun) -> str:
    lines = [f"## {run.name}", "", run_title(run), "", markdown_table(["metric", "value"], run_rows(run)), ""]
    lines += [f"- {note}" for note in run_notes(run)]
    return "\n".join(lines) + "\n"


def comparison_markdown(comparison: Comparison) -> str:
    table = markdown_table(comparison_columns(comparison), comparison_rows(comparison))
    title = f"## {comparison.task}: {' vs '.join(comparison.names)}"
    return "\n".join([title, "", table, "", comparison_note(comparison) + "."]) + "\n"
