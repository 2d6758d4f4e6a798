"""OpenMP waiting policy under contention: decoding speed of one llmlab process alone and of two at once, with
PyTorch's default (spinning) threads and with OMP_WAIT_POLICY=PASSIVE, printed with the ratios.

Backs the table in docs/generation.md ("How fast, and why"). Each run is `llmlab generate` on the packaged
SmolLM2, greedy, 100 new tokens; the speed is the one the command reports on stderr (decoding only).

Usage: python bench/threads.py [--tokens N]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

LLMLAB = str(Path(sys.executable).parent / "llmlab")
PROMPT = "Write a long story about a dragon."
_SPEED = re.compile(r"([\d.]+) tokens/s")


def start(tokens: int, policy: str | None) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    command = [LLMLAB, "generate", PROMPT, "--greedy", "--max-new-tokens", str(tokens)]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def speeds(tokens: int, policy: str | None, processes: int) -> list[float]:
    """Tokens/s of each of `processes` generate commands started together."""
    running = [start(tokens, policy) for _ in range(processes)]
    out = []
    for proc in running:
        _, err = proc.communicate()
        found = _SPEED.findall(err)
        if proc.returncode != 0 or not found:
            raise SystemExit(f"llmlab generate failed ({proc.returncode}): {err.strip()[-500:]}")
        out.append(float(found[-1]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=100)
    args = parser.parse_args()
    speeds(8, None, 1)  # warm-up: the model conversion cache and the page cache
    rows = {}
    for name, policy in (("default", None), ("OMP_WAIT_POLICY=PASSIVE", "PASSIVE")):
        alone = speeds(args.tokens, policy, 1)[0]
        pair = speeds(args.tokens, policy, 2)
        rows[name] = (alone, sum(pair) / 2)
    print(f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    print("| | one process, tokens/s | two at once, each | two at once / one |")
    print("|---|---|---|---|")
    for name, (alone, each) in rows.items():
        print(f"| {name} | {alone:.1f} | {each:.1f} | {each / alone:.2f} |")
    (d_alone, d_each), (p_alone, p_each) = rows.values()
    print(f"PASSIVE / default: one process {p_alone / d_alone:.2f}, two at once {p_each / d_each:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
