"""One engine thread drives the continuous batch; requests reach it through a queue and get their tokens back
as events on their own asyncio queue.

    request handler --submit(ids, configs, hooks)--> inbox --engine thread--> Batcher.add
                    <--ticket.queue (per step: [(choice, Event)])-- Batcher.step()
    disconnect / finish early --cancel(ticket)--> inbox --> Batcher.cancel (the row leaves at the next step)

Everything that runs the model or the embedder (prefill and decode steps, a playground forward, embeddings,
retrieval) runs on this one thread, between decode steps (`call`), so one OpenMP team owns the cores and two
forwards never compete for them. Waiting requests join the batch as slots free up, at most `prefill_tokens`
prompt tokens a step (a burst is prefilled over several steps, so running streams keep flowing). A request is
accepted only while the rows in flight (queued + running) stay under `max_batch + max_waiting`; beyond that
`submit` raises `Overloaded` (HTTP 503) instead of queueing without bound. A failure inside a step ends every running request with that error and starts a fresh batch,
so one bad step cannot wedge the server.
Tests: tests/serving/test_serve_scheduler.py (rows join between steps and equal runs alone, the prefill budget,
a failing step), tests/serving/test_serve_security.py (overload, a disconnect cancels).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from llmlab.errors import LlmlabError
from llmlab.generation.config import GenerationConfig
from llmlab.generation.rows import AllowedTokens, Event

T = TypeVar("T")


class Overloaded(LlmlabError):
    """More rows in flight than the server admits (`max_batch + max_waiting`)."""


@dataclass
class Ticket:
    """A request's rows (one per choice) and the asyncio queue their events arrive on.

    Items on `queue`: a list of (choice index, Event) per decode step, or an Exception that ended the request.
    """

    loop: asyncio.AbstractEventLoop
    choices: int
    queue: asyncio.Queue[list[tuple[int, Event]] | BaseException] = field(default_factory=asyncio.Queue)
    handles: list[int] = field(default_factory=list)
    prompt_tokens: int = 0
    finished: int = 0
    cancelled: bool = False

    @property
    def done(self) -> bool:
        return self.finished >= self.choices

    def deliver(self, item: list[tuple[int, Event]] | BaseException) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, item)


@dataclass
class _Add:
    ticket: Ticket
    prompt: list[int]
    configs: list[GenerationConfig]
    hooks: list[AllowedTokens | None]
    prefix_embeds: Any = None


class Scheduler:
    """Owns the engine's Batcher and the thread that steps it.

    Args:
        engine: an `llmlab.generation.Engine`.
        max_batch: rows decoded together.
        max_waiting: rows that may wait for a free slot before new requests get 503.
        prefill_tokens: prompt tokens admitted into the batch per step (at least one request): a burst of
            requests is prefilled over several steps, so running streams keep getting tokens and the first
            newcomers start sooner (vLLM's max_num_batched_tokens plays this part).
    """

    def __init__(self, engine: Any, max_batch: int = 8, max_waiting: int = 64, prefill_tokens: int = 512):
        self.engine, self.max_batch, self.max_waiting = engine, max_batch, max_waiting
        self.prefill_tokens = prefill_tokens
        self.batcher = engine.batcher(max_batch)
        self._cond = threading.Condition()
        self._inbox: list[Any] = []
        self._pending: deque[_Add] = deque()  # engine thread only: requests waiting for a slot
        self._rows: dict[int, tuple[Ticket, int]] = {}  # batcher handle -> (ticket, choice index)
        self._in_flight = 0
        self._stopping = False
        self.steps = 0
        self.tokens = 0
        self._thread = threading.Thread(target=self._run, name="llmlab-engine", daemon=True)
        self._setup: Callable[[], None] | None = None
        self._ready = threading.Event()

    def start(self, setup: Callable[[], None] | None = None) -> None:
        """Start the engine thread; `setup` runs first on it (e.g. its thread policy)."""
        self._setup = setup
        self._thread.start()
        self._ready.wait(timeout=60)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout=30)

    @property
    def in_flight(self) -> int:
        """Rows queued or running (what admission counts)."""
        return self._in_flight

    # -- from the event loop ----------------------------------------------------------------------------

    def submit(
        self,
        prompt: Sequence[int],
        configs: Sequence[GenerationConfig],
        hooks: Sequence[AllowedTokens | None] | None = None,
        prefix_embeds: Any = None,
    ) -> Ticket:
        """Queue one row per config (the choices of one request, same prompt); returns their ticket.

        `prefix_embeds` (P, H) are virtual tokens put before the prompt (a prompt-tuning adapter's).

        Raises:
            Overloaded: admitting these rows would put more than max_batch + max_waiting in flight.
        """
        n = len(configs)
        ticket = Ticket(asyncio.get_running_loop(), n, prompt_tokens=len(prompt))
        with self._cond:
            if self._stopping:
                raise Overloaded("the server is shutting down")
            if self._in_flight + n > self.max_batch + self.max_waiting:
                raise Overloaded(
                    f"{self._in_flight} sequences are being generated or waiting, the most this server "
                    f"admits is {self.max_batch + self.max_waiting}; retry shortly"
                )
            self._in_flight += n
            self._inbox.append(
                _Add(ticket, list(prompt), list(configs), list(hooks or [None] * n), prefix_embeds)
            )
            self._cond.notify()
        return ticket

    def cancel(self, ticket: Ticket) -> None:
        """Stop a ticket's rows that are still queued or running (they leave at the next step)."""
        if ticket.done or ticket.cancelled:
            return
        ticket.cancelled = True
        with self._cond:
            self._inbox.append(ticket)
            self._cond.notify()

    def call(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        """Run `fn` on the engine thread between two decode steps; its result or exception in the future."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._cond:
            if self._stopping:
                raise Overloaded("the server is shutting down")
            self._inbox.append((fn, future))
            self._cond.notify()
        return future

    async def run(self, fn: Callable[[], T]) -> T:
        """`call` awaited from the event loop."""
        return await asyncio.wrap_future(self.call(fn))

    # -- on the engine thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._setup is not None:
                self._setup()
        finally:
            self._ready.set()
        while True:
            with self._cond:
                while not (self._inbox or self._pending or self.batcher.busy or self._stopping):
                    self._cond.wait()
                if self._stopping:
                    break
                inbox, self._inbox = self._inbox, []
            for item in inbox:
                self._apply(item)
            self._admit()
            if self.batcher.busy:
                self._step()
        self._fail_all(Overloaded("the server is shutting down"))

    def _apply(self, item: Any) -> None:
        if isinstance(item, _Add):
            self._pending.append(item)
        elif isinstance(item, Ticket):
            waiting = [p for p in self._pending if p.ticket is item]
            for p in waiting:  # not in the batch yet: it never will be
                self._pending.remove(p)
                self._release(len(p.configs))
                item.finished = item.choices
            for handle in item.handles:
                self.batcher.cancel(handle)
        else:
            fn, future = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn())
                except BaseException as e:  # handed to the caller, who turns it into an HTTP error
                    future.set_exception(e)

    def _admit(self) -> None:
        """Move waiting requests into the batch while slots and this step's prefill budget last."""
        budget, admitted = self.prefill_tokens, 0
        while self._pending:
            item = self._pending[0]
            rows = len(item.configs)
            if self.batcher.running + self.batcher.waiting + rows > self.max_batch and self.batcher.busy:
                return
            cost = rows * len(item.prompt)
            if admitted and cost > budget:
                return
            self._pending.popleft()
            self._add(item)
            budget, admitted = budget - cost, admitted + 1

    def _add(self, item: _Add) -> None:
        ticket = item.ticket
        rows = []
        try:
            for config, hook in zip(item.configs, item.hooks, strict=True):
                rows.append(
                    self.batcher.add(
                        item.prompt, config, allowed_tokens=hook, prefix_embeds=item.prefix_embeds
                    )
                )
        except Exception as e:  # a prompt the engine refuses: the request gets the error, nothing runs
            for row in rows:
                self.batcher.cancel(row.handle)
                self._rows[row.handle] = (ticket, -1)
            self._release(len(item.configs) - len(rows))
            ticket.finished = ticket.choices
            ticket.deliver(e)
            return
        for index, row in enumerate(rows):
            ticket.handles.append(row.handle)
            self._rows[row.handle] = (ticket, index)
        if ticket.cancelled:
            for row in rows:
                self.batcher.cancel(row.handle)

    def _step(self) -> None:
        try:
            events = self.batcher.step()
        except Exception as e:
            self._fail_all(e)
            return
        self.steps += 1
        by_ticket: dict[int, tuple[Ticket, list[tuple[int, Event]]]] = {}
        for event in events:
            found = self._rows.get(event.row)
            if found is None:
                continue
            ticket, index = found
            if event.token is not None:
                self.tokens += 1
            if event.finish_reason is not None:
                del self._rows[event.row]
                self._release(1)
                if index < 0:
                    continue
                ticket.finished += 1
            if index >= 0:
                by_ticket.setdefault(id(ticket), (ticket, []))[1].append((index, event))
        for ticket, items in by_ticket.values():
            ticket.deliver(items)

    def _release(self, n: int) -> None:
        with self._cond:
            self._in_flight -= n

    def _fail_all(self, error: BaseException) -> None:
        """End every request in flight with `error` and start over with an empty batch."""
        tickets = {id(t): t for t, _ in self._rows.values()}
        with self._cond:
            inbox, self._inbox = self._inbox, []
        inbox += list(self._pending)
        self._pending.clear()
        for item in inbox:
            if isinstance(item, _Add):
                tickets[id(item.ticket)] = item.ticket
                self._release(len(item.configs))
            elif isinstance(item, tuple):
                item[1].set_exception(error)
        self._release(len(self._rows))
        self._rows.clear()
        for ticket in tickets.values():
            ticket.finished = ticket.choices
            ticket.deliver(error)
        self.batcher = self.engine.batcher(self.max_batch)
