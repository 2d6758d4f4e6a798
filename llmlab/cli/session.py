"""Loading a model for a CLI verb: the flags every generating verb shares, and a status line on first use."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from llmlab.cli.output import err_console


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """--model, --device, --precision: the same on every verb that generates text."""
    from llmlab.models.registry import DEFAULT_CHAT_MODEL

    parser.add_argument(
        "--model",
        default=DEFAULT_CHAT_MODEL,
        help=f"a packaged model name, a Hugging Face checkpoint folder or a .gguf file (default: {DEFAULT_CHAT_MODEL})",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, or auto (CUDA when present; default: auto)"
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "int8", "hf"],
        help="weights used for decoding Llama-family models: int8 (SmoothQuant, default on CPUs with VNNI; "
        "perplexity within 2%% of fp32), fp32 (exact), bf16, or hf (transformers' own forward)",
    )


def needs_conversion(model: str) -> bool:
    """True when loading `model` will first dequantize a GGUF file (the slow first load)."""
    from llmlab.models.gguf_cache import cache_folder, is_valid
    from llmlab.models.registry import resolve

    resolved = resolve(model)
    return resolved.gguf_file is not None and not is_valid(cache_folder(resolved.path))


def add_adapter_argument(parser: argparse.ArgumentParser) -> None:
    """--adapter [NAME=]DIR, repeatable: adapters put on the model unmerged (the first one is active)."""
    parser.add_argument(
        "--adapter",
        dest="adapters",
        action="append",
        default=[],
        metavar="[NAME=]DIR",
        help="an adapter to run the model with, unmerged: a training run folder, or a folder made by peft "
        "(LoRA, prompt tuning) or llmlab (also bottleneck adapters, selective); repeatable, the first is "
        "active (chat: /adapter NAME switches)",
    )


def adapter_specs(specs: list[str]) -> list[tuple[str, str]]:
    """[(name, folder)] from `NAME=DIR` or `DIR` (named after the folder), names made unique."""
    out: list[tuple[str, str]] = []
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or "/" in name:
            name, folder = Path(spec.rstrip("/")).name or "adapter", spec
        while name in {n for n, _ in out}:
            name += "'"
        out.append((name, folder))
    return out


def load_adapters(model: Any, specs: list[str]) -> list[str]:
    """Put the --adapter folders on the model; the first is active. Returns their names."""
    from llmlab.peft import set_active_adapter
    from llmlab.peft.checkpoint import load_adapter

    named = adapter_specs(specs)
    for name, folder in named:
        info = load_adapter(model, folder, name=name)
        err_console.print(f"[dim]adapter {name}: {info.method} from {info.source}[/dim]")
    if named:
        set_active_adapter(model, named[0][0])
    return [n for n, _ in named]


def decode_hooks(model: Any) -> dict[str, Any]:
    """Engine keyword arguments the active adapter needs: its soft prompt as `prefix_embeds`."""
    from llmlab.peft.prompt_tuning import soft_prompt

    prompt = soft_prompt(model)
    return {} if prompt is None else {"prefix_embeds": prompt}


def load_engine(args: argparse.Namespace, *, merge: bool = False) -> tuple[Any, Any]:
    """(LoadedModel, Engine) for the --model/--device/--precision flags and the verb's adapters, with a
    spinner while loading. Every verb loads this way: `eval run --adapter DIR` puts one adapter of any kind
    (LoRA, prompt tuning, bottleneck adapters, selective; an adapter or run folder, llmlab's or peft's) on the
    model; `generate`/`chat --adapter [NAME=]DIR` put adapters on the model unmerged (the first active).
    `merge=True` merges the one LoRA `args.adapter` into the weights (rag's answer adapter: nothing per token)."""
    from llmlab.generation import Engine
    from llmlab.generation.engine import check_generates, put_adapter
    from llmlab.models import load_model

    adapter = getattr(args, "adapter", None)
    adapters = getattr(args, "adapters", None) or []
    if adapter:  # a bad folder fails before the (slow) model load
        from llmlab.peft.checkpoint import resolve_adapter_folder

        adapter = str(resolve_adapter_folder(adapter))
    if adapters:
        from llmlab.peft.checkpoint import resolve_adapter_folder

        for _, folder in adapter_specs(adapters):
            resolve_adapter_folder(folder)
    message = f"loading {args.model}" + (f" and adapter {adapter}" if adapter else "")
    if needs_conversion(args.model):
        message = f"preparing {args.model} for first use (dequantizing GGUF once, about 30 s)"
    with err_console.status(message):
        loaded = load_model(args.model, device=args.device)
        check_generates(loaded)
        adapter_folder = put_adapter(loaded.model, adapter, merge=merge) if adapter else None
        load_adapters(loaded.model, adapters)
        engine = Engine.from_loaded(loaded, precision=args.precision, adapter=adapter_folder)
    return loaded, engine
