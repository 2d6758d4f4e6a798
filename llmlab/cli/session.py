"""Loading a model for a CLI verb: the flags every generating verb shares, and a status line on first use."""

from __future__ import annotations

import argparse
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


def load_engine(args: argparse.Namespace) -> tuple[Any, Any]:
    """(LoadedModel, Engine) for the --model/--device/--precision flags, with a spinner while loading."""
    from llmlab.generation import Engine
    from llmlab.models import load_model

    message = f"loading {args.model}"
    if needs_conversion(args.model):
        message = f"preparing {args.model} for first use (dequantizing GGUF once, about 30 s)"
    with err_console.status(message):
        loaded = load_model(args.model, device=args.device)
        engine = Engine.from_loaded(loaded, precision=args.precision)
    return loaded, engine
