"""PEFT-format LoRA adapters merged by llmlab, against the real peft library on tiny models."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from llmlab.errors import ConfigError, DataError, ModelError
from llmlab.generation import Engine, GenerationConfig
from llmlab.peft.peft_format import merge_lora_adapter, read_adapter_config, runs_only_merged

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run faster on one thread, and far faster when other processes share the two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def randomize_lora(peft_model, seed: int = 1) -> None:
    """peft initialises B = 0 (a no-op adapter); random A and B make every merged weight differ."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * 0.1)


def save_adapter(base, folder: Path, seed: int = 1, **lora_kwargs):
    """Wrap a copy of `base` with peft LoRA, randomise it, save it; return the (unmerged) PeftModel."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(task_type="CAUSAL_LM", **({"r": 4, "lora_alpha": 8} | lora_kwargs))
    peft_model = get_peft_model(copy.deepcopy(base), config)
    randomize_lora(peft_model, seed)
    peft_model.eval()
    peft_model.save_pretrained(folder)
    return peft_model


@pytest.fixture(scope="module")
def llama(tiny_tok):
    from tiny import tiny_llama

    return tiny_llama(len(tiny_tok), seed=3)


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids).logits


IDS = torch.tensor([[5, 17, 42, 99, 7, 250, 13, 64], [1, 2, 3, 4, 5, 6, 7, 8]])


@pytest.mark.parametrize(
    "lora_kwargs",
    [
        {"target_modules": LLAMA_TARGETS},
        {"target_modules": ["q_proj", "v_proj"], "use_rslora": True, "r": 8, "lora_alpha": 4},
        {
            "target_modules": ["q_proj", "v_proj", "down_proj"],
            "rank_pattern": {"down_proj": 2},
            "alpha_pattern": {"layers.1.self_attn.v_proj": 32},
        },
        {"target_modules": ["embed_tokens", "lm_head", "q_proj"]},
    ],
    ids=["all-linear", "rslora", "rank-alpha-patterns", "embeddings-and-head"],
)
def test_merged_logits_match_peft_model(llama, tmp_path, lora_kwargs) -> None:
    """Merged-by-us logits equal peft's unmerged PeftModel forward at fp32 tolerances; the base is untouched."""
    before = logits(llama, IDS)
    peft_model = save_adapter(llama, tmp_path, **lora_kwargs)
    merged = merge_lora_adapter(llama, tmp_path)
    assert runs_only_merged(tmp_path) == ("embed_tokens" in lora_kwargs["target_modules"])
    expected = logits(peft_model, IDS)
    assert not torch.allclose(expected, before, atol=1e-3)  # the adapter really changes the model
    torch.testing.assert_close(logits(merged, IDS), expected)
    torch.testing.assert_close(logits(llama, IDS), before, rtol=0, atol=0)
    target = copy.deepcopy(llama)
    assert merge_lora_adapter(target, tmp_path, inplace=True) is target
    torch.testing.assert_close(logits(target, IDS), expected)


def test_tied_head_target_does_not_change_the_embeddings(tiny_tok, tmp_path) -> None:
    """LoRA on a tied lm_head changes the head only (peft's forward adds the update to the head's output)."""
    from tiny import tiny_llama

    tied = tiny_llama(len(tiny_tok), seed=4, tie_word_embeddings=True)
    peft_model = save_adapter(tied, tmp_path, target_modules=["lm_head"])
    merged = merge_lora_adapter(tied, tmp_path)
    assert runs_only_merged(tmp_path)  # the head is tied to the embeddings: only merging handles it
    torch.testing.assert_close(logits(merged, IDS), logits(peft_model, IDS))
    torch.testing.assert_close(merged.model.embed_tokens.weight, tied.model.embed_tokens.weight)


def test_fan_in_fan_out_conv1d_matches_peft(tmp_path) -> None:
    """GPT-2 keeps Conv1D weights as (in, out): the update is transposed (fan_in_fan_out=True)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=320, n_positions=64, n_embd=32, n_layer=2, n_head=2)).eval()
    peft_model = save_adapter(gpt2, tmp_path, target_modules=["c_attn", "c_proj"], fan_in_fan_out=True)
    assert read_adapter_config(tmp_path / "adapter_config.json").fan_in_fan_out
    assert runs_only_merged(tmp_path)  # so `eval run --adapter` merges it rather than refusing it
    torch.testing.assert_close(logits(merge_lora_adapter(gpt2, tmp_path), IDS), logits(peft_model, IDS))


def test_greedy_generation_matches_merged_peft_model(llama, tiny_tok, tmp_path) -> None:
    """Our engine (fused fp32 path) on our merged model gives the same tokens as transformers' generate on
    peft's `merge_and_unload()` model, and they differ from the base model's tokens."""
    peft_model = save_adapter(llama, tmp_path, target_modules=LLAMA_TARGETS, seed=7)
    reference = peft_model.merge_and_unload()
    prompt = tiny_tok("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = reference.generate(
            prompt, max_new_tokens=12, do_sample=False, eos_token_id=None, pad_token_id=3
        )
    expected = out[0, prompt.shape[1] :].tolist()
    config = GenerationConfig(greedy=True, max_new_tokens=12, ignore_eos=True)
    ours = Engine(merge_lora_adapter(llama, tmp_path), tiny_tok, precision="fp32")
    base = Engine(llama, tiny_tok, precision="fp32")
    ids = prompt[0].tolist()
    assert ours.generate([ids], config)[0].token_ids == expected
    assert base.generate([ids], config)[0].token_ids != expected


def test_missing_folder_and_missing_files(llama, tmp_path) -> None:
    with pytest.raises(
        ConfigError, match=r"adapter folder not found: .*nope; give --adapter a folder holding"
    ):
        merge_lora_adapter(llama, tmp_path / "nope")
    run = tmp_path / "run"
    save_adapter(llama, run / "final", target_modules=["q_proj"])
    with pytest.raises(ConfigError, match=r"not a PEFT adapter folder: adapter_config.json is missing \(found one in sub-folder\(s\) final\)"):  # fmt: skip
        merge_lora_adapter(llama, run)
    (run / "final" / "adapter_model.safetensors").unlink()
    with pytest.raises(ConfigError, match=r"adapter_model\.safetensors is missing"):
        merge_lora_adapter(llama, run / "final")


def test_prompt_tuning_and_ia3_adapters_are_refused(llama, tmp_path) -> None:
    from peft import IA3Config, PromptTuningConfig, get_peft_model

    for name, config in {
        "pt": PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
        "ia3": IA3Config(task_type="CAUSAL_LM", target_modules=["k_proj", "v_proj", "down_proj"]),
    }.items():
        get_peft_model(copy.deepcopy(llama), config).save_pretrained(tmp_path / name)
    with pytest.raises(
        ConfigError, match="peft_type 'PROMPT_TUNING' is not supported; llmlab loads LoRA adapters"
    ):
        merge_lora_adapter(llama, tmp_path / "pt")
    with pytest.raises(ConfigError, match="peft_type 'IA3' is not supported"):
        merge_lora_adapter(llama, tmp_path / "ia3")


def test_dora_is_refused(llama, tmp_path) -> None:
    save_adapter(llama, tmp_path, target_modules=["q_proj"], use_dora=True)
    with pytest.raises(ConfigError, match=r"DoRA \(use_dora\) adapters are not supported yet"):
        merge_lora_adapter(llama, tmp_path)


def test_targets_missing_from_the_model(llama, tmp_path) -> None:
    """An adapter trained on GPT-2 (c_attn) names modules a Llama model does not have."""
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=320, n_positions=64, n_embd=32, n_layer=1, n_head=2))
    save_adapter(gpt2, tmp_path, target_modules=["c_attn"], fan_in_fan_out=True)
    with pytest.raises(ModelError) as info:
        merge_lora_adapter(llama, tmp_path)
    message = str(info.value)
    assert "targets module(s) not found in the model: transformer.h.0.attn.c_attn" in message
    assert "target_modules ['c_attn']" in message and "q_proj" in message


def test_shape_mismatch_names_the_module(llama, tiny_tok, tmp_path) -> None:
    from tiny import tiny_llama

    wider = tiny_llama(len(tiny_tok), hidden_size=128, intermediate_size=256)
    save_adapter(wider, tmp_path, target_modules=["q_proj"])
    with pytest.raises(ModelError, match=r"model.layers.0.self_attn.q_proj: LoRA update B @ A has shape \(128, 128\) but the model's weight is \(64, 64\)"):  # fmt: skip
        merge_lora_adapter(llama, tmp_path)


def test_bad_config_json_names_the_line(llama, tmp_path) -> None:
    save_adapter(llama, tmp_path, target_modules=["q_proj"])
    (tmp_path / "adapter_config.json").write_text('{\n  "peft_type": "LORA",\n  "r": 4,,\n}\n')
    with pytest.raises(DataError, match=r"adapter_config.json:3: invalid JSON"):
        merge_lora_adapter(llama, tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 4}))
    with pytest.raises(DataError, match="a LoRA adapter config needs 'lora_alpha'"):
        merge_lora_adapter(llama, tmp_path)
