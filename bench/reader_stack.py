"""Stack two LoRA adapters trained one after the other into one adapter on the first one's base model.

`make reader-adversarial` trains a second stage on the span reader: a second LoRA (warm-started) on the
packaged one merged into minilm-l6. Both deltas add up, so one adapter of rank r1 + r2 holds them exactly:

    W + s1 B1 A1 + s2 B2 A2 = W + s [B1 (s1 / s) | B2 (s2 / s)] [A1; A2]      s = alpha / (r1 + r2)

The second adapter's saved modules (the span head `qa_outputs`, trained from the merged first one) replace
the first's. The result loads like any adapter folder of `finetune lora` (llmlab.rag.reader.load_reader).
Test: tests/rag/test_reader.py::test_stacked_adapter_equals_merging_both.

Usage:
    python bench/reader_stack.py merge FIRST --out DIR            (the reader merged: the second stage's base)
    python bench/reader_stack.py stack FIRST SECOND --out DIR     (one adapter on FIRST's base model)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def scale(config: dict[str, Any]) -> float:
    """The LoRA scale of a whole adapter (no per-module patterns: `stack` refuses them), as peft computes it."""
    from llmlab.peft.peft_format import LoraAdapterConfig

    lora = LoraAdapterConfig(r=int(config["r"]), lora_alpha=float(config["lora_alpha"]),
                             use_rslora=bool(config.get("use_rslora")))  # fmt: skip
    return lora.scale("", lora.r)


def stack(first: Path, second: Path, out: Path) -> dict[str, object]:
    """Write the stacked adapter of `first` then `second` to `out`; returns its adapter_config."""
    import torch
    from safetensors.torch import load_file, save_file

    configs = [json.loads((f / "adapter_config.json").read_text(encoding="utf-8")) for f in (first, second)]
    for folder, config in zip((first, second), configs, strict=True):
        if config.get("rank_pattern") or config.get("alpha_pattern"):
            raise SystemExit(
                f"{folder}: per-module ranks or alphas (rank_pattern, alpha_pattern) are not stacked"
            )
    for key in ("target_modules", "modules_to_save", "task_type"):
        if configs[0].get(key) != configs[1].get(key):
            raise SystemExit(
                f"{second}: {key} {configs[1].get(key)} differs from {first}'s {configs[0].get(key)}"
            )
    tensors = [load_file(str(f / "adapter_model.safetensors")) for f in (first, second)]
    rank = int(configs[0]["r"]) + int(configs[1]["r"])
    stacked = dict(configs[0], r=rank, lora_alpha=scale(configs[0]) * rank, use_rslora=False)
    total = scale(stacked)
    out_tensors: dict[str, torch.Tensor] = {}
    for name, a1 in tensors[0].items():
        if name.endswith("lora_A.weight"):
            out_tensors[name] = torch.cat([a1, tensors[1][name]], dim=0)
        elif name.endswith("lora_B.weight"):
            parts = [t[name] * (scale(c) / total) for t, c in zip(tensors, configs, strict=True)]
            out_tensors[name] = torch.cat(parts, dim=1)
    missing = sorted(n for n in tensors[1] if "lora_" in n and n not in out_tensors)
    if missing:
        raise SystemExit(
            f"{second}: LoRA matrices {missing[:3]} are not in {first}; train both on one target set"
        )
    # the saved modules (the span head): the second's
    out_tensors |= {n: t for n, t in tensors[1].items() if "lora_" not in n}
    out.mkdir(parents=True, exist_ok=True)
    save_file({n: t.contiguous() for n, t in out_tensors.items()}, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps(stacked, indent=2) + "\n", encoding="utf-8")
    meta = first / "llmlab_adapter.json"
    if meta.is_file():
        info = json.loads(meta.read_text(encoding="utf-8"))
        info["config"] = dict(info.get("config", {}), rank=rank, alpha=stacked["lora_alpha"])
        info["parameters"] = sum(t.numel() for t in out_tensors.values())
        info["stacked"] = "two LoRA stages (bench/reader_stack.py)"
        (out / "llmlab_adapter.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return stacked


def merge(reader: Path, out: Path) -> None:
    """The reader in `reader` (an adapter folder) merged into its base, saved as a Hugging Face checkpoint
    (with the span head) that `finetune lora --model` trains the second stage on."""
    from llmlab.rag.reader import load_reader

    loaded = load_reader(str(reader))
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["merge", "stack"])
    parser.add_argument("first", type=Path, help="the first adapter folder (on the base model)")
    parser.add_argument(
        "second",
        type=Path,
        nargs="?",
        help="stack: the adapter trained on the first one merged into the base",
    )
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.action == "merge":
        merge(args.first, args.out)
        print(f"wrote {args.out}: {args.first} merged into its base model")
        return
    if args.second is None:
        parser.error("stack needs FIRST and SECOND")
    if args.out.resolve() in (args.first.resolve(), args.second.resolve()):
        parser.error(f"--out {args.out} is one of the inputs; give another folder")
    config = stack(args.first, args.second, args.out)
    print(f"wrote {args.out}: rank {config['r']}, alpha {config['lora_alpha']}")


if __name__ == "__main__":
    main()
