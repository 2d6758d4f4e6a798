"""Terminal output shared by the CLI verbs: tables, JSON, progress bars (stderr), plain streaming text."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(soft_wrap=True, highlight=False)
err_console = Console(stderr=True, highlight=False)


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A boxed table; numbers right-aligned."""
    rows = [list(r) for r in rows]
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        numeric = bool(rows) and all(isinstance(r[i], int | float) for r in rows if r[i] is not None)
        table.add_column(col, justify="right" if numeric else "left")
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def write_stream(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
