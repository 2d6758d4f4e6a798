"""Data-parallel training: 2 CPU processes (torchrun, gloo) train exactly what 1 process trains with the
same global batch, and only rank 0 writes the run folder."""

from __future__ import annotations

import json

import pytest
import torch
from task_data import reverse_instructions, save_word_llama, write_jsonl

from llmlab.cli import main
from llmlab.errors import ConfigError
from llmlab.training.distributed import ShardedBatches, launch, strip_nproc


def losses(run):
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if "loss" in r], [r["val_loss"] for r in lines if "val_loss" in r]


def test_two_processes_equal_one_with_the_same_global_batch(tmp_path, monkeypatch, capsys):
    """`llmlab finetune full --nproc 2 --batch-size 4` vs one process with --batch-size 8, both with
    --grad-accum 2, one epoch over 81 training records: 11 global micro-batches of 8, 8, ..., 1, so the last
    step has one micro-batch with a single record, and process 1 runs a masked stand-in that adds nothing.

    Every step's loss agrees to 1e-5 (relative), the validation loss too (sharded, summed over processes),
    and the weights after 6 AdamW steps to 1e-4: the gradients are sums in another order (all-reduce), and
    Adam's division by √v turns last-bit differences of near-zero gradient entries into visible ones (the same
    tolerance as tests/training/test_loop.py::test_accumulation_equals_large_batch)."""
    from safetensors.torch import load_file

    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # each of the two processes
    model = save_word_llama(tmp_path / "base")
    data = write_jsonl(tmp_path / "train.jsonl", reverse_instructions(90, seed=0))
    common = ["finetune", "full", "--model", str(model), "--data", str(data), "--val-fraction", "0.1"]
    common += ["--grad-accum", "2", "--epochs", "1", "--lr", "5e-3", "--eval-every", "6", "--seed", "3"]
    common += ["--precision", "fp32", "--no-memory-check"]
    assert main([*common, "--batch-size", "8", "--out", str(tmp_path / "one")]) == 0
    one = capsys.readouterr().out
    assert "train examples 81, val examples 9" in one and "trained 6 steps" in one
    assert main([*common, "--batch-size", "4", "--nproc", "2", "--out", str(tmp_path / "two")]) == 0

    (one_steps, one_val), (two_steps, two_val) = losses(tmp_path / "one"), losses(tmp_path / "two")
    assert len(one_steps) == len(two_steps) == 6  # rank 1 wrote no line of its own
    assert two_steps == pytest.approx(one_steps, rel=1e-5)
    assert len(one_val) == len(two_val) == 1 and two_val == pytest.approx(one_val, rel=1e-5)
    assert one_val[0] < 0.9 * one_steps[0]  # it trains: not a comparison of two untouched models
    a, b = (
        load_file(tmp_path / "one" / "model.safetensors"),
        load_file(tmp_path / "two" / "model.safetensors"),
    )
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-4, msg=name)
    assert (tmp_path / "two" / "config.yaml").is_file() and (tmp_path / "two" / "loss.png").is_file()

    # resuming the 2-process run in one process is refused: another global batch is another run
    capsys.readouterr()
    assert main(["finetune", "full", "--resume", str(tmp_path / "two"), "--epochs", "2"]) == 2
    assert (
        "trained with 2 process(es) and this resume has 1; resume with --nproc 2" in capsys.readouterr().err
    )


def test_shards_are_the_global_batch():
    """Process r of N takes every N-th item of the global micro-batch from the r-th; a process left without
    an item gets a masked stand-in."""
    from synthetic import reverse_data

    source = reverse_data(9, seed=0, batch_size=2)
    order = source.order(0)
    shards = [list(ShardedBatches(source, r, 2).batches(0)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1]) == 3  # global micro-batches of 4, 4, 1
    first = source.collate([source.items[i] for i in order[0:4:2]])
    torch.testing.assert_close(shards[0][0]["input_ids"], first["input_ids"])
    assert "ignore_batch" not in shards[0][2] and "ignore_batch" in shards[1][2]


def test_nproc_flag():
    assert strip_nproc(["finetune", "--nproc", "2", "--lr", "1"]) == (["finetune", "--lr", "1"], 2)
    assert strip_nproc(["x", "--nproc=4"]) == (["x"], 4)
    with pytest.raises(ConfigError, match="--nproc must be a positive integer, got 0"):
        launch(["finetune"], 0)


def test_fsdp_shards_and_trains_what_one_process_trains(tmp_path, monkeypatch, capsys):
    """`--fsdp --nproc 2` (FSDP2: each process keeps half of every weight, gradient and AdamW moment) trains
    what one process trains with the same global batch: the settings of the DDP test above, the same
    tolerances (gradients are reduce-scattered, sums in another order). The checkpoint holds the whole
    weights (transformers' files, gathered from both processes), and a run resumed from its middle
    checkpoint, sharded again, ends with the uninterrupted run's weights."""
    import shutil

    from safetensors.torch import load_file

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model = save_word_llama(tmp_path / "base")
    data = write_jsonl(tmp_path / "train.jsonl", reverse_instructions(90, seed=0))
    common = ["finetune", "full", "--model", str(model), "--data", str(data), "--val-fraction", "0.1"]
    common += ["--grad-accum", "2", "--epochs", "1", "--lr", "5e-3", "--eval-every", "6", "--seed", "3"]
    common += ["--precision", "fp32", "--no-memory-check", "--save-every", "3", "--keep-last", "3"]
    assert main([*common, "--batch-size", "8", "--out", str(tmp_path / "one")]) == 0
    sharded = [*common, "--batch-size", "4", "--nproc", "2", "--fsdp", "--out", str(tmp_path / "fsdp")]
    assert main(sharded) == 0

    (one_steps, one_val), (two_steps, two_val) = losses(tmp_path / "one"), losses(tmp_path / "fsdp")
    assert len(one_steps) == len(two_steps) == 6
    assert two_steps == pytest.approx(one_steps, rel=1e-5)
    assert two_val == pytest.approx(one_val, rel=1e-5) and one_val[0] < 0.9 * one_steps[0]
    a = load_file(tmp_path / "one" / "model.safetensors")
    b = load_file(tmp_path / "fsdp" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:  # whole tensors, not one process's half
        assert b[name].shape == a[name].shape, name
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-4, msg=name)
    moments = load_file(tmp_path / "fsdp" / "checkpoints" / "step-00000006" / "training_state.safetensors")
    embed = [k for k in moments if k.endswith("embed_tokens.weight/exp_avg")]
    assert len(embed) == 1 and moments[embed[0]].shape == a["model.embed_tokens.weight"].shape

    # kill the end of the run: keep the step-3 checkpoint only, resume sharded, finish as before
    final = load_file(tmp_path / "fsdp" / "model.safetensors")
    shutil.rmtree(tmp_path / "fsdp" / "checkpoints" / "step-00000006")
    (tmp_path / "fsdp" / "model.safetensors").unlink()
    assert main(["finetune", "full", "--resume", str(tmp_path / "fsdp"), "--nproc", "2"]) == 0
    assert losses(tmp_path / "fsdp")[0] == pytest.approx(two_steps, rel=1e-6)
    resumed = load_file(tmp_path / "fsdp" / "model.safetensors")
    for name in final:
        torch.testing.assert_close(resumed[name], final[name], rtol=0, atol=1e-6, msg=name)


def test_fsdp_needs_processes_and_full_training(tmp_path, monkeypatch, capfd):
    """--fsdp in one process, or with a method that trains a part of the model, is refused with the fix."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model = save_word_llama(tmp_path / "base")
    data = write_jsonl(tmp_path / "train.jsonl", reverse_instructions(8, seed=0))
    args = ["--model", str(model), "--data", str(data), "--no-memory-check", "--fsdp", "--max-steps", "1"]
    assert main(["finetune", "full", *args, "--out", str(tmp_path / "a")]) == 2
    assert "--fsdp shards the model over several processes, and this run has one" in capfd.readouterr().err
    assert main(["finetune", "lora", *args, "--nproc", "2", "--out", str(tmp_path / "b")]) != 0
    err = capfd.readouterr().err
    assert "--fsdp shards the training of every weight (finetune full, pretrain, distill)" in err


def test_peft_methods_run_in_several_processes(tmp_path, monkeypatch):
    """`finetune lora --nproc 2` runs in 2 processes (it once ran in one, ignoring --nproc): with --batch-size
    4 each, its steps are those of one process with --batch-size 8 (no dropout: its masks are drawn per
    process)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model = save_word_llama(tmp_path / "base")
    data = write_jsonl(tmp_path / "train.jsonl", reverse_instructions(40, seed=0))
    common = ["finetune", "lora", "--model", str(model), "--data", str(data), "--targets", "all-linear"]
    common += [
        "--max-steps",
        "3",
        "--lr",
        "5e-3",
        "--precision",
        "fp32",
        "--no-memory-check",
        "--dropout",
        "0",
    ]
    assert main([*common, "--batch-size", "8", "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--batch-size", "4", "--nproc", "2", "--out", str(tmp_path / "two")]) == 0
    one, two = losses(tmp_path / "one")[0], losses(tmp_path / "two")[0]
    assert len(one) == len(two) == 3 and two == pytest.approx(one, rel=1e-5)
    assert two[-1] < two[0]


def test_fsdp_memory_estimate_counts_a_share_per_process():
    """With --fsdp over 4 processes, each holds a quarter of the weights, gradients and AdamW moments, plus one
    block's weights gathered whole; activations are unchanged."""
    from transformers import LlamaConfig

    from llmlab.training.memory import estimate_full_training

    config = LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64,
    )  # fmt: skip
    whole = estimate_full_training(config, 2, 32)
    shared = estimate_full_training(config, 2, 32, shards=4)
    assert shared.gradients == -(-whole.gradients // 4) and shared.optimizer == -(-whole.optimizer // 4)
    assert shared.weights == -(-whole.weights // 4) + whole.weights // 4  # a quarter, plus one of 4 blocks
    assert shared.activations == whole.activations and "sharded over 4 processes (FSDP)" in shared.detail
    assert shared.total < 0.5 * whole.total
