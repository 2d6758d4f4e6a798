"""`llmlab eval run` and `llmlab eval compare` end to end on the tiny checkpoint folder and a real peft adapter."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from harness_fakes import write_jsonl

from llmlab.cli import main
from llmlab.evaluation.scoring import METRICS

TASK = "name: echo\ninstruction: Continue the text.\ntemplate: '{input}'\nmetrics: [rouge1, chrf]\nmax_new_tokens: 12\n"
INPUTS = ["The capital of France", "Language models predict", "def add(a, b):", "Question: two plus", "Greedy decoding", "Héllo wörld"]  # fmt: skip


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and far faster when other processes share the two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def adapter(tiny_folder, tmp_path_factory) -> Path:
    """A LoRA adapter on the tiny checkpoint, made with peft, with random non-zero A and B."""
    from peft import LoraConfig, get_peft_model

    from llmlab.models import load_model

    base = load_model(tiny_folder, device="cpu").model
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], task_type="CAUSAL_LM"
    )
    model = get_peft_model(copy.deepcopy(base), config)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.2)
    folder = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(folder)
    return folder


def eval_run(capsys, folder, task, data, *extra: str) -> dict:
    code, out, err = cli(
        capsys, "eval", "run", "--model", str(folder), "--precision", "fp32", "--task", str(task), "--data",
        str(data), "--json", *extra,
    )  # fmt: skip
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """(folder, task file, data file with ids and placeholder references)."""
    tmp = tmp_path_factory.mktemp("eval")
    task = tmp / "echo.yaml"
    task.write_text(TASK)
    first = write_jsonl(
        tmp / "first.jsonl", [{"id": f"i{n}", "input": t, "reference": "x"} for n, t in enumerate(INPUTS)]
    )
    return tmp, task, first


def test_base_vs_adapter_comparison_in_one_table(capsys, tiny_folder, adapter, runs) -> None:
    """A first pass finds what each model says; the data's references are then the base model's outputs for
    items 0-2 and the adapted model's for items 3-5, so each run scores 1 on some items and less on others.
    The compare table's numbers must equal what the per-item scores in the results files give."""
    tmp, task, first = runs
    base = eval_run(capsys, tiny_folder, task, first)
    adapted = eval_run(capsys, tiny_folder, task, first, "--adapter", str(adapter))
    base_out = [i["output"] for i in base["items"]]
    adapted_out = [i["output"] for i in adapted["items"]]
    assert base_out != adapted_out  # the adapter changes what the model says
    references = base_out[:3] + adapted_out[3:]
    records = [
        {"id": f"i{n}", "input": t, "reference": r}
        for n, (t, r) in enumerate(zip(INPUTS, references, strict=True))
    ]
    data = write_jsonl(tmp / "data.jsonl", records)
    base_json, adapted_json, md = tmp / "base.json", tmp / "adapted.json", tmp / "cmp.md"
    base = eval_run(capsys, tiny_folder, task, data, "--output", str(base_json), "--name", "base")
    adapted = eval_run(capsys, tiny_folder, task, data, "--adapter", str(adapter), "--output", str(adapted_json), "--name", "lora")  # fmt: skip
    assert [i["output"] for i in base["items"]] == base_out  # references are not in the prompt
    assert json.loads(base_json.read_text()) == base and adapted["adapter"] == str(adapter)
    # The scores of the runs, recomputed from the per-item values the results files store.
    rouge_b = np.mean([i["scores"]["rouge1"] for i in base["items"]])
    rouge_a = np.mean([i["scores"]["rouge1"] for i in adapted["items"]])
    chrf_b = METRICS["chrf"].aggregate(np.array([i["statistics"]["chrf"] for i in base["items"]]))
    chrf_a = METRICS["chrf"].aggregate(np.array([i["statistics"]["chrf"] for i in adapted["items"]]))
    assert base["metrics"] == pytest.approx({"rouge1": rouge_b, "chrf": chrf_b}, abs=1e-12)
    for run, own in ((base, range(3)), (adapted, range(3, 6))):  # an output scored against itself: chrF 100
        for i in own:
            assert METRICS["chrf"].aggregate(
                np.array([run["items"][i]["statistics"]["chrf"]])
            ) == pytest.approx(100)
    code, out, err = cli(
        capsys, "eval", "compare", str(base_json), str(adapted_json), "--json", "--markdown", str(md)
    )
    assert code == 0, err
    comparison = json.loads(out)
    assert (
        comparison["names"] == ["base", "lora"]
        and comparison["paired_by"] == "id"
        and comparison["items"] == 6
    )
    rows = {r["metric"]: r for r in comparison["rows"]}
    assert rows["rouge1"]["values"] == pytest.approx([rouge_b, rouge_a], abs=1e-12)
    assert rows["chrf"]["values"] == pytest.approx([chrf_b, chrf_a], abs=1e-9)
    for name, (b, a) in {"rouge1": (rouge_b, rouge_a), "chrf": (chrf_b, chrf_a)}.items():
        diff = rows[name]["differences"][0]
        assert diff["value"] == pytest.approx(a - b, abs=1e-9)
        assert diff["low"] <= diff["value"] <= diff["high"]
    code, table, _ = cli(capsys, "eval", "compare", str(base_json), str(adapted_json))
    assert code == 0
    line = next(row for row in table.splitlines() if "chrf" in row)
    for cell in (f"{chrf_b:.2f}", f"{chrf_a:.2f}", f"{chrf_a - chrf_b:+.2f}"):
        assert cell in line
    assert "paired bootstrap over 6 items paired by id, 1000 resamples, seed 0" in table
    assert f"| rouge1 | {rouge_b:.4f} | {rouge_a:.4f} | {rouge_a - rouge_b:+.4f} | [" in md.read_text()


def test_run_table_markdown_limit_and_decoding(capsys, tiny_folder, runs, tmp_path) -> None:
    _, task, first = runs
    md = tmp_path / "run.md"
    code, out, err = cli(
        capsys, "eval", "run", "--model", str(tiny_folder), "--precision", "fp32", "--task", str(task), "--data",
        str(first), "--limit", "2", "--markdown", str(md),
    )  # fmt: skip
    assert code == 0, err
    assert "echo:" in out and "2 items from" in out and "rouge1" in out and "chrf" in out
    assert "decoding: greedy, max_new_tokens=12" in out
    assert (
        "| metric | value |" in md.read_text() and "- decoding: greedy, max_new_tokens=12" in md.read_text()
    )
    sampled = eval_run(capsys, tiny_folder, task, first, "--limit", "1", "--temperature", "0.8", "--seed", "1", "--max-new-tokens", "3")  # fmt: skip
    assert sampled["generation"]["greedy"] is False and sampled["generation"]["max_new_tokens"] == 3
    assert len(sampled["items"]) == 1


def test_shots_file_examples_in_the_prompt(capsys, tiny_folder, runs, tmp_path) -> None:
    _, task, first = runs
    shots = write_jsonl(tmp_path / "shots.jsonl", [{"input": "Shot one", "reference": "answer one"}, {"input": "Shot two", "reference": "answer two"}])  # fmt: skip
    result = eval_run(
        capsys, tiny_folder, task, first, "--limit", "1", "--shots", "1", "--shots-file", str(shots)
    )
    prompt = result["items"][0]["prompt"]
    assert "Continue the text.\n\nShot one<|im_end|>\n<|im_start|>assistant\nanswer one<|im_end|>" in prompt
    assert "Shot two" not in prompt and result["shots"] == 1 and result["shots_source"] == str(shots)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "sumarize"], "error: unknown task 'sumarize'; built-in tasks: classify, qa, summarize"),
        (["--adapter", "/no/such/adapter"], "error: adapter folder not found: /no/such/adapter"),
        (["--limit", "0"], "error: --limit must be >= 1, got 0"),
        (["--shots", "9"], "error: --shots 9 needs at least that many other items in"),
        (["--top-p", "2"], "error: --top-p must be in (0, 1], got 2.0"),
    ],
)
def test_run_errors_exit_2(capsys, tiny_folder, runs, argv, message) -> None:
    _, task, first = runs
    args = ["eval", "run", "--model", str(tiny_folder), "--task", str(task), "--data", str(first), *argv]
    code, _, err = cli(capsys, *args)
    assert code == 2 and message in err


def test_bad_data_line_and_different_data_exit_2(capsys, tiny_folder, runs, tmp_path) -> None:
    _, task, first = runs
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"input": "ok", "reference": "r"}, {"input": "no reference"}])
    code, _, err = cli(
        capsys, "eval", "run", "--model", str(tiny_folder), "--task", str(task), "--data", str(bad)
    )
    assert code == 2 and f"error: {bad}:2: missing field(s) 'reference'" in err
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    eval_run(capsys, tiny_folder, task, first, "--limit", "2", "--output", str(one))
    eval_run(capsys, tiny_folder, task, first, "--limit", "3", "--output", str(two))
    code, _, err = cli(capsys, "eval", "compare", str(one), str(two))
    assert code == 2 and "error: runs over different data (ids only in" in err and "i2" in err


@pytest.mark.parametrize("method", ["adapters", "prompt-tuning"])
def test_any_adapter_kind_through_load_adapter(capsys, tiny_folder, runs, tmp_path, method) -> None:
    """`--adapter` takes any kind of adapter (here a bottleneck adapter and a soft prompt, saved by llmlab with
    random non-zero weights): the outputs are the engine's with that adapter on the model, unmerged, and
    differ from the base model's."""
    from llmlab.generation import Engine, GenerationConfig
    from llmlab.models import load_model
    from llmlab.peft.adapters import apply_adapters
    from llmlab.peft.checkpoint import save_adapter
    from llmlab.peft.prompt_tuning import apply_prompt_tuning

    _, task, first = runs
    loaded = load_model(tiny_folder, device="cpu")
    torch.manual_seed(3)
    if method == "adapters":
        apply_adapters(loaded.model, bottleneck=8)
        with torch.no_grad():
            for name, param in loaded.model.named_parameters():
                if ".up." in name:
                    param.normal_(0.0, 0.5)
    else:
        apply_prompt_tuning(loaded.model, 4, "vocab")
    save_adapter(loaded.model, tmp_path / "adapter")
    adapted = eval_run(capsys, tiny_folder, task, first, "--adapter", str(tmp_path / "adapter"))
    base = eval_run(capsys, tiny_folder, task, first)
    engine = Engine(loaded.model, loaded.tokenizer, loaded.kind, "fp32")
    prompts = [i["prompt"] for i in adapted["items"]]
    expected = engine.generate(prompts, GenerationConfig(greedy=True, max_new_tokens=12))
    assert [i["output"] for i in adapted["items"]] == [c.text for c in expected]
    assert [i["output"] for i in adapted["items"]] != [i["output"] for i in base["items"]]


def test_an_encoder_only_model_is_refused_with_or_without_an_adapter(capsys, runs, adapter, tmp_path) -> None:
    """Both ways of loading go through the same checks: minilm-like encoders cannot generate."""
    from rag.ragkit import save_tiny_bert

    bert = save_tiny_bert(tmp_path / "bert")
    _, task, first = runs
    for extra in ([], ["--adapter", str(adapter)]):
        args = ["eval", "run", "--model", str(bert), "--task", str(task), "--data", str(first), *extra]
        code, _, err = cli(capsys, *args)
        assert code == 2 and "is an encoder-only model: it embeds text but cannot generate" in err, err
