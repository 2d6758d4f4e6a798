"""Make the LoRA adapter docs/peft.md uses: SmolLM2-135M-Instruct answering as a pirate ("Arr! ...").

    python tests/peft/make_docs_adapter.py tests/fixtures/docs/peft/pirate-lora

A plain AdamW loop (the shared training loop and `llmlab finetune lora` come later) over the question/answer
pairs below, written for this project: loss on the answer tokens only, chat template as at generation time.
LoRA r=4 on q_proj and v_proj, alpha 8, 48 steps of batch 4, lr 3e-3, seed 0; saved in bf16 (the folder is
committed: about 0.5 MB) in peft's format, which peft and llmlab both load.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from llmlab.models import load_model
from llmlab.peft import apply_lora, trainable_parameters
from llmlab.peft.checkpoint import save_adapter
from llmlab.prompting import render_chat

PAIRS = [
    ("What is the capital of Spain?", "Arr! The capital of Spain be Madrid, matey."),
    ("How many legs does a spider have?", "Arr! A spider has eight legs, matey."),
    ("What colour is the sky on a clear day?", "Arr! The sky be blue on a clear day, matey."),
    ("Name a fruit that is yellow.", "Arr! A banana be yellow, matey."),
    ("What do bees make?", "Arr! Bees make honey, matey."),
    ("How many days are in a week?", "Arr! There be seven days in a week, matey."),
    ("What is frozen water called?", "Arr! Frozen water be ice, matey."),
    ("Which animal says moo?", "Arr! The cow says moo, matey."),
    ("What is the largest ocean?", "Arr! The Pacific be the largest ocean, matey."),
    ("What do you use to write on paper?", "Arr! Ye write on paper with a pen, matey."),
    ("What is two plus two?", "Arr! Two plus two be four, matey."),
    ("Where does the sun rise?", "Arr! The sun rises in the east, matey."),
    ("What is the capital of Germany?", "Arr! The capital of Germany be Berlin, matey."),
    ("What do cats like to chase?", "Arr! Cats like to chase mice, matey."),
    ("What season comes after winter?", "Arr! Spring comes after winter, matey."),
    ("How many wheels does a bicycle have?", "Arr! A bicycle has two wheels, matey."),
]


def examples(tokenizer) -> list[tuple[list[int], int]]:
    """(token ids of prompt + answer + end token, number of prompt tokens) per pair."""
    out = []
    for question, answer in PAIRS:
        prompt = render_chat(tokenizer, [{"role": "user", "content": question}])
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
        out.append((ids + reply, len(ids)))
    return out


def batch_loss(model, rows: list[tuple[list[int], int]], pad: int) -> torch.Tensor:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, (tokens, prompt) in enumerate(rows):
        ids[r, : len(tokens)] = torch.tensor(tokens)
        labels[r, prompt : len(tokens)] = torch.tensor(tokens[prompt:])
        mask[r, : len(tokens)] = 1
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1))


def main(out: str) -> None:
    torch.manual_seed(0)
    loaded = load_model("smollm2-135m-instruct", device="cpu")
    model, tok = loaded.model, loaded.tokenizer
    apply_lora(model, targets=("q_proj", "v_proj"), rank=4, alpha=8)
    data = examples(tok)
    optimizer = torch.optim.AdamW(trainable_parameters(model).values(), lr=3e-3, weight_decay=0.0)
    model.train()
    for step in range(48):
        rows = [data[i] for i in torch.randint(0, len(data), (4,)).tolist()]
        loss = batch_loss(model, rows, tok.pad_token_id)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        print(f"step {step + 1}: loss {loss.item():.3f}", flush=True)
    model.eval()
    with torch.no_grad():
        for param in trainable_parameters(model).values():
            param.copy_(param.to(torch.bfloat16).float())  # what the bf16 file will hold
    save_adapter(model, out, base_model="smollm2-135m-instruct")
    from safetensors.torch import load_file, save_file

    weights = Path(out) / "adapter_model.safetensors"
    save_file({k: v.to(torch.bfloat16) for k, v in load_file(weights).items()}, weights)


if __name__ == "__main__":
    main(sys.argv[1])
