"""What the `llmlab rag` verbs print: the ingest progress bar and report, context blocks, sources under an
answer, search results. Everything goes to stdout except progress and notes (stderr)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from llmlab.cli.output import console, err_console, print_table
from llmlab.rag.relevance import THRESHOLD as GATE_THRESHOLD

if TYPE_CHECKING:
    from llmlab.rag.grounded_answer import AnswerStream
    from llmlab.rag.ingest import IngestReport
    from llmlab.rag.result import Answer


class IngestBar:
    """A rich progress bar on stderr, fed by ingest's progress callback."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("ingesting"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.description}"),
            console=err_console,
            transient=True,
        )
        self.task = self.progress.add_task("", total=None)

    def __call__(self, event: Any) -> None:
        name = Path(event.source).name or event.source
        self.progress.update(self.task, completed=event.done, total=event.total, description=name)

    def __enter__(self) -> IngestBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def ingest_report_dict(report: IngestReport) -> dict[str, Any]:
    return {
        "added": report.added,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "removed": report.removed,
        "failed": [{"source": s, "reason": r} for s, r in report.failed],
        "skipped": [{"source": s, "reason": r} for s, r in report.skipped],
        "warnings": [{"source": s, "warning": w} for s, w in report.warnings],
        "chunks": report.chunks,
        "seconds": round(report.seconds, 3),
    }


def print_ingest_report(report: IngestReport, location: str) -> None:
    """The summary table, then each failure, skipped file and document warning with its reason."""
    rows = [
        [status, len(getattr(report, status))]
        for status in ("added", "updated", "unchanged", "removed", "failed", "skipped")
    ]
    rows.append(["warnings", len(report.warnings)])
    print_table(
        f"{location}: {report.chunks} chunks written in {report.seconds:.1f} s", ["status", "sources"], rows
    )
    for title, items in (
        ("failed", report.failed),
        ("skipped", report.skipped),
        ("warning", report.warnings),
    ):
        for source, reason in items:
            console.print(f"[bold]{title}[/bold] {display_path(source)}: {_own_reason(source, reason)}")


def _own_reason(source: str, reason: str) -> str:
    """The reason without the `path: ` that loaders put in front (the source is printed already)."""
    head, sep, rest = reason.partition(": ")
    if sep and (head == source or Path(head).expanduser().absolute() == Path(source)):
        return rest
    return reason


def display_path(source: str, root: Path | None = None) -> str:
    """A source or store as shown: URLs whole (a PostgreSQL password hidden), paths relative to `root` or the
    working folder when under it, else starting with `~` when under the home folder."""
    if "://" in source:
        return hide_password(source)
    for base in (root, Path.cwd()):
        if base is not None:
            try:
                return str(Path(source).relative_to(base))
            except ValueError:
                continue
    home = str(Path.home())
    if home != "/" and source.startswith(home + "/"):
        return "~" + source[len(home) :]
    return source


def hide_password(url: str) -> str:
    """`postgresql://me:secret@db/x` -> `postgresql://me:***@db/x`; other text unchanged."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:/@]*):[^@/]*@", r"\1:***@", url)


def print_context(stream: AnswerStream, root: Path | None) -> None:
    from llmlab.rag.result import source_label

    for n, hit in enumerate(stream.prompt.hits, start=1):
        label = source_label(hit.chunk, root) if root else display_path(source_label(hit.chunk))
        console.print(f"[bold]context [{n}][/bold] {label}  [dim](score {hit.score:.4g})[/dim]")
        console.print(hit.chunk.text.strip(), markup=False)
        console.print()
    if stream.prompt.dropped:
        err_console.print(
            f"[dim]{len(stream.prompt.dropped)} lower-ranked chunk(s) dropped to fit the prompt[/dim]"
        )


def gate_message(answer: Answer) -> str:
    """Why a relevance gate refused: the fitted gate's probability, else the --min-relevance similarity."""
    if answer.on_topic is not None and answer.on_topic < GATE_THRESHOLD:
        return (
            f"the question looks off topic for these documents (P(on topic) {answer.on_topic:.2f} by the "
            "relevance gate; --relevance-gate off asks the model anyway)"
        )
    similarity = answer.relevance or 0.0
    return f"no retrieved chunk is close to the question (best similarity {similarity:.2f}, under --min-relevance)"


def print_sources(answer: Answer, root: Path | None) -> None:
    """The numbered sources under a streamed answer, each with its location and supporting snippet."""
    from llmlab.rag.result import source_label

    if answer.invalid_citations:
        numbers = ", ".join(f"[{n}]" for n in answer.invalid_citations)
        err_console.print(
            f"[dim]ignored citation(s) {numbers}: only {len(answer.hits)} context block(s)[/dim]"
        )
    if answer.gated:
        err_console.print(f"[dim]{gate_message(answer)}; the model was not asked[/dim]", soft_wrap=True)
    if answer.not_found:
        return
    if not answer.sources:
        console.print(
            "[yellow]No passage in the documents supports this answer; treat it with care.[/yellow]"
        )
        return
    console.print("[bold]Sources[/bold]")
    for source in answer.sources:
        chunk = source.hit.chunk
        label = source_label(chunk, root) if root else display_path(source_label(chunk))
        label = escape(label) + (
            f" [dim]({escape(byline(chunk.metadata))})[/dim]" if byline(chunk.metadata) else ""
        )
        console.print(f" [bold][{source.block}][/bold] {label}", markup=True, highlight=False)
        console.print(f'     "{shorten(source.snippet, 220)}"', markup=False, style="dim")
    unsupported = [a.sentence for a in answer.attributions if a.block is None]
    if unsupported:
        console.print("[yellow]No passage supports:[/yellow]")
        for sentence in unsupported:
            console.print(f'     "{shorten(sentence, 220)}"', markup=False, style="yellow")


def byline(metadata: dict[str, str]) -> str:
    """`Mara Jensen, The Coast Herald, 2024-03-12`: who wrote a source, where and when (what is known)."""
    return ", ".join(metadata[k] for k in ("author", "site_name", "date") if metadata.get(k))


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1].rstrip() + "…"


def trimmed(pieces: Iterable[str]) -> Iterator[str]:
    """The pieces without leading or trailing whitespace (the Answer's text is stripped too): whitespace is
    held back until more text follows it."""
    held, started = "", False
    for piece in pieces:
        if not started:
            piece = piece.lstrip()
            started = bool(piece)
        text = held + piece
        body = text.rstrip()
        held = text[len(body) :]
        if body:
            yield body


def print_hits(hits: list[Any], mode: str) -> None:
    """A table: rank, score (and each mode's rank, for hybrid), source, the chunk's text. It stays readable in
    an 80-column terminal: the source column takes at most a third of the width (a long path keeps its end:
    `…/folder/file.md › Heading`) and the text column at least 24 characters."""
    from rich.table import Table

    source_width = max(16, console.width // 3)
    table = Table(title=f"{len(hits)} result(s), mode {mode}", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("source", max_width=source_width, overflow="fold")
    table.add_column("text", ratio=1, min_width=24)
    for h in hits:
        score = f"{h.score:.4g}"
        if mode == "hybrid":
            score += "\n" + _scores_text(h.scores)
        table.add_row(str(h.rank), score, _short_label(h.chunk, source_width - 2), shorten(h.chunk.text, 160))
    console.print(table)


def _short_label(chunk: Any, width: int) -> str:
    """The source label with its path on one line of `width` (its end kept), then page and headings, which
    wrap at spaces."""
    from llmlab.rag.result import source_label

    label = display_path(source_label(chunk))
    where = display_path(chunk.source)
    if label.startswith(where):
        return shorten_start(where, width) + label[len(where) :]
    return shorten_start(label, 2 * width)


def shorten_start(text: str, width: int) -> str:
    """`text` cut from the start to at most `width` characters, at a `/` when one is near: the end of a path
    (file name, heading) says more than its beginning."""
    if len(text) <= width:
        return text
    tail = text[len(text) - width + 1 :]
    cut = tail.find("/")
    if 0 <= cut < width // 2:
        tail = tail[cut:]
    return "…" + tail


def _scores_text(scores: dict[str, float]) -> str:
    """`bm25 #2` and `dense #1` on two lines: where the chunk ranked in each mode hybrid search fused."""
    parts = [
        f"{name} #{int(scores[name + '_rank'])}" for name in ("bm25", "dense") if name + "_rank" in scores
    ]
    return "\n".join(parts)


def hit_json(hit: Any) -> dict[str, Any]:
    c = hit.chunk
    return {
        "rank": hit.rank,
        "score": hit.score,
        "scores": hit.scores,
        "source": c.source,
        "source_type": c.source_type,
        "page": c.page,
        "heading_path": list(c.heading_path),
        "metadata": c.metadata,
        "text": c.text,
    }
