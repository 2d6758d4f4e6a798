"""Markdown files: one unit per section, each with the path of headings above it.

Headings are CommonMark ATX (`# Title` .. `###### Title`) and setext (a one-line paragraph underlined with
`===` or `---`); `#` lines inside fenced code blocks (``` or ~~~) are code, not headings. A YAML front
matter block at the top is removed from the text; its `title` (else the first level-1 heading, else the
file name) becomes the document title and its scalar fields the metadata. A unit's text is the section's
raw Markdown including its heading line; sections with a heading and no body are dropped (their heading
lives on in the children's heading paths).
Tests: tests/rag/test_loaders.py
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from llmlab.rag.loaders.source import content_hash, decode_text
from llmlab.rag.loaders.text import normalize_newlines
from llmlab.rag.types import Document, Unit

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKUP = re.compile(r"[`*]+|(?<!\w)_+(?=\w)|(?<=\w)_+(?!\w)")


@dataclass
class _Section:
    path: tuple[str, ...]
    lines: list[str] = field(default_factory=list)
    head: int = 0
    """How many of `lines` are the heading itself (0 for the preamble, 1 for ATX, 2 for setext)."""

    @property
    def body(self) -> bool:
        return any(line.strip() for line in self.lines[self.head :])


def load_markdown(data: bytes, source: str) -> Document:
    """A markdown Document from raw bytes, with one unit per non-empty section."""
    text, encoding = decode_text(data)
    text = normalize_newlines(text)
    warnings = (
        [] if encoding in ("utf-8", "utf-8-sig") else [f"{source}: not valid UTF-8; decoded as {encoding}"]
    )
    meta, body = split_front_matter(text)
    sections, first_h1 = split_sections(body.split("\n"))
    units = [Unit(text="\n".join(s.lines).strip("\n"), heading_path=s.path) for s in sections if s.body]
    if not units:
        warnings.append(f"{source}: no text found (only headings, front matter or whitespace)")
    title = meta.pop("title", "") or first_h1 or Path(source).stem
    return Document(
        source=source,
        source_type="markdown",
        title=title,
        units=units,
        content_hash=content_hash(data),
        warnings=warnings,
        metadata={"encoding": encoding, **meta},
    )


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """({scalar fields}, text without the block) for a leading `---` YAML block; ({}, text) otherwise."""
    if not text.startswith("---\n"):
        return {}, text
    end = re.search(r"^(?:---|\.\.\.)[ \t]*$", text[4:], flags=re.MULTILINE)
    if end is None:
        return {}, text
    import yaml

    try:
        data = yaml.safe_load(text[4 : 4 + end.start()])
    except yaml.YAMLError:
        return {}, text  # not front matter after all: a thematic break; keep the text as written
    if not isinstance(data, dict):
        return {}, text
    fields = {str(k): str(v) for k, v in data.items() if isinstance(v, str | int | float | bool)}
    return fields, text[4 + end.end() :].lstrip("\n")


def split_sections(lines: list[str]) -> tuple[list[_Section], str]:
    """Sections in order (the preamble has the empty path) and the first level-1 heading's text."""
    sections = [_Section(path=())]
    stack: list[tuple[int, str]] = []
    fence = ""
    first_h1 = ""
    for i, line in enumerate(lines):
        fence = _next_fence(fence, line)
        heading = None if fence or _FENCE.match(line) else _heading(lines, i)
        if heading is None:
            sections[-1].lines.append(line)
            continue
        level, name, own_lines = heading
        first_h1 = first_h1 or (name if level == 1 else "")
        if own_lines == 2:  # setext: the title line was already added as text of the previous section
            sections[-1].lines.pop()
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, name))
        section = _Section(
            path=tuple(n for _, n in stack), lines=lines[i + 1 - own_lines : i + 1], head=own_lines
        )
        sections.append(section)
    return sections, first_h1


def _heading(lines: list[str], i: int) -> tuple[int, str, int] | None:
    """(level, plain text, lines it spans) when line i ends a heading."""
    atx = _ATX.match(lines[i])
    if atx:
        return len(atx.group(1)), plain_heading(atx.group(2) or ""), 1
    setext = _SETEXT.match(lines[i])
    if setext and i > 0 and lines[i - 1].strip() and (i == 1 or not lines[i - 2].strip()):
        if _ATX.match(lines[i - 1]) or _FENCE.match(lines[i - 1]) or _SETEXT.match(lines[i - 1]):
            return None
        return (1 if setext.group(1)[0] == "=" else 2), plain_heading(lines[i - 1]), 2
    return None


def _next_fence(fence: str, line: str) -> str:
    """The open fence marker after `line` ("" outside code): a fence closes on the same character, as long."""
    match = _FENCE.match(line)
    if not match:
        return fence
    marker = match.group(1)
    if not fence:
        return marker
    closes = marker[0] == fence[0] and len(marker) >= len(fence) and not line.strip()[len(marker) :].strip()
    return "" if closes else fence


def plain_heading(text: str) -> str:
    """Heading text without inline markup: links keep their text, backticks and emphasis marks go."""
    return " ".join(_MARKUP.sub("", _LINK.sub(r"\1", text)).split())
