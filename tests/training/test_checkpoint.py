"""Checkpoint files: atomic folders, optimizer state by parameter name, RNG round trip, export to the run root."""

from __future__ import annotations

import random

import pytest
import torch

from llmlab.training import checkpoint as ckpt


def test_folder_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "checkpoints" / "step-00000003"

    def crash(folder):
        (folder / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError, match="power cut"):
        ckpt.write_folder_atomically(final, crash)
    assert not final.exists() and (final.parent / ".step-00000003.tmp").is_dir()
    ckpt.remove_partial(tmp_path)
    assert list((tmp_path / "checkpoints").iterdir()) == []
    ckpt.write_folder_atomically(final, lambda f: (f / "a.txt").write_text("ok"))
    assert (final / "a.txt").read_text() == "ok"


def test_optimizer_state_is_restored_by_name_and_rng_too(tmp_path):
    a, b = torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))
    opt = torch.optim.AdamW([a, b], lr=0.1)
    (a.sum() + b.square().sum()).backward()
    opt.step()
    tensors = ckpt.optimizer_tensors(opt, {id(a): "w", id(b): "bias"})
    assert sorted(tensors) == [
        f"optimizer/{n}/{k}" for n in ("bias", "w") for k in ("exp_avg", "exp_avg_sq", "step")
    ]
    # A new optimizer over the same parameters in another order gets each moment back by name.
    fresh = torch.optim.AdamW([b, a], lr=0.1)
    ckpt.load_optimizer(fresh, {id(a): "w", id(b): "bias"}, tensors)
    torch.testing.assert_close(fresh.state[a]["exp_avg"], opt.state[a]["exp_avg"])
    torch.testing.assert_close(fresh.state[b]["exp_avg_sq"], opt.state[b]["exp_avg_sq"])

    saved = ckpt.rng_state()
    expected = (torch.rand(3), random.random())
    ckpt.restore_rng(*saved)
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]


def test_export_links_the_model_files_to_the_run_root(tmp_path):
    step = tmp_path / "checkpoints" / "step-00000002"
    step.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", ckpt.STATE_JSON, ckpt.STATE_TENSORS):
        (step / name).write_text(name)
    ckpt.export_model(step, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["config.json", "model.safetensors"]
    assert (tmp_path / "model.safetensors").read_text() == "model.safetensors"
