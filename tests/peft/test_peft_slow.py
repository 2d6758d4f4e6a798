"""The docs' LoRA adapter on the real SmolLM2: the peft library computes the same logits, and
`llmlab generate --adapter` answers in its trained style."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from llmlab.cli import main
from llmlab.peft import load_adapter

ADAPTER = Path(__file__).parents[1] / "fixtures" / "docs" / "peft" / "pirate-lora"


@pytest.mark.slow
def test_lora_adapter_on_smollm2_matches_peft_and_generates(smollm, capsys) -> None:
    from peft import PeftModel

    ids = smollm.tokenizer("Where does the sun set?", return_tensors="pt")["input_ids"]
    reference = PeftModel.from_pretrained(copy.deepcopy(smollm.model), ADAPTER).eval()
    ours = copy.deepcopy(smollm.model)
    load_adapter(ours, ADAPTER)
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        torch.testing.assert_close(ours(input_ids=ids).logits, expected)
    code = main(
        ["generate", "What is the capital of Italy?", "--adapter", str(ADAPTER), "--greedy", "--json"]
    )
    text = json.loads(capsys.readouterr().out)["text"]
    assert code == 0 and text.startswith("Arr!") and "Rome" in text
