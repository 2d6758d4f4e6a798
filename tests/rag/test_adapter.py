"""The grounded-answer adapter: which adapter `--adapter auto|none|DIR` picks, the packaged files, the prompt
it implies (zero-shot with an adapter), and the CLI merging it into the model it loads."""

from __future__ import annotations

import argparse
import json

import pytest
from answer_fakes import FakeEngine, keyword_store

from llmlab.errors import ConfigError
from llmlab.prompting.grounded import EXAMPLE_DOCUMENTS
from llmlab.rag.adapter import GROUNDED_ADAPTER, answer_adapter
from llmlab.rag.answer import AnswerConfig, Answerer


def test_auto_is_the_packaged_adapter_for_the_packaged_model_only(tmp_path):
    assert answer_adapter("auto", None) == GROUNDED_ADAPTER  # None: the default model
    assert answer_adapter("auto", "smollm2-135m-instruct") == GROUNDED_ADAPTER
    assert answer_adapter("auto", "runs/my-model") is None  # another model: the adapter would not fit it
    assert answer_adapter("none", "smollm2-135m-instruct") is None
    assert answer_adapter(str(GROUNDED_ADAPTER), "x") == GROUNDED_ADAPTER
    with pytest.raises(
        ConfigError, match=r"adapter folder not found: .*nowhere; give --adapter a run folder"
    ):
        answer_adapter(str(tmp_path / "nowhere"), None)


def test_the_packaged_adapter_is_a_small_lora_on_attention():
    config = json.loads((GROUNDED_ADAPTER / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == 8 and config["lora_alpha"] == 16
    assert sorted(config["target_modules"]) == ["k_proj", "o_proj", "q_proj", "v_proj"]
    size = (GROUNDED_ADAPTER / "adapter_model.safetensors").stat().st_size
    assert 3_000_000 < size < 4_000_000  # 921,600 fp32 parameters: "a few MB"


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    yield from keyword_store(tmp_path_factory.mktemp("kb"))


@pytest.mark.parametrize(
    ("adapter", "prompt", "few_shot"),
    [
        (None, "auto", True),
        ("a-folder", "auto", False),
        ("a-folder", "few-shot", True),
        (None, "zero-shot", False),
    ],
)
def test_prompt_auto_is_zero_shot_with_an_adapter(tiny_tok, kb, adapter, prompt, few_shot):
    engine = FakeEngine(tiny_tok, ["Bread bakes for 40 minutes [1]."])
    engine.adapter = adapter
    Answerer(kb, engine, AnswerConfig(prompt=prompt, mode="dense")).stream(
        "How long does bread bake?"
    ).result()
    assert (EXAMPLE_DOCUMENTS[0] in engine.prompts[0]) == few_shot


def test_the_cli_merges_the_resolved_adapter(monkeypatch):
    from llmlab.cli import rag

    seen = []

    def load(args, merge=False):
        seen.append((args, merge))
        return None, "engine"

    monkeypatch.setattr("llmlab.cli.session.load_engine", load)
    base = {"model": "smollm2-135m-instruct", "device": "cpu", "precision": "auto"}
    assert rag._load_engine(argparse.Namespace(**base)) == "engine"  # --adapter not given: auto
    assert seen[-1][0].adapter == str(GROUNDED_ADAPTER) and seen[-1][1]  # merged into the weights
    rag._load_engine(argparse.Namespace(**base, adapter="auto"))
    assert seen[-1][0].adapter == str(GROUNDED_ADAPTER)
    rag._load_engine(argparse.Namespace(**base, adapter="none"))
    assert seen[-1][0].adapter is None
    rag._load_engine(argparse.Namespace(**base | {"model": "gpt2"}, adapter="auto"))
    assert seen[-1][0].adapter is None


def test_make_adapter_trains_what_is_packaged():
    """`make adapter`'s recipe names the packaged adapter's settings, and the committed records it trains from
    hold what build.py says: 750 answerable (the answer copied from its block), 250 with the block left out."""
    import lzma
    import re
    from collections import Counter
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    recipe = (root / "Makefile").read_text().split("\nadapter: venv\n", 1)[1].split("\n\n", 1)[0]
    meta = json.loads((GROUNDED_ADAPTER / "llmlab_adapter.json").read_text())
    rank, alpha = meta["config"]["rank"], meta["config"]["alpha"]
    assert f"--rank {rank} --alpha {alpha:g} --targets {','.join(meta['config']['targets'])}" in recipe
    assert re.search(r"build\.py --chat \S+/chat\.jsonl", recipe) and "finetune lora" in recipe
    with lzma.open(root / "bench/data/grounded-answers/train.jsonl.xz", "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    assert Counter(r["kind"] for r in records) == {"answerable": 750, "not_retrieved": 250}
    for r in records:
        assert len(r["blocks"]) == 3
        if r["kind"] == "answerable":
            assert r["answer"] in r["blocks"][r["block"] - 1] and len(r["answer"].split()) <= 5
        else:
            assert r["answer"] is None and r["block"] is None
