"""Typed dataclass configs as command-line flags.

Each config is a small dataclass whose field docstrings (the string literal under a field) are its help text.
`add_config_arguments` turns the fields into `--flag-name` options; `build_config` merges, in order, the
dataclass defaults, a verb's own defaults (e.g. greedy answers), an optional `--config file.yaml`, and the
flags the user actually typed, then constructs the dataclass so that its `__post_init__` validation runs once
on the final values. Every verb layers its settings through these two functions.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import itertools
import textwrap
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from llmlab.errors import ConfigError

T = TypeVar("T")


def field_docs(cls: type) -> dict[str, str]:
    """Map each field of a dataclass to the docstring written under it (empty if none)."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in itertools.pairwise(body):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _base_type(tp: Any) -> tuple[Any, bool]:
    """Strip `X | None`; return (type, optional)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def add_config_arguments(
    parser: argparse.ArgumentParser,
    cls: type,
    skip: tuple[str, ...] = (),
    rename: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> None:
    """Add one `--flag` per dataclass field; unset flags stay absent so defaults and YAML can apply.

    Args:
        skip: fields that get no flag.
        rename: field -> flag name, where the field's own name would mean something else on this verb
            (e.g. `top_k` of a search is `--chunks`, since `--top-k` is always sampling's).
        defaults: field -> this verb's own default, shown in the help instead of the dataclass's (the verb
            applies it with `set_defaults`).
    """
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    rename = rename or {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        tp, _ = _base_type(hints[f.name])
        default = f.default if f.default is not dataclasses.MISSING else None
        if f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        default = (defaults or {}).get(f.name, default)
        help_text = docs.get(f.name, "")
        if default not in (None, "", [], ()):
            help_text += f" (default: {default})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_text}
        origin = typing.get_origin(tp)
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif origin is typing.Literal:
            kwargs["choices"] = list(typing.get_args(tp))
        elif origin in (list, tuple):
            (item,) = typing.get_args(tp)[:1]
            kwargs.update(action="append", type=item, metavar=f.name.upper().rstrip("S"))
            kwargs["help"] += " (repeatable)"
        elif tp in (int, float, str, Path):
            kwargs.update(type=tp, metavar=f.name.split("_")[-1].upper())
        else:
            continue
        parser.add_argument(_flag(rename.get(f.name, f.name)), **kwargs)


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a `--config` YAML file; keys may use dashes or underscores."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except FileNotFoundError as e:
        raise ConfigError(f"--config file not found: {path}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML ({getattr(e, 'problem', e)}); fix the syntax") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of option names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def config_values(
    cls: type, args: argparse.Namespace | dict[str, Any], config_path: str | None = None
) -> dict[str, Any]:
    """The settings the user chose for `cls`: the `--config` YAML file, then the explicit flags over it."""
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    if config_path:
        loaded = load_yaml_config(config_path)
        unknown = sorted(set(loaded) - names)
        if unknown:
            raise ConfigError(
                f"{config_path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
            )
        values.update(loaded)
    given = vars(args) if isinstance(args, argparse.Namespace) else args
    values.update({k: v for k, v in given.items() if k in names})
    return values


def build_config(
    cls: type[T],
    args: argparse.Namespace | dict[str, Any],
    config_path: str | None = None,
    defaults: dict[str, Any] | None = None,
) -> T:
    """Dataclass defaults < `defaults` (the verb's own) < YAML file < explicit flags, then construct `cls`
    (which validates)."""
    return cls(**{**(defaults or {}), **config_values(cls, args, config_path)})
