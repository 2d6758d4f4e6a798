"""`read_file` and `list_dir`, confined to one root folder.

A path the model gives is refused unless it is relative, has no `..` component, and resolves (symlinks
followed, `os.path.realpath`) to the root or a path inside it. The final open uses O_NOFOLLOW, so a symlink
swapped in after the check is not followed either. Reads are capped (64 KiB by default) and binary files
are refused; listings are capped at 200 entries.
Tests: tests/agents/test_builtin_files.py (traversal, absolute paths, symlink escape, caps).
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from llmlab.agents.tools import Tool, ToolExample, tool
from llmlab.errors import ConfigError

MAX_BYTES = 64 * 1024
MAX_ENTRIES = 200


class PathRefused(PermissionError):
    """A path outside the root folder, or not allowed for another reason given in the message."""


def confine(root: str | os.PathLike[str], path: str) -> Path:
    """The real path of `path` under `root`; raises PathRefused for anything that could leave the root."""
    real_root = Path(os.path.realpath(root))
    text = path.strip() or "."
    if "\x00" in text:
        raise PathRefused("the path contains a NUL character")
    if PurePosixPath(text).is_absolute() or PureWindowsPath(text).is_absolute() or text.startswith("~"):
        raise PathRefused(f"{path!r} is an absolute path; give a path relative to the root folder")
    if ".." in PurePosixPath(text.replace("\\", "/")).parts:
        raise PathRefused(f"{path!r} goes up with '..'; only paths inside the root folder are allowed")
    real = Path(os.path.realpath(real_root / text))
    if real != real_root and real_root not in real.parents:
        raise PathRefused(f"{path!r} leads outside the root folder (through a symbolic link)")
    return real


def file_tools(root: str | os.PathLike[str], max_bytes: int = MAX_BYTES) -> list[Tool]:
    """[read_file, list_dir] bound to `root`."""
    if not Path(root).is_dir():
        raise ConfigError(f"--root {root}: not a folder; give an existing folder for read_file and list_dir")
    base = Path(os.path.realpath(root))

    @tool(
        name="read_file",
        reads=True,
        timeout=10.0,
        examples=[
            ToolExample(
                "Open the file notes/plan.md",
                {"path": "notes/plan.md"},
                "# Plan\n1. Draft the report\n2. Send it on Friday",
                "The plan: draft the report, then send it on Friday.",
            )
        ],
    )
    def read_file(path: str) -> str:
        """Read a text file from the working folder.

        Args:
            path: the file's path relative to the working folder, e.g. "notes/todo.txt".
        """
        real = confine(base, path)
        if not real.is_file():
            raise FileNotFoundError(f"no file {path!r} in the working folder")
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            data = f.read(max_bytes + 1)
        if b"\x00" in data[:4096]:
            raise ValueError(f"{path!r} is a binary file, not text")
        text = data[:max_bytes].decode("utf-8", errors="replace")
        return text + (f"\n[... truncated at {max_bytes} bytes]" if len(data) > max_bytes else "")

    @tool(
        name="list_dir",
        reads=True,
        timeout=10.0,
        examples=[
            ToolExample(
                "What is in the docs folder?",
                {"path": "docs"},
                "guide.md\nimages/",
                "The docs folder holds guide.md and an images folder.",
            )
        ],
    )
    def list_dir(path: str = ".") -> str:
        """List the files and folders in a folder of the working folder (folders end with /).

        Args:
            path: the folder relative to the working folder; "." for the working folder itself.
        """
        real = confine(base, path)
        if not real.is_dir():
            raise NotADirectoryError(f"no folder {path!r} in the working folder")
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in real.iterdir())
        shown = names[:MAX_ENTRIES]
        more = f"\n[... and {len(names) - MAX_ENTRIES} more]" if len(names) > MAX_ENTRIES else ""
        return ("\n".join(shown) or "(empty folder)") + more

    return [read_file, list_dir]
