"""The small exception set every llmlab layer raises.

Each message says what was wrong, the value received, and how to fix it. The CLI turns these into a one-line
error and exit status 2; the library never prints or exits.
"""

from __future__ import annotations


class LlmlabError(Exception):
    """Base class for every error llmlab raises on purpose."""


class ConfigError(LlmlabError, ValueError):
    """A setting or argument is out of range or inconsistent, e.g. `--top-p must be in (0, 1], got 1.5`."""


class ModelError(LlmlabError):
    """A model cannot be found, loaded or used as asked (unknown name, wrong kind, prompt too long)."""


class DataError(LlmlabError, ValueError):
    """Bad input data; `location` is `file:line` when known so users can jump to it."""

    def __init__(self, message: str, location: str | None = None) -> None:
        self.location = location
        super().__init__(f"{location}: {message}" if location else message)


class MissingDependencyError(LlmlabError, ImportError):
    """An optional dependency is not installed; the message carries the pip command that installs it."""

    def __init__(self, package: str, extra: str, cause: BaseException | None = None) -> None:
        detail = f" ({cause})" if cause is not None and package not in str(cause) else ""
        super().__init__(
            f"{package} is not installed or cannot be imported{detail}; install it with: pip install 'llmlab[{extra}]'"
        )
