"""Measure the real peak memory of inference and training steps, for checking llmlab's estimates.

Run as a subprocess: `python peak_rss.py '{"family": "llama", "config": {...}, "runs": [...]}'`; prints one JSON
list with the peak growth of resident memory (bytes) for each run. Each run builds its model from the config,
resets the kernel's peak-RSS counter (`/proc/self/clear_refs` = 5, Linux), runs the workload the way a user
would (transformers `generate`, AdamW steps, peft LoRA and prompt tuning) and reads VmHWM. The baseline is the
resident size just before the model is built; imports and a warm-up run on a tiny model come first so that
lazily loaded code does not count. Start it with MALLOC_MMAP_THRESHOLD_=65536 so freed tensors go back to the
kernel at once and resident memory follows live memory.
"""

from __future__ import annotations

import gc
import json
import os
import sys

import torch

FAMILIES = {
    "llama": ("LlamaConfig", "AutoModelForCausalLM", "CAUSAL_LM", ["q_proj", "v_proj"]),
    "t5": ("T5Config", "AutoModelForSeq2SeqLM", "SEQ_2_SEQ_LM", ["q", "v"]),
    "bert": ("BertConfig", "AutoModel", "FEATURE_EXTRACTION", ["query", "value"]),
}


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def build(family: str, config: dict, dtype: torch.dtype = torch.float32):
    import transformers

    config_cls, auto, _, _ = FAMILIES[family]
    cfg = getattr(transformers, config_cls)(**config)
    return getattr(transformers, auto).from_config(cfg, dtype=dtype)


def step_loss(family: str, model, ids: torch.Tensor) -> torch.Tensor:
    if family == "bert":
        return model(input_ids=ids).last_hidden_state.mean()
    return model(input_ids=ids, labels=ids).loss


def run_inference(family: str, model, ids: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad():
        if family == "bert":
            model(input_ids=ids)
        elif family == "t5":  # an output as long as the input: the decoder's cache holds seq_len positions
            n = ids.shape[1]
            model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        else:  # the prompt fills the cache; one new token
            model.generate(ids, max_new_tokens=1, min_new_tokens=1, do_sample=False)


def run_training(family: str, method: str, model, ids: torch.Tensor) -> None:
    from peft import LoraConfig, PromptTuningConfig, get_peft_model

    _, _, task, targets = FAMILIES[family]
    if method == "lora":
        model = get_peft_model(model, LoraConfig(task_type=task, r=8, lora_alpha=16, target_modules=targets))
    elif method == "prompt":
        model = get_peft_model(model, PromptTuningConfig(task_type=task, num_virtual_tokens=20))
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    for _ in range(2):
        step_loss(family, model, ids).backward()
        optimizer.step()
        optimizer.zero_grad()


def measure(family: str, config: dict, run: dict) -> int:
    ids = torch.randint(4, config["vocab_size"], (run["batch_size"], run["seq_len"]))
    gc.collect()
    base = rss()
    dtype = torch.bfloat16 if run["scenario"] == "inference bf16" else torch.float32
    model = build(family, config, dtype)
    reset_peak()  # building the model has its own transient peak (initialisation), not counted
    if run["scenario"].startswith("inference"):
        run_inference(family, model, ids)
    else:
        run_training(family, run["scenario"], model, ids)
    growth = peak() - base
    del model
    gc.collect()
    return growth


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    torch.manual_seed(0)
    family, config = spec["family"], spec["config"]
    tiny = {**config, "vocab_size": 64}
    for run in spec["runs"]:  # warm-up: import and run every code path once
        measure(family, tiny, {**run, "batch_size": 1, "seq_len": 4})
    print(json.dumps([measure(family, config, run) for run in spec["runs"]]))


if __name__ == "__main__":
    main()
