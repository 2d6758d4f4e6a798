"""Decoding next to a busy process: tokens/s of `llmlab generate` alone and with one competing CPU-bound
process, for the old default (PyTorch's: a thread per core, spinning waits), the new one (the thread count
follows the load while decoding, llmlab/generation/threads.py) and the other options, with the ratios.

Backs "Sharing the CPU" in docs/generation.md. Each run is a fresh `llmlab generate` process on the packaged
SmolLM2 (greedy, the default precision), so settings read when OpenMP starts (OMP_WAIT_POLICY, GOMP_SPINCOUNT)
take effect; the speed is the one the command reports on stderr. The competing process is one Python busy
loop, started before the generate command and stopped after it. Each figure is the median of --repeats runs,
the options interleaved so that a change in the machine's load hits them alike.

    contended / alone   how much of its own idle speed an option keeps next to the busy process (issue 8
                        wants at least 0.25)
    alone / old         the option's idle speed against the old default's (issue 8 wants at least 0.90)

Usage: python bench/threads.py [--tokens N] [--repeats N] [--all]   (--all adds the options not chosen)
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

LLMLAB = str(Path(sys.executable).parent / "llmlab")
PROMPT = "Write a long story about a dragon."
_SPEED = re.compile(r"([\d.]+) tokens/s")
_OURS = ("LLMLAB_THREADS", "OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")

OLD = "old default: a thread per core, spinning"
NEW = "new default: threads follow the load"
OPTIONS = {  # name: environment of the generate process
    OLD: {"LLMLAB_THREADS": "all"},
    NEW: {},
}
OTHERS = {
    "a thread per core, OMP_WAIT_POLICY=PASSIVE": {"LLMLAB_THREADS": "all", "OMP_WAIT_POLICY": "PASSIVE"},
    "a thread per core, GOMP_SPINCOUNT=10000": {"LLMLAB_THREADS": "all", "GOMP_SPINCOUNT": "10000"},
    "one thread fewer than the cores": {"LLMLAB_THREADS": "spare-one"},
    "threads from the idle cores, once at start (50 ms)": {"LLMLAB_THREADS": "idle"},
    "threads follow the load, OMP_WAIT_POLICY=PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
}


def speed(env_extra: dict[str, str], tokens: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in _OURS} | {"HF_HUB_OFFLINE": "1"} | env_extra
    command = [LLMLAB, "generate", PROMPT, "--greedy", "--max-new-tokens", str(tokens)]
    done = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = _SPEED.findall(done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"llmlab generate failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return float(found[-1])


def contended(env_extra: dict[str, str], tokens: int) -> float:
    """Speed while one CPU-bound process (a Python busy loop) runs."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        return speed(env_extra, tokens)
    finally:
        busy.kill()
        busy.wait()


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--all", action="store_true", help="also measure the options that were not chosen")
    args = parser.parse_args()
    options = OPTIONS | (OTHERS if args.all else {})
    speed({}, 8)  # warm-up: the model conversion cache and the page cache
    print(f"{os.cpu_count()} CPUs; load average before: {load()}", flush=True)
    alone: dict[str, list[float]] = {name: [] for name in options}
    busy: dict[str, list[float]] = {name: [] for name in options}
    for _ in range(args.repeats):
        for name, env in options.items():
            alone[name].append(speed(env, args.tokens))
            busy[name].append(contended(env, args.tokens))
            print(f"  {name}: alone {alone[name][-1]:.1f}, contended {busy[name][-1]:.1f}", flush=True)
    old = statistics.median(alone[OLD])
    print(f"load average after: {load()}; median of {args.repeats}, {args.tokens} new tokens, tokens/s")
    print("| | alone | next to one busy process | contended / alone | alone / old |")
    print("|---|---|---|---|---|")
    for name in options:
        a, b = statistics.median(alone[name]), statistics.median(busy[name])
        print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} | {a / old:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
