"""How many CPU threads decoding uses, so that a busy machine slows it down instead of stopping it.

PyTorch runs its kernels on an OpenMP team of one thread per core, and the team meets at a barrier after
every parallel region: a few hundred barriers per generated token. When another busy process shares the
cores, one thread of the team is often descheduled, and the others wait for it at every barrier (spinning
first: GNU OpenMP spins for a while before it sleeps). Decoding SmolLM2 on 2 cores fell from about 70
tokens/s to 0.7-2.6 with one competing CPU-bound process (issue 8). A team that leaves a core to the other
process does not have that problem, and one that fills an idle machine is fastest, so the default follows the
load while decoding ("follow"):

    others  = cores x (CPU time used on our cores - our own) / CPU time passed on them   (last 0.25 s)
    threads = clamp(round(cores - others), 1, ceiling)      (half a core used by others costs a thread)

where cores are the CPUs this process may run on and the ceiling is PyTorch's thread count when the first
engine was made (one per physical core by default, or what you set with `torch.set_num_threads`).

It reads /proc/stat and the process's CPU time at most every 0.25 s from the decoding loop (microseconds), and
calls `torch.set_num_threads` only when the count changes. `bench/threads.py` measures it against the other
options (spinning or passive waiting, spin counts, threads from the load once at start, one thread fewer than
the cores) alone and next to one busy process; docs/generation.md ("Sharing the CPU") has the numbers.

`LLMLAB_THREADS` overrides it: a number, `all` (PyTorch's own choice, untouched), `spare-one` (one thread
fewer than the cores), `idle` (the cores idle over 50 ms when the engine is made), or `follow`. An explicit
`OMP_NUM_THREADS` is respected as well: llmlab then leaves the thread count alone. Where /proc/stat is
missing (not Linux), `follow` keeps PyTorch's count.

`at_most(n)` lowers the count to n for a block and restores it after: a component that runs faster with
fewer threads on a many-core machine (the span reader, llmlab/rag/reader.py) uses it instead of changing
the process's count for good.

No parity test (a scheduling setting, not a computation): tests/generation/test_threads.py checks the policies
on scripted CPU counters and that the engine applies them; bench/threads.py measures them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from llmlab.errors import ConfigError

ENV = "LLMLAB_THREADS"
DEFAULT_POLICY = "follow"
INTERVAL = 0.25  # seconds between two looks at the load while decoding
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100  # /proc/stat units per second


def available_cores() -> set[int]:
    """The CPUs this process may run on (its affinity mask, which containers and `taskset` narrow)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def cpu_seconds(cpus: set[int]) -> tuple[float, float] | None:
    """(busy, idle) seconds of `cpus` since boot from /proc/stat's per-CPU lines; None without /proc/stat."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            lines = [line.split() for line in stat if line.startswith("cpu") and line[3].isdigit()]
    except OSError:
        return None
    busy = idle = 0.0
    for fields in lines:
        if int(fields[0][3:]) in cpus:
            values = [float(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
            idle += values[3] + values[4]
            busy += sum(values) - values[3] - values[4]
    return busy / _TICK, idle / _TICK


@dataclass
class _Mark:
    wall: float
    busy: float
    idle: float
    ours: float


class LoadFollower:
    """Sets torch's thread count to the cores other processes leave free, at most every `interval` s."""

    def __init__(
        self,
        cpus: set[int],
        ceiling: int,
        interval: float = INTERVAL,
        read: Callable[[set[int]], tuple[float, float] | None] | None = None,
    ):
        self.cpus, self.ceiling, self.interval = cpus, ceiling, interval
        self._read = read or cpu_seconds
        self._mark = self._sample()

    def _sample(self) -> _Mark | None:
        counters = self._read(self.cpus)
        if counters is None:
            return None
        busy, idle = counters
        return _Mark(time.monotonic(), busy, idle, time.process_time())

    def target(self) -> int | None:
        """The thread count for the load since the last look, or None when it is too early to tell."""
        if self._mark is None or time.monotonic() - self._mark.wall < self.interval:
            return None
        now = self._sample()
        if now is None:
            return None
        seen = (now.busy - self._mark.busy) + (now.idle - self._mark.idle)  # CPU-seconds that passed
        others = max(0.0, (now.busy - self._mark.busy) - (now.ours - self._mark.ours))
        self._mark = now
        if seen <= 0:
            return None
        free = len(self.cpus) * (1.0 - others / seen)  # cores not used by other processes
        return max(1, min(self.ceiling, int(free + 0.5)))  # half a core used by others costs a thread

    def update(self) -> None:
        """Call once per decoding step: cheap until `interval` has passed."""
        threads = self.target()
        if threads is not None:
            import torch

            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)


def idle_cores(window: float = 0.05) -> float:
    """How many of this process's cores were idle over the next `window` seconds."""
    cpus = available_cores()
    before = cpu_seconds(cpus)
    time.sleep(window)
    after = cpu_seconds(cpus)
    if before is None or after is None:
        return float(len(cpus))
    busy, idle = after[0] - before[0], after[1] - before[1]
    return len(cpus) * idle / max(busy + idle, 1e-9)


POLICIES: dict[str, Callable[[int], int | None]] = {
    "all": lambda cores: None,  # leave PyTorch's choice alone
    "spare-one": lambda cores: max(1, cores - 1),
    "idle": lambda cores: max(1, min(cores, round(idle_cores()))),
    "follow": lambda cores: None,  # decided while decoding (LoadFollower)
}


def policy() -> str:
    """The policy in force: a number, a name of POLICIES, or "" when OMP_NUM_THREADS is set (hands off)."""
    if os.environ.get("OMP_NUM_THREADS"):
        return ""
    setting = (os.environ.get(ENV) or DEFAULT_POLICY).strip().lower()
    if not (setting.isdigit() and int(setting) > 0) and setting not in POLICIES:
        raise ConfigError(
            f"{ENV} must be a number of threads or one of {', '.join(POLICIES)}, got {setting!r}; "
            f"unset it for the default ({DEFAULT_POLICY})"
        )
    return setting


def decoding_threads(setting: str, cores: int) -> int | None:
    """The most threads a static policy lets decoding use on `cores` cores; None: leave PyTorch's count."""
    return int(setting) if setting.isdigit() else POLICIES[setting](cores)


class DecodingThreads:
    """What an engine does about threads: a static cap applied once per process, or a LoadFollower."""

    _capped = False  # once per process: a later torch.set_num_threads of the user's own is not undone
    _ceiling: int | None = None  # torch's thread count when the first engine was made

    def __init__(self) -> None:
        import torch

        setting, cpus = policy(), available_cores()
        if DecodingThreads._ceiling is None:
            DecodingThreads._ceiling = torch.get_num_threads()
        self.follower = LoadFollower(cpus, DecodingThreads._ceiling) if setting == "follow" else None
        if setting and setting != "follow" and not DecodingThreads._capped:
            DecodingThreads._capped = True
            self._cap(decoding_threads(setting, len(cpus)), exact=setting.isdigit())

    @staticmethod
    def _cap(threads: int | None, exact: bool) -> None:
        """Lower torch's count to `threads` (set it exactly for a number given in $LLMLAB_THREADS)."""
        import torch

        if threads is not None and (threads < torch.get_num_threads() or exact):
            torch.set_num_threads(threads)

    def hold(self) -> None:
        """Stop following the load: the count set now stays (a server that owns the machine sets its own)."""
        self.follower = None

    def update(self) -> None:
        """Once per decoding step."""
        if self.follower is not None:
            self.follower.update()


@contextmanager
def at_most(threads: int) -> Iterator[None]:
    """torch's thread count lowered to `threads` inside the block (left alone when it is already that low),
    and restored when the block ends: a cap for one component, not a change to the process's count."""
    import torch

    before = torch.get_num_threads()
    if before > threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)
