"""Continuous batching on tiny random models: rows that join a running batch get the tokens they get alone
(greedy and seeded sampling, on the fused and the transformers backends), per-row settings, cancellation
frees the slot, encoder-decoder rows wait for the batch to drain, and every tensor stays on the model's
device (checked on the `meta` device with a dispatch mode that refuses ops mixing devices)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from llmlab.generation import Engine, GenerationConfig
from llmlab.generation.backends import DecoderBackend

PROMPTS = ["The capital of France is", "Hello", "def add(a, b):\n    return", "Question: what is two plus"]
# One token per step (no prompt lookup), so that a schedule's step numbers count tokens; joins under
# speculative decoding: tests/generation/test_speculative.py.
GREEDY = GenerationConfig(greedy=True, max_new_tokens=12, ignore_eos=True, prompt_lookup=False)


def alone(engine: Engine, prompt: str, config: GenerationConfig) -> list[int]:
    return engine.generate([prompt], config)[0].token_ids


def decode_widths(engine: Engine) -> list[int]:
    """Record the batch width of every decode step (a joined row is decoded in the same forward)."""
    widths: list[int] = []
    backend = engine.backend
    assert isinstance(backend, DecoderBackend)
    step = backend.step
    backend.step = lambda state, tokens: (widths.append(tokens.shape[0]), step(state, tokens))[1]  # type: ignore[method-assign]
    return widths


def run_schedule(engine: Engine, schedule: dict[int, list[tuple[str, GenerationConfig]]], max_batch: int = 4):
    """Add rows at the given step numbers; step until all have finished. Returns the rows in order added."""
    batcher = engine.batcher(max_batch)
    rows, step = [], 0
    while step <= max(schedule) or batcher.busy:
        rows += [batcher.add(p, c) for p, c in schedule.get(step, [])]
        batcher.step()
        step += 1
    return rows


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_rows_joining_a_running_batch_get_the_tokens_they_get_alone(tiny_model, tiny_tok, precision):
    """Row 0 starts alone; row 1 (shorter prompt: more padding) joins at step 2; row 2, with a prompt longer
    than the batch's cache, joins at step 4 (the running rows are re-padded); row 1 leaves early (3 tokens),
    which drops cache columns that only it used, and row 3 joins after that."""
    engine = Engine(tiny_model, tiny_tok, precision=precision)
    widths = decode_widths(engine)
    short = GenerationConfig(greedy=True, max_new_tokens=3, ignore_eos=True)
    long_prompt = " ".join(PROMPTS) + " " + PROMPTS[0]
    schedule = {
        0: [(PROMPTS[0], GREEDY)],
        2: [(PROMPTS[1], short)],
        4: [(long_prompt, GREEDY)],
        7: [(PROMPTS[2], GREEDY)],
    }
    rows = run_schedule(engine, schedule)
    expected = [alone(engine, p, c) for step in sorted(schedule) for p, c in schedule[step]]
    assert [r.ids for r in rows] == expected
    assert [r.finish for r in rows] == ["length"] * 4
    assert max(widths) == 3 and widths[:2] == [1, 1], widths


def test_per_row_settings_and_seeds_give_the_same_text_as_alone(tiny_model, tiny_tok):
    """Five rows with different decoding settings, joining at different steps: each row's tokens, text and
    log-probs equal a run of that prompt alone with the same settings."""
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    base = dict(max_new_tokens=10, ignore_eos=True)
    configs = [
        GenerationConfig(temperature=1.0, top_p=0.9, seed=5, **base),
        GenerationConfig(temperature=0.7, top_k=20, seed=9, logprobs=True, **base),
        GenerationConfig(greedy=True, repetition_penalty=1.5, **base),
        GenerationConfig(temperature=1.3, min_p=0.05, repetition_penalty=1.2, seed=3, **base),
        GenerationConfig(temperature=1.0, top_p=1.0, seed=5, **base),  # same seed as row 0, other prompt
    ]
    schedule = {0: [(PROMPTS[0], configs[0]), (PROMPTS[1], configs[1])], 3: [(PROMPTS[2], configs[2])]}
    schedule[5] = [(PROMPTS[3], configs[3]), (PROMPTS[1], configs[4])]
    rows = run_schedule(engine, schedule, max_batch=8)
    for row, (prompt, config) in zip(rows, [pc for s in sorted(schedule) for pc in schedule[s]], strict=True):
        ref = engine.generate([prompt], config)[0]
        assert (row.ids, row.text) == (ref.token_ids, ref.text)
        if config.logprobs:
            assert row.logprobs == pytest.approx(ref.logprobs, abs=1e-5)
    assert rows[0].ids != rows[4].ids and len({tuple(r.ids) for r in rows}) == 5


def test_cancel_frees_the_slot_for_a_waiting_row(tiny_model, tiny_tok):
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    batcher = engine.batcher(max_batch=1)
    first = batcher.add(PROMPTS[0], GREEDY)
    assert [e.row for e in batcher.step()] == [first.handle] and batcher.running == 1
    second = batcher.add(PROMPTS[1], GREEDY)
    third = batcher.add(PROMPTS[2], GREEDY)
    batcher.step()
    assert batcher.waiting == 2 and len(first.ids) == 2, "no free slot: the new rows wait"
    assert batcher.cancel(third.handle) and batcher.cancel(first.handle)
    events = batcher.step()
    assert [(e.row, e.finish_reason) for e in events[:2]] == [
        (third.handle, "cancelled"),
        (first.handle, "cancelled"),
    ]
    assert events[2].row == second.handle and events[2].token is not None, "the freed slot is used at once"
    assert batcher.running == 1 and batcher.waiting == 0
    for _ in batcher.run():
        pass
    assert second.ids == alone(engine, PROMPTS[1], GREEDY)
    assert first.completion().finish_reason == "cancelled" and len(first.ids) == 2
    assert third.ids == [] and not batcher.cancel(first.handle)


def test_token_mask_hook_applies_to_its_own_row_only(tiny_model, tiny_tok):
    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    allowed = torch.zeros(len(tiny_tok), dtype=torch.bool)
    allowed[[10, 20, 30]] = True
    sampled = GenerationConfig(temperature=1.0, seed=1, max_new_tokens=8, ignore_eos=True)
    batcher = engine.batcher()
    masked = batcher.add(PROMPTS[0], sampled, allowed_tokens=lambda row, ids: allowed)
    free = batcher.add(PROMPTS[0], sampled)
    for _ in batcher.run():
        pass
    assert set(masked.ids) <= {10, 20, 30} and not set(free.ids) <= {10, 20, 30}
    assert free.ids == alone(engine, PROMPTS[0], sampled)


def test_encoder_decoder_rows_wait_for_the_batch_to_drain(tiny_tok):
    from tiny import tiny_t5

    engine = Engine(tiny_t5(len(tiny_tok)), tiny_tok, kind="encoder-decoder")
    batcher = engine.batcher()
    first = batcher.add(PROMPTS[0], GREEDY)
    batcher.step()
    second = batcher.add(PROMPTS[1], GREEDY)
    batcher.step()
    assert batcher.running == 1 and batcher.waiting == 1
    for _ in batcher.run():
        pass
    assert [first.ids, second.ids] == [alone(engine, p, GREEDY) for p in PROMPTS[:2]]
    # Identical prompts are encoded once there too; each row samples as it does alone.
    config = GenerationConfig(temperature=1.0, seed=3, max_new_tokens=8, ignore_eos=True)
    got = [c.token_ids for c in engine.generate([PROMPTS[2]] * 3, config)]
    assert got == [alone(engine, PROMPTS[2], dataclasses.replace(config, seed=3 + i)) for i in range(3)]


class SameDevice(TorchDispatchMode):
    """Fails any ATen op whose tensor arguments live on two devices, as CUDA does (0-dim CPU scalars and
    explicit copies excepted), and records the devices it saw."""

    def __init__(self) -> None:
        super().__init__()
        self.devices: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        tensors = [t for t in tree_leaves((args, kwargs or {})) if isinstance(t, torch.Tensor)]
        devices = {t.device.type for t in tensors if not (t.device.type == "cpu" and t.dim() == 0)}
        if len(devices) > 1 and func is not torch.ops.aten.copy_.default:
            raise AssertionError(f"{func} mixes devices {sorted(devices)}")
        self.devices |= devices
        return func(*args, **(kwargs or {}))


def test_decoding_keeps_every_tensor_on_the_model_device(tiny_model, tiny_tok, monkeypatch):
    """The model on `meta` stands in for an accelerator: prefill, joins, steps, sampling (per-row groups,
    repetition penalty, token-mask hook, log-probs) and cancellation run under `SameDevice`; generators are
    asked for on the model's device. Only the chosen tokens come back to the host (faked here: meta tensors
    hold no values)."""
    import copy

    from llmlab.generation import batcher as batcher_module

    engine = Engine(copy.deepcopy(tiny_model).to("meta"), tiny_tok, precision="fp32")
    asked: list[torch.device] = []
    # meta has no generators: record the device asked for, hand out a CPU one (meta ops ignore it)
    monkeypatch.setattr(
        batcher_module, "make_generator", lambda seed, device: (asked.append(device), torch.Generator())[1]
    )
    monkeypatch.setattr(batcher_module.Batcher, "_to_host", staticmethod(lambda t: [7] * t.shape[0]))
    allowed = torch.ones(len(tiny_tok), dtype=torch.bool)
    base = dict(max_new_tokens=4, ignore_eos=True)
    batcher = engine.batcher()
    with SameDevice() as mode:
        batcher.add(PROMPTS[0], GenerationConfig(greedy=True, repetition_penalty=1.3, logprobs=True, **base))
        batcher.step()
        batcher.add(PROMPTS[2], GenerationConfig(temperature=0.8, top_k=5, top_p=0.9, seed=1, **base))
        doomed = batcher.add(
            PROMPTS[1], GenerationConfig(min_p=0.1, seed=2, **base), allowed_tokens=lambda r, ids: allowed
        )
        batcher.step()
        batcher.cancel(doomed.handle)
        events = [e for step in batcher.run() for e in step]
    assert "meta" in mode.devices
    assert asked == [torch.device("meta")] * 2
    assert sorted(e.finish_reason for e in events if e.finish_reason) == ["cancelled", "length", "length"]


@pytest.mark.parametrize("precision", ["fp32", "hf"])
def test_identical_prompts_are_prefilled_once_and_sample_as_they_do_alone(tiny_model, tiny_tok, precision):
    """n samples of one prompt (what `feedback generate` asks): the prompt is prefilled once and its KV-cache
    rows copied, and each row samples exactly the tokens it samples alone with its own seed."""
    engine = Engine(tiny_model, tiny_tok, precision=precision)
    widths: list[int] = []
    prefill = engine.backend.prefill
    engine.backend.prefill = lambda batch, n: (widths.append(batch.input_ids.shape[0]), prefill(batch, n))[1]  # type: ignore[method-assign]
    config = GenerationConfig(temperature=1.0, seed=5, max_new_tokens=10, ignore_eos=True)
    prompts = [PROMPTS[0], PROMPTS[0], PROMPTS[1], PROMPTS[0]]
    got = [c.token_ids for c in engine.generate(prompts, config)]
    assert widths == [2]  # two distinct prompts, one prefill
    widths.clear()
    expected = [alone(engine, p, dataclasses.replace(config, seed=5 + i)) for i, p in enumerate(prompts)]
    assert got == expected and widths == [1, 1, 1, 1]
    assert len({tuple(t) for t in got}) == 4  # the copied rows still sample apart


def test_prompts_of_very_different_lengths_are_prefilled_apart(tiny_model, tiny_tok):
    """A long prompt among short ones gets its own prefill (it would make the others mostly padding); prompts
    of similar lengths still share one, identical ones are prefilled once, and every row gets the greedy
    tokens it gets alone."""
    from llmlab.generation.batcher import _similar_lengths

    engine = Engine(tiny_model, tiny_tok, precision="fp32")
    shapes: list[tuple[int, int]] = []
    prefill = engine.backend.prefill
    engine.backend.prefill = lambda batch, n: (
        shapes.append(tuple(batch.input_ids.shape)),
        prefill(batch, n),
    )[1]  # type: ignore[method-assign]
    long = " ".join([PROMPTS[1]] * 40)
    prompts = [PROMPTS[0], long, PROMPTS[1], PROMPTS[0]]
    lengths = [len(engine.encode(p)) for p in prompts]
    assert lengths[1] > 200 and max(lengths[0], lengths[2]) < 10  # 200 x 2 - 210 padding > 64 x 2
    config = GenerationConfig(greedy=True, max_new_tokens=8, ignore_eos=True)
    got = [c.token_ids for c in engine.generate(prompts, config)]
    assert shapes == [(1, lengths[1]), (2, max(lengths[0], lengths[2]))]  # the long one alone, then two
    shapes.clear()
    assert got == [alone(engine, p, config) for p in prompts]

    class Fake:
        def __init__(self, n: int, token: int = 1) -> None:
            self.prompt_ids = [token] * n

    rows = [Fake(500), Fake(1400), Fake(480), Fake(500), Fake(20, 2), Fake(90, 3)]
    parts = _similar_lengths(rows)  # type: ignore[arg-type]
    # 1400 alone (500 more would pad 900 > 25% of 1900); 500, its twin and 480 (20 padding); 90 would pad
    # 2 x 410 > 25% of 1070; 90 and 20 pad 70 <= 64 x 2
    assert [[len(r.prompt_ids) for r in part] for part in parts] == [[1400], [500, 500, 480], [90, 20]]
