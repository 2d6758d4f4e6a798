"""Prompt templates as data: a YAML file with named `{variables}` in its text.

    name: summarize
    description: One-paragraph summary.
    system: You are a concise assistant.        # optional
    template: |
      Summarize the text below in one paragraph.

      {text}

Variables use Python's `str.format` syntax (`{{` and `}}` for literal braces). Rendering with a missing
variable, or with a value for a variable the template does not use, is an error that names it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llmlab.errors import ConfigError, DataError


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    template: str
    description: str = ""
    system: str | None = None

    @property
    def variables(self) -> list[str]:
        """Variable names in order of first appearance."""
        names: list[str] = []
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError as e:
            raise ConfigError(
                f"template {self.name!r} is malformed: {e}; write {{{{ and }}}} for braces"
            ) from e
        for _, field_name, _, _ in parsed:
            if field_name is None:
                continue
            if not field_name.isidentifier():
                raise ConfigError(f"template {self.name!r}: {{{field_name}}} is not a plain variable name")
            if field_name not in names:
                names.append(field_name)
        return names

    def render(self, **values: Any) -> str:
        wanted = self.variables
        missing = [v for v in wanted if v not in values]
        if missing:
            raise ConfigError(
                f"template {self.name!r} needs variable(s) {', '.join(missing)}; pass a value for each"
            )
        unused = sorted(set(values) - set(wanted))
        if unused:
            raise ConfigError(
                f"template {self.name!r} does not use variable(s) {', '.join(unused)}; "
                f"its variables are {', '.join(wanted) or '(none)'}"
            )
        return self.template.format(**values)

    @classmethod
    def from_yaml(cls, path: str | Path) -> PromptTemplate:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise DataError(f"template file not found: {path}") from e
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise DataError(
                f"invalid YAML: {getattr(e, 'problem', e)}", f"{path}:{mark.line + 1}" if mark else str(path)
            ) from e
        if not isinstance(data, dict) or not isinstance(data.get("template"), str):
            raise DataError("a template file needs a `template:` text field", str(path))
        unknown = sorted(set(data) - {"name", "template", "description", "system"})
        if unknown:
            raise DataError(
                f"unknown key(s) {', '.join(unknown)}; allowed: name, template, description, system",
                str(path),
            )
        template = cls(
            name=str(data.get("name", path.stem)),
            template=data["template"],
            description=str(data.get("description", "")),
            system=data.get("system"),
        )
        template.variables  # noqa: B018 - validates the syntax at load time
        return template
