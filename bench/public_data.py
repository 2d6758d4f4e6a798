"""Where the benches find public data sets: a cache folder outside the repository.

Public data fetched from other repositories is not committed here, with one exception: the grounded-answer
adapter's training records (bench/data/grounded-answers/train.jsonl.xz, from a training split, Apache-2.0),
which `make adapter` trains from, as the adapter it ships must be reproducible from the repository. Each set
has a folder `bench/data/NAME/` in the repository with a README (source, commit, licence, split, how the subset is drawn)
and a `build.py` that writes the subset into `$LLMLAB_DATA/NAME` (default `~/.cache/llmlab/data/NAME`, or
`$LLMLAB_CACHE/data/NAME` when only LLMLAB_CACHE is set). Benches read it from there and, when it is missing,
stop with the command that builds it.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """The folder that holds every built public data set."""
    explicit = os.environ.get("LLMLAB_DATA")
    if explicit:
        return Path(explicit).expanduser()
    return Path(os.environ.get("LLMLAB_CACHE", "~/.cache/llmlab")).expanduser() / "data"


def data_dir(name: str, *, must_exist: bool = True) -> Path:
    """The built data set NAME; raises SystemExit with the build instructions when it is missing."""
    folder = data_root() / name
    if must_exist and not folder.is_dir():
        readme = Path(__file__).parent / "data" / name.split("/")[0] / "README.md"
        raise SystemExit(
            f"public data set {name!r} is not built: {folder} is missing. Fetch its source and run its build "
            f"script as {readme.relative_to(Path(__file__).parents[1])} says (or set LLMLAB_DATA)."
        )
    return folder
