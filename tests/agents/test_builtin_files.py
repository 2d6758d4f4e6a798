"""read_file and list_dir stay inside their root: no '..', no absolute paths, no way out through symlinks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from llmlab.agents.builtin.files import PathRefused, confine, file_tools
from llmlab.errors import ConfigError


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_text("top secret")
    box = tmp_path / "box"
    (box / "notes").mkdir(parents=True)
    (box / "notes" / "a.md").write_text("# A\nhello")
    (box / "todo.txt").write_text("buy milk")
    (box / "big.txt").write_text("x" * 100)
    (box / "blob.bin").write_bytes(b"\x00\x01\x02")
    os.symlink(tmp_path / "secret.txt", box / "escape.txt")
    os.symlink(tmp_path, box / "up")
    os.symlink(box / "todo.txt", box / "inside.txt")
    return box


def test_reads_and_lists_inside_the_root(root: Path) -> None:
    read_file, list_dir = file_tools(root, max_bytes=50)
    assert read_file("todo.txt") == "buy milk"
    assert read_file("notes/a.md") == "# A\nhello"
    assert read_file("./todo.txt") == "buy milk"
    assert read_file("inside.txt") == "buy milk"  # a symlink that stays inside is fine
    assert read_file("big.txt") == "x" * 50 + "\n[... truncated at 50 bytes]"
    assert list_dir(".") == "big.txt\nblob.bin\nescape.txt\ninside.txt\nnotes/\ntodo.txt\nup/"
    assert list_dir("notes") == "a.md"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../secret.txt", "goes up with '..'"),
        ("notes/../../secret.txt", "goes up with '..'"),
        ("..\\secret.txt", "goes up with '..'"),
        ("/etc/passwd", "is an absolute path"),
        ("C:\\Windows\\win.ini", "is an absolute path"),
        ("~/.ssh/id_rsa", "is an absolute path"),
        ("escape.txt", "leads outside the root folder"),
        ("up/secret.txt", "leads outside the root folder"),
        ("a\x00b", "NUL character"),
    ],
)
def test_escapes_are_refused(root: Path, path: str, reason: str) -> None:
    read_file, list_dir = file_tools(root)
    with pytest.raises(PathRefused, match=reason):
        read_file(path)
    with pytest.raises(PathRefused, match=reason):
        list_dir(path)


def test_an_absolute_path_inside_the_root_is_still_refused(root: Path) -> None:
    with pytest.raises(PathRefused, match="absolute"):
        confine(root, str(root / "todo.txt"))


def test_other_errors_are_plain(root: Path) -> None:
    read_file, list_dir = file_tools(root)
    with pytest.raises(FileNotFoundError, match=r"no file 'nope\.txt'"):
        read_file("nope.txt")
    with pytest.raises(ValueError, match="binary file"):
        read_file("blob.bin")
    with pytest.raises(NotADirectoryError):
        list_dir("todo.txt")
    with pytest.raises(ConfigError, match=r"--root .*not a folder"):
        file_tools(root / "todo.txt")
