"""`llmlab generate/chat --adapter` and `llmlab peft merge | export | import | info | params`, through the
real CLI entry point on a tiny checkpoint folder."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from kinds import randomize

from llmlab.cli import main
from llmlab.generation import Engine, GenerationConfig
from llmlab.models import load_model
from llmlab.peft import apply_lora
from llmlab.peft.adapters import apply_adapters
from llmlab.peft.checkpoint import save_adapter
from llmlab.peft.prompt_tuning import apply_prompt_tuning, soft_prompt
from llmlab.prompting import render_chat

GREEDY = ["--greedy", "--max-new-tokens", "8", "--precision", "fp32", "--ignore-eos"]


@pytest.fixture(scope="module")
def adapters(tiny_folder, tmp_path_factory):
    """Three adapters for the tiny checkpoint, and the text each makes the library generate for "Hello"."""
    root = tmp_path_factory.mktemp("adapters")
    loaded = load_model(tiny_folder, device="cpu")
    prompt = render_chat(loaded.tokenizer, [{"role": "user", "content": "Hello"}])
    config = GenerationConfig(greedy=True, max_new_tokens=8, ignore_eos=True)
    made = {}
    for name, setup in {
        "lora": lambda m: (apply_lora(m, targets="all-linear", rank=4), randomize(m, "lora_", std=0.3)),
        "adapters": lambda m: (apply_adapters(m, bottleneck=8), randomize(m, "bottleneck", std=0.3)),
        "prompt": lambda m: (torch.manual_seed(0), apply_prompt_tuning(m, 4)),
    }.items():
        model = copy.deepcopy(loaded.model)
        setup(model)
        save_adapter(model, root / name / "final", base_model=str(tiny_folder))
        hooks = {"prefix_embeds": soft_prompt(model)} if name == "prompt" else {}
        engine = Engine(model, loaded.tokenizer, precision="fp32")
        made[name] = engine.generate([prompt], config, **hooks)[0].text
    base = Engine(loaded.model, loaded.tokenizer, precision="fp32").generate([prompt], config)[0].text
    assert len({base, *made.values()}) == 4  # every adapter changes the text
    return root, made


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("method", ["lora", "adapters", "prompt"])
def test_generate_with_adapter_equals_the_library(capsys, tiny_folder, adapters, method: str) -> None:
    root, made = adapters
    code, out, err = run(capsys, "generate", "Hello", "--model", str(tiny_folder), "--adapter", str(root / method), *GREEDY, "--json")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["text"] == made[method]


def test_chat_switches_adapters_on_one_base(capsys, monkeypatch, tiny_folder, adapters) -> None:
    root, made = adapters
    lines = iter(
        ["/adapter prompt", "Hello", "/adapter off", "/reset", "/adapter nope", "/adapter lora", "Hello"]
    )
    monkeypatch.setattr("builtins.input", lambda _="": next(lines))
    args = ["--adapter", f"lora={root / 'lora'}", "--adapter", f"prompt={root / 'prompt'}"]
    with pytest.raises(StopIteration):
        main(["chat", "--model", str(tiny_folder), *args, *GREEDY, "--json"])
    replies = [json.loads(chunk) for chunk in _json_objects(capsys.readouterr().out)]
    texts = [r["text"] for r in replies if "text" in r]
    assert texts == [made["prompt"], made["lora"]]
    infos = [r["info"] for r in replies if "info" in r]
    assert infos[0] == "adapter: prompt" and infos[1] == "adapter: off (base model)"
    assert "usage: /adapter NAME|off with NAME one of lora, prompt" in infos[3]


def _json_objects(text: str) -> list[str]:
    objects, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth, start = depth + 1, (i if depth == 0 else start)
        elif ch == "}":
            depth -= 1
            if depth == 0:
                objects.append(text[start : i + 1])
    return objects


def test_merge_export_import_info(capsys, tiny_folder, adapters, tmp_path) -> None:
    root, made = adapters
    code, out, err = run(capsys, "peft", "merge", str(root / "lora"), "--out", str(tmp_path / "merged"))
    assert code == 0, err
    assert "merged lora adapter" in out and "model.safetensors" in out
    code, out, _ = run(capsys, "generate", "Hello", "--model", str(tmp_path / "merged"), *GREEDY, "--json")
    assert json.loads(out)["text"] == made["lora"]
    code, _, err = run(capsys, "peft", "merge", str(root / "adapters"), "--out", str(tmp_path / "m2"))
    assert (
        code == 2 and "cannot be merged into a plain checkpoint: bottleneck adapters add a nonlinear" in err
    )
    assert run(capsys, "peft", "export", str(root / "lora"), "--out", str(tmp_path / "p"))[0] == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    code, _, err = run(capsys, "peft", "export", str(root / "adapters"), "--out", str(tmp_path / "q"))
    assert code == 2 and "holds a adapters adapter, which the peft library has no format for" in err
    code, out, _ = run(capsys, "peft", "import", str(tmp_path / "p"), "--out", str(tmp_path / "imported"))
    assert code == 0 and "imported a lora adapter (" in out
    code, out, _ = run(capsys, "generate", "Hello", "--model", str(tiny_folder), "--adapter", str(tmp_path / "imported"), *GREEDY, "--json")  # fmt: skip
    assert json.loads(out)["text"] == made["lora"]
    code, out, _ = run(capsys, "peft", "info", str(root / "adapters"), "--json")
    info = json.loads(out)
    assert info["method"] == "adapters" and info["parameters"] == 4 * (2 * 64 * 8 + 8 + 64)
    code, _, err = run(
        capsys, "generate", "Hi", "--model", str(tiny_folder), "--adapter", str(tmp_path / "nope")
    )
    assert code == 2 and "adapter folder not found" in err


def test_params_table(capsys, tiny_folder) -> None:
    code, out, _ = run(capsys, "peft", "params", "--model", str(tiny_folder), "--json")
    rows = {r["method"]: r for r in json.loads(out)}
    assert code == 0 and list(rows) == ["full", "lora", "adapters", "prompt-tuning", "selective"]
    hidden, layers = 64, 2
    # A (r, in) + B (out, r) for q (64 -> 64) and v (64 -> 32: 2 of 4 heads carry keys and values)
    assert rows["lora"]["trainable"] == layers * 8 * ((hidden + hidden) + (hidden + hidden // 2))
    assert rows["prompt-tuning"]["trainable"] == 20 * hidden
    assert rows["selective"]["trainable"] == (2 * layers + 1) * hidden
    assert rows["full"]["total"] == rows["selective"]["total"]


def test_every_loader_records_the_adapter_it_puts_on(tiny_folder, adapters) -> None:
    """engine.adapter is the adapter folder (final/ inside the run folder) whichever loader put it on, through
    Engine.from_loaded: the library's load_engine (merged), the CLI's merged (rag) or unmerged (eval run);
    None without one. The adapter is on: the engine generates the adapted text."""
    import argparse

    from llmlab.cli.session import load_engine as cli_load_engine
    from llmlab.generation.engine import load_engine

    root, made = adapters
    config = GenerationConfig(greedy=True, max_new_tokens=8, ignore_eos=True)

    def generated(engine: Engine) -> str:
        return engine.generate(
            [render_chat(engine.tokenizer, [{"role": "user", "content": "Hello"}])], config
        )[0].text

    engine = load_engine(str(tiny_folder), "cpu", "fp32", adapter=root / "lora")
    assert engine.adapter == root / "lora" / "final" and generated(engine) == made["lora"]
    for merge in (True, False):
        args = argparse.Namespace(
            model=str(tiny_folder), device="cpu", precision="fp32", adapter=str(root / "lora")
        )
        _, engine = cli_load_engine(args, merge=merge)
        assert engine.adapter == root / "lora" / "final" and generated(engine) == made["lora"]
    args = argparse.Namespace(model=str(tiny_folder), device="cpu", precision="fp32", adapter=None)
    assert cli_load_engine(args)[1].adapter is None
    assert load_engine(str(tiny_folder), "cpu", "fp32").adapter is None
