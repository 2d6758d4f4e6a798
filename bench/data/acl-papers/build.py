"""Write the six public two-column ACL style papers that bench/loaders.py --papers reads (see README.md).

Each paper is NAME.pdf with its LaTeX source NAME.tex, taken from a clone of github.com/acl-org/acl-style-files
at the commits below (git show, so any clone that has them works, bare or not).

Usage: python bench/data/acl-papers/build.py --repo DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # bench/, for public_data
from public_data import data_dir

OUT = data_dir("acl-papers", must_exist=False)
PAPERS = {  # commit -> paths without the suffix
    "a126bde": [
        "archive/latex/acl2005",
        "archive/latex/acl08",
        "archive/latex/2016.naacl/naaclhlt2016",
        "archive/latex/2017.acl/acl2017",
        "archive/latex/2018.naacl/naaclhlt2018",
    ],
    "dc6ad78": ["acl_lualatex"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="a clone of acl-org/acl-style-files")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for commit, paths in PAPERS.items():
        for path in paths:
            for suffix in (".pdf", ".tex"):
                data = subprocess.run(
                    ["git", "-C", str(args.repo), "show", f"{commit}:{path}{suffix}"],
                    capture_output=True,
                    check=True,
                ).stdout
                (OUT / (Path(path).name + suffix)).write_bytes(data)
    print(f"wrote {sum(len(p) for p in PAPERS.values())} papers to {OUT}")


if __name__ == "__main__":
    main()
