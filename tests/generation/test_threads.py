"""Decoding threads (llmlab/generation/threads.py): the policies on scripted CPU counters, the overrides, and
that the engine applies them while it decodes. Timings are bench/threads.py's job; nothing here measures speed.

The follower's arithmetic, on 2 cores over one second (CPU-seconds): both cores busy, 1.0 of it ours, means
another process used a core, so 2 x (1 - 1.0 / 2.0) = 1 core is free: one thread. All of the busy time ours
(our two threads spinning, or one thread and an idle core) means none is used by others: two threads.
"""

from __future__ import annotations

import os

import pytest
import torch

from llmlab.errors import ConfigError
from llmlab.generation import Engine, GenerationConfig
from llmlab.generation import threads as threads_module
from llmlab.generation.threads import DecodingThreads, LoadFollower, cpu_seconds, decoding_threads, policy


@pytest.fixture
def fresh(monkeypatch):
    """No thread settings in the environment, the once-per-process state reset, torch's count restored."""
    for name in ("LLMLAB_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(DecodingThreads, "_capped", False)
    monkeypatch.setattr(DecodingThreads, "_ceiling", None)
    before = torch.get_num_threads()
    yield monkeypatch
    torch.set_num_threads(before)


class Clock:
    """Scripted wall clock, process CPU time and /proc/stat counters (busy, idle CPU-seconds)."""

    def __init__(self) -> None:
        self.wall = self.ours = self.busy = self.idle = 0.0

    def advance(self, seconds: float, busy: float, ours: float, cores: int = 2) -> None:
        self.wall += seconds
        self.busy += busy
        self.idle += cores * seconds - busy
        self.ours += ours

    def monotonic(self) -> float:
        return self.wall

    def process_time(self) -> float:
        return self.ours

    def read(self, cpus: set[int]) -> tuple[float, float]:
        return self.busy, self.idle


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(threads_module, "time", clock)
    return clock


@pytest.mark.parametrize(
    ("busy", "ours", "expected"),
    [
        (2.0, 1.0, 1),  # one competing CPU-bound process: leave it a core
        (2.0, 2.0, 2),  # alone, two spinning threads: keep both
        (1.0, 1.0, 2),  # alone on one thread, the other core idle: take it
        (2.0, 0.2, 1),  # a loaded machine: one thread, never none
        (1.3, 1.0, 2),  # a little background work (0.3 core) does not cost a thread
    ],
)
def test_follower_leaves_the_cores_others_use(clock: Clock, busy: float, ours: float, expected: int) -> None:
    follower = LoadFollower({0, 1}, ceiling=2, interval=0.25, read=clock.read)
    clock.advance(1.0, busy=busy, ours=ours)
    assert follower.target() == expected


def test_follower_looks_at_most_every_interval_and_never_above_the_ceiling(clock: Clock) -> None:
    follower = LoadFollower({0, 1, 2, 3}, ceiling=2, interval=0.25, read=clock.read)
    clock.advance(0.1, busy=0.1, ours=0.1, cores=4)
    assert follower.target() is None  # too early to tell
    clock.advance(0.2, busy=0.3, ours=0.3, cores=4)
    assert follower.target() == 2  # 4 cores free, but PyTorch had 2 threads when the engine was made


def test_follower_without_proc_stat_leaves_the_count(clock: Clock) -> None:
    follower = LoadFollower({0, 1}, ceiling=2, read=lambda cpus: None)
    clock.advance(1.0, busy=2.0, ours=1.0)
    assert follower.target() is None


def test_cpu_seconds_reads_this_machine() -> None:
    if not os.path.exists("/proc/stat"):
        assert cpu_seconds({0}) is None
        return
    busy, idle = cpu_seconds(set(range(os.cpu_count() or 1))) or (-1.0, -1.0)
    assert busy > 0 and idle >= 0


def test_policies_and_overrides(fresh, monkeypatch) -> None:
    assert policy() == "follow"  # the default
    assert [decoding_threads("spare-one", cores) for cores in (1, 2, 4)] == [1, 1, 3]
    assert decoding_threads("3", 2) == 3 and decoding_threads("all", 8) is None
    monkeypatch.setattr(threads_module, "idle_cores", lambda window=0.05: 2.6)
    assert decoding_threads("idle", 4) == 3
    monkeypatch.setattr(threads_module, "idle_cores", lambda window=0.05: 0.2)
    assert decoding_threads("idle", 4) == 1  # never zero
    fresh.setenv("LLMLAB_THREADS", " Spare-One ")
    assert policy() == "spare-one"
    fresh.setenv("OMP_NUM_THREADS", "2")  # the user chose: llmlab leaves the count alone
    assert policy() == ""


@pytest.mark.parametrize("bad", ["0", "-1", "many"])
def test_bad_setting_names_the_variable(fresh, bad: str) -> None:
    fresh.setenv("LLMLAB_THREADS", bad)
    with pytest.raises(
        ConfigError, match="LLMLAB_THREADS must be a number of threads or one of all, spare-one"
    ):
        policy()


def test_engine_follows_the_load_while_decoding(fresh, tiny_model, tiny_tok) -> None:
    """The CLI and library users both decode through Engine: it asks the follower before every step."""
    torch.set_num_threads(2)
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    assert engine.threads.follower is not None
    asked = []

    def busy_machine() -> int:
        asked.append(1)
        return 1

    fresh.setattr(engine.threads.follower, "target", busy_machine)
    engine.generate(["Hello"], GenerationConfig(greedy=True, max_new_tokens=5, ignore_eos=True))
    assert torch.get_num_threads() == 1 and len(asked) >= 5


def test_a_static_policy_is_applied_once(fresh, tiny_model, tiny_tok) -> None:
    """LLMLAB_THREADS=1 sets one thread when the first engine is made; a later torch.set_num_threads of the
    user's own is not undone by the next engine."""
    fresh.setenv("LLMLAB_THREADS", "1")
    torch.set_num_threads(2)
    Engine(tiny_model, tiny_tok, precision="fp32")
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)
    Engine(tiny_model, tiny_tok, precision="fp32")
    assert torch.get_num_threads() == 2


def test_spare_one_only_lowers_the_count(fresh, tiny_model, tiny_tok) -> None:
    """Fewer threads than the policy's cap, set before the engine is made, are kept."""
    fresh.setenv("LLMLAB_THREADS", "spare-one")
    fresh.setattr(threads_module, "available_cores", lambda: set(range(8)))  # cap: 7
    torch.set_num_threads(2)
    Engine(tiny_model, tiny_tok, precision="fp32")
    assert torch.get_num_threads() == 2
