"""Continuous batching: requests join a running batch between decode steps and leave when they finish or are
cancelled, each with its own decoding settings (Yu et al., 2022, "Orca", OSDI: iteration-level scheduling).

    batcher = engine.batcher(max_batch=8)
    row = batcher.add(prompt, GenerationConfig(temperature=0.7, seed=1))   # queued: a Row
    for event in batcher.step(): ...          # Event(row, text, token, logprob, finish_reason) per row
    batcher.cancel(row.handle)                # leaves at the next step; its slot is free for the queue

One `step()`:
  1. cancelled rows leave (their KV-cache rows are dropped) and report `finish_reason="cancelled"`;
  2. queued requests fill the free slots: they are prefilled together (one left-padded batch per shared
     prefix and similar prompt length, so little is padding; identical prompts once, their KV-cache rows
     copied) and joined to the running batch
     (backends.py: right-aligned KV caches, per-row positions);
  3. every running row gets one token, chosen with its own settings: rows are grouped by their
     `SamplingParams` and each group goes through the same pure samplers (sampling.py), each row drawing
     from its own generator (seeded with its own seed, on the model's device), after its own token-mask
     hook and with its own repetition-penalty row;
  4. tokens are detokenized and checked against each row's stop tokens, stop strings and budget; finished
     rows leave; the others are fed their token (one forward for the whole batch). When the row is greedy and
     prompt lookup is on for it (`GenerationConfig.prompt_lookup`), each row's token goes in with a draft copied from its context and the
     pass verifies them all (speculative.py); the accepted draft tokens' logits wait in `_ahead` and the
     next steps choose from them without a forward pass, so events still come one token per row per step.

A row that joins a running batch gets the tokens it gets alone: its positions are its own, padding is
masked out, and its randomness is its own generator. Not thread-safe: one thread calls add/cancel/step
(a server puts requests on a queue that its decoding thread drains).
Invariants: tests/generation/test_batcher.py (joins on the fused and transformers backends equal runs alone,
per-row seeds, cancellation frees the slot, device placement checked on fake CUDA tensors).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import torch

from llmlab.errors import ConfigError
from llmlab.generation.backends import DecoderBackend, DecoderState, PromptBatch
from llmlab.generation.config import GenerationConfig, SamplingParams
from llmlab.generation.rows import AllowedTokens, Event, Row
from llmlab.generation.sampling import choose_tokens, make_generator
from llmlab.generation.speculative import PromptLookup, SpeculationStats, accepted_length, draft_batch

if TYPE_CHECKING:
    from llmlab.generation.engine import Engine

_Group = tuple[SamplingParams, torch.Tensor | None, list[torch.Generator]]

SPECULATE_ROWS = 1
"""Most running rows for prompt lookup. A verify pass costs B (1 + k) positions and a batch keeps only the
draft tokens that every row accepts; batch 1 (`llmlab ask`, `rag ask`, `generate`) is where it was measured
to win (bench/speculative.py). Batches of greedy rows work (tests/generation/test_speculative.py) but are
not on by default until measured."""


class Batcher:
    """A running batch over one engine: `add` requests, `step` them, `cancel` them.

    Args:
        max_batch: rows decoded together; more requests wait in a queue (first come, first served).
    """

    share_prefill = True
    """Prefill identical prompts once and copy their KV-cache rows (False: each row its own prefill, the
    reference of bench/shared_prefill.py). A copied row is the one-row prefill; in fp32 the tokens are the
    same either way, while int8 rounds a many-row prefill slightly apart from a one-row one."""

    def __init__(self, engine: Engine, max_batch: int = 8):
        if max_batch < 1:
            raise ConfigError(f"max_batch must be at least 1, got {max_batch}")
        self.engine, self.backend, self.max_batch = engine, engine.backend, max_batch
        self.device = torch.device(self.backend.device)
        self._handles = 0
        self._queue: deque[Row] = deque()
        self._running: list[Row] = []  # in the order of the backend state's rows
        self._cancelled: set[int] = set()
        self._state: object | None = None
        self._logits: torch.Tensor | None = None  # (B, V) next-token logits of the running rows
        self._seen: torch.Tensor | None = None  # (B, V) bool: tokens each row has seen (repetition penalty)
        self._groups: list[_Group] = []
        self._hooks = self._logprobs = self._speculate = False
        self._ahead: list[torch.Tensor] = []  # (B, V) logits of accepted draft tokens, one per coming step
        self._lookups: dict[int, PromptLookup] = {}  # row handle -> its n-gram index (prompt lookup)
        self.speculation = SpeculationStats()
        self.speculate_rows = SPECULATE_ROWS
        """Prompt lookup runs while at most this many rows are running (see SPECULATE_ROWS)."""

    # -- requests ------------------------------------------------------------------------------------------

    def add(
        self,
        prompt: str | Sequence[int],
        config: GenerationConfig | None = None,
        *,
        allowed_tokens: AllowedTokens | None = None,
        prefix_embeds: torch.Tensor | None = None,
    ) -> Row:
        """Queue a prompt (text or token ids) with its own settings; it joins the batch at the next step.

        Args:
            allowed_tokens: (row handle, generated ids) -> (V,) bool mask of allowed next tokens, or None.
            prefix_embeds: (P, H) embeddings put before the prompt (prompt tuning's virtual tokens).

        Raises:
            ConfigError, ModelError: an empty prompt, or one that leaves no room in the context window.
        """
        config = config or GenerationConfig()
        ids = self.engine.encode(prompt)
        prefix = 0 if prefix_embeds is None else int(prefix_embeds.shape[0])
        budget = self.engine.budget(len(ids), prefix, config.max_new_tokens)
        stop_ids = set(config.stop_token_ids) | (set() if config.ignore_eos else self.engine.eos_ids)
        row = Row(
            self._handles, self.engine.tokenizer, ids, config, stop_ids, budget, allowed_tokens, prefix_embeds
        )
        self._handles += 1
        self._queue.append(row)
        return row

    def cancel(self, handle: int) -> bool:
        """Stop a queued or running row at the next step (its event says "cancelled"); False if unknown."""
        alive = any(r.handle == handle for r in self._queue) or any(r.handle == handle for r in self._running)
        if alive:
            self._cancelled.add(handle)
        return alive

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._queue)

    @property
    def busy(self) -> bool:
        """True while some row is queued or running."""
        return bool(self._queue or self._running)

    def run(self) -> Iterator[list[Event]]:
        """Step until every row has finished; yields each step's events."""
        while self.busy:
            yield self.step()

    # -- one step ------------------------------------------------------------------------------------------

    def step(self) -> list[Event]:
        """Drop cancelled rows, admit queued ones, then one token for every running row."""
        events = self._drop_cancelled() if self._cancelled else []
        self.engine.threads.update()  # at most every 0.25 s it looks at the load (llmlab/generation/threads.py)
        if self._queue and not self._ahead:  # newcomers wait until the accepted draft tokens are out
            self._admit()
        if not self._running:
            return events
        assert self._logits is not None
        tokens = self._choose(self._logits)  # (B,) on the model's device
        chosen: list[int] = self._to_host(tokens)  # the step's one wait for the device
        logps = self._to_host(self._token_logprobs(self._logits, tokens)) if self._logprobs else None
        keep = []
        for j, row in enumerate(self._running):
            logp = None if logps is None or row.logprobs is None else logps[j]
            piece = row.push(chosen[j], logp)
            events.append(Event(row.handle, piece, chosen[j], logp, row.finish))
            if row.finish is None:
                keep.append(j)
        if self._seen is not None:
            self._seen[torch.arange(len(chosen), device=self.device), tokens] = True
        if len(keep) < len(self._running):
            tokens = tokens.index_select(0, self._keep(keep))
        if self._running:
            self._logits = self._ahead.pop(0) if self._ahead else self._advance(tokens)
        return events

    def _advance(self, tokens: torch.Tensor) -> torch.Tensor:
        """The running rows' next logits (B, V) after feeding them `tokens` (B,): a plain step, or (prompt
        lookup, speculative.py) one verify pass over each row's token and draft, whose accepted draft tokens
        then come out one per step from `_ahead` without a forward pass."""
        drafts = self._drafts() if self._speculate else None
        if drafts is None:
            return self.backend.step(self._state, tokens)
        backend = cast(DecoderBackend, self.backend)  # `_speculate` is only set for one that can verify
        state = cast(DecoderState, self._state)
        ids, valid = draft_batch(drafts, self.engine.pad_id)  # (B, K)
        inputs = torch.cat([tokens[:, None], ids.to(self.device)], dim=1)  # (B, 1 + K)
        logits = backend.verify(state, inputs)  # (B, 1 + K, V)
        accepted = accepted_length(logits, ids, valid)
        backend.rollback(state, ids.shape[1] - accepted)
        self.speculation.passes += 1
        self.speculation.drafted += int(valid.sum())
        self.speculation.accepted += accepted * len(drafts)
        self._ahead = list(logits[:, 1 : accepted + 1].unbind(1))
        return logits[:, 0]

    def _drafts(self) -> list[list[int]] | None:
        """Each running row's draft (after its newest token), or None unless every row has one."""
        room = cast(DecoderBackend, self.backend).room(cast(DecoderState, self._state))
        drafts = []
        for row in self._running:
            lookup = self._lookups.get(row.handle)
            if lookup is None:
                lookup = self._lookups[row.handle] = PromptLookup(row.prompt_ids)
            lookup.extend(row.ids[len(lookup.ids) - len(row.prompt_ids) :])
            limit = row.remaining if room is None else min(row.remaining, room - 1)
            draft = lookup.draft(limit)
            if not draft:
                return None
            drafts.append(draft)
        return drafts

    def _choose(self, logits: torch.Tensor) -> torch.Tensor:
        if self._hooks:
            logits = self._apply_hooks(logits.clone())
        if len(self._groups) == 1:
            params, _, generators = self._groups[0]
            return choose_tokens(logits, params, generators, self._seen)
        tokens = torch.empty(logits.shape[0], dtype=torch.long, device=self.device)
        for params, index, generators in self._groups:
            assert index is not None
            seen = None if self._seen is None else self._seen.index_select(0, index)
            tokens[index] = choose_tokens(logits.index_select(0, index), params, generators, seen)
        return tokens

    def _apply_hooks(self, logits: torch.Tensor) -> torch.Tensor:
        for j, row in enumerate(self._running):
            allowed = None if row.allowed_tokens is None else row.allowed_tokens(row.handle, row.ids)
            if allowed is not None:
                logits[j] = logits[j].masked_fill(~allowed.to(self.device), float("-inf"))
        return logits

    @staticmethod
    def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """(B,) log p(token) under the model, before temperature, filters and masks."""
        return torch.log_softmax(logits.float(), dim=-1).gather(1, tokens[:, None]).squeeze(1)

    @staticmethod
    def _to_host(values: torch.Tensor) -> list[Any]:
        return values.tolist()

    # -- membership ----------------------------------------------------------------------------------------

    def _drop_cancelled(self) -> list[Event]:
        events = [Event(r.handle, r.cancel(), None, None, "cancelled") for r in self._queue_cancelled()]
        keep = [j for j, r in enumerate(self._running) if r.handle not in self._cancelled]
        for row in self._running:
            if row.handle in self._cancelled:
                events.append(Event(row.handle, row.cancel(), None, None, "cancelled"))
        if len(keep) < len(self._running):
            self._keep(keep)
        self._cancelled.clear()
        return events

    def _queue_cancelled(self) -> list[Row]:
        gone = [r for r in self._queue if r.handle in self._cancelled]
        if gone:
            self._queue = deque(r for r in self._queue if r.handle not in self._cancelled)
        return gone

    def _keep(self, keep: list[int]) -> torch.Tensor:
        """Keep these running rows (positions in the batch); returns their index on the model's device."""
        index = torch.tensor(keep, dtype=torch.long, device=self.device)
        self._running = [self._running[j] for j in keep]
        if not keep:
            self._state = self._logits = self._seen = None
            self._ahead = []
        else:
            self.backend.select(self._state, keep)
            assert self._logits is not None
            self._logits = self._logits.index_select(0, index)
            self._seen = None if self._seen is None else self._seen.index_select(0, index)
            self._ahead = [logits.index_select(0, index) for logits in self._ahead]
        handles = {r.handle for r in self._running}
        self._lookups = {h: lookup for h, lookup in self._lookups.items() if h in handles}
        self._regroup()
        return index

    def _admit(self) -> None:
        room = self.max_batch - len(self._running)
        if room <= 0 or (self._running and not self.backend.can_join):
            return
        if self.backend.can_join:
            newcomers = [self._queue.popleft() for _ in range(min(room, len(self._queue)))]
        else:  # one prefill, no join: the queue's head and the rows behind it that share its prefix
            prefix = self._queue[0].prefix_embeds
            newcomers = []
            while self._queue and len(newcomers) < room and self._queue[0].prefix_embeds is prefix:
                newcomers.append(self._queue.popleft())
        groups = _by_prefix(newcomers)
        if self.backend.can_join:  # prompts of very different lengths are prefilled apart: less padding
            groups = [part for group in groups for part in _similar_lengths(group)]
        for group in groups:
            # Identical prompts (n samples of one prompt) are prefilled once and their rows copied: the
            # prefill of a long prompt costs as much as all its decode steps, and a row alone is what each
            # of them would get anyway.
            keys: list[object] = [
                tuple(r.prompt_ids) if self.share_prefill else i for i, r in enumerate(group)
            ]
            first: dict[object, int] = {}  # each distinct prompt -> its row in the prefill
            where = [first.setdefault(k, len(first)) for k in keys]  # each row's prompt among those prefilled
            batch = pad_prompts([group[keys.index(k)].prompt_ids for k in first], self.engine.pad_id)
            batch.prefix_embeds = group[0].prefix_embeds
            logits, state = self.backend.prefill(batch, max(r.budget for r in group))
            if len(first) < len(group):
                self.backend.select(state, where)
                logits = logits.index_select(0, torch.tensor(where, dtype=torch.long, device=logits.device))
            if self._state is None:
                self._state, self._logits = state, logits
            else:
                assert self._logits is not None
                room_needed = max(r.remaining for r in (*self._running, *group))
                self._state = self.backend.join(self._state, state, room_needed)
                self._logits = torch.cat([self._logits, logits])
            self._seen = self._seen_rows(self._seen, group)
            self._running += group
        for row in newcomers:
            if not row.params.is_greedy:
                row.generator = make_generator(row.config.seed, self.device)
        if self._seen is None and any(r.params.repetition_penalty != 1.0 for r in self._running):
            ids = [r.prompt_ids + r.ids for r in self._running]
            self._seen = seen_mask(ids, self.backend.vocab_size, self.device)
        self._regroup()

    def _seen_rows(self, seen: torch.Tensor | None, rows: Sequence[Row]) -> torch.Tensor | None:
        """`seen` with rows appended for `rows` (their prompt and generated tokens), or None while no
        running row needs it."""
        if seen is None:
            return None
        return torch.cat([seen, seen_mask([r.prompt_ids + r.ids for r in rows], seen.shape[1], self.device)])

    def _regroup(self) -> None:
        """Cache, per membership, the sampling groups, and whether hooks or log-probs are needed."""
        by_params: dict[SamplingParams, list[int]] = {}
        for j, row in enumerate(self._running):
            by_params.setdefault(row.params, []).append(j)
        whole = len(by_params) == 1
        self._groups = [
            (
                params,
                None if whole else torch.tensor(js, dtype=torch.long, device=self.device),
                [] if params.is_greedy else [_generator(self._running[j]) for j in js],
            )
            for params, js in by_params.items()
        ]
        self._hooks = any(r.allowed_tokens is not None for r in self._running)
        self._logprobs = any(r.logprobs is not None for r in self._running)
        exact = getattr(self.backend, "exact_verify", False)
        self._speculate = (
            getattr(self.backend, "can_verify", False)
            and not self._hooks
            and self._seen is None
            and len(self._running) <= self.speculate_rows
            and all(r.params.is_greedy and (r.config.prompt_lookup or exact) for r in self._running)
            and not any(r.config.prompt_lookup is False for r in self._running)
        )


def _generator(row: Row) -> torch.Generator:
    assert row.generator is not None, "a sampled row gets its generator when it joins"
    return row.generator


def _by_prefix(rows: list[Row]) -> list[list[Row]]:
    """Rows that share a prefix tensor (or have none) are prefilled together, in order of arrival."""
    groups: dict[int, list[Row]] = {}
    for row in rows:
        groups.setdefault(id(row.prefix_embeds), []).append(row)
    return list(groups.values())


PAD_WASTE = 0.25
"""A prefill takes another distinct prompt while its padding stays within this share of its real tokens
(or PAD_TOKENS a prompt): a 1,400-token prompt among 500-token ones had made 8 rows cost 2.4 times their
tokens, and attention grows with the square of the padded length."""
PAD_TOKENS = 64


def _similar_lengths(rows: list[Row]) -> list[list[Row]]:
    """`rows` split into prefills of similar prompt lengths (longest first; identical prompts together, as
    they are prefilled once), each padding at most PAD_WASTE of its real tokens or PAD_TOKENS a prompt."""
    parts: list[list[Row]] = []
    width = real = distinct = 0
    seen: set[tuple[int, ...]] = set()
    for row in sorted(rows, key=lambda r: -len(r.prompt_ids)):
        key, length = tuple(row.prompt_ids), len(row.prompt_ids)
        if key in seen:
            parts[-1].append(row)
            continue
        padding = width * (distinct + 1) - (real + length)
        if parts and padding <= max(PAD_WASTE * (real + length), PAD_TOKENS * (distinct + 1)):
            parts[-1].append(row)
            real, distinct = real + length, distinct + 1
        else:
            parts.append([row])
            width, real, distinct, seen = length, length, 1, set()
        seen.add(key)
    return parts


def pad_prompts(ids: list[list[int]], pad_id: int) -> PromptBatch:
    """Left-pad token-id lists into a (B, S) batch with its (B, S) mask (on the CPU; backends move it)."""
    width = max(len(p) for p in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.bool)
    for r, p in enumerate(ids):
        if p:
            input_ids[r, width - len(p) :] = torch.tensor(p)
            mask[r, width - len(p) :] = True
    return PromptBatch(input_ids, mask, [len(p) for p in ids])


def seen_mask(ids: list[list[int]], vocab_size: int, device: torch.device) -> torch.Tensor:
    """(B, V) bool on `device`: True at every token id row b has seen."""
    seen = torch.zeros(len(ids), vocab_size, dtype=torch.bool, device=device)
    for r, p in enumerate(ids):
        if p:
            seen[r, torch.tensor(p, dtype=torch.long, device=device)] = True
    return seen
