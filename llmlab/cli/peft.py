"""`llmlab peft merge | export | import | info | params`: adapter folders and what they cost.

The `llmlab finetune lora | adapters | prompt-tuning | selective` verbs come with the shared training loop.
"""

from __future__ import annotations

import argparse
from typing import Any

from llmlab.cli.output import console, err_console, print_json, print_table


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "peft", help="parameter-efficient fine-tuning: merge, export, import and inspect adapters"
    )
    sub = parser.add_subparsers(dest="peft_command", metavar="SUBCOMMAND")
    parser.set_defaults(func=lambda _: parser.print_help())

    merge = sub.add_parser(
        "merge",
        help="fold an adapter into its base model: a plain checkpoint (LoRA, selective)",
        description="Load the base model, put the adapter on it, fold it into the weights and save a plain "
        "Hugging Face checkpoint (config.json, model.safetensors, tokenizer) that any tool loads. LoRA adds "
        "scale * B @ A to each adapted weight; selective training keeps its trained values. Bottleneck "
        "adapters and soft prompts cannot be folded into weights: run them with --adapter instead.",
    )
    merge.add_argument("run", metavar="RUN_OR_ADAPTER_DIR", help="a training run folder or an adapter folder")
    merge.add_argument("--out", required=True, metavar="DIR", help="where to write the merged checkpoint")
    merge.add_argument("--model", help="the base model (default: the one the adapter names, if it names one)")
    merge.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    merge.add_argument("--json", action="store_true", help="print JSON")
    merge.set_defaults(func=run_merge)

    export = sub.add_parser(
        "export", help="write an adapter in another library's format (peft: LoRA, prompt tuning)"
    )
    export.add_argument("run", metavar="RUN_OR_ADAPTER_DIR")
    export.add_argument(
        "--format", choices=["peft"], default="peft", help="the target format (default: peft)"
    )
    export.add_argument("--out", required=True, metavar="DIR", help="where to write it")
    export.set_defaults(func=run_export)

    imp = sub.add_parser("import", help="check an adapter made by the peft library and make it an llmlab one")
    imp.add_argument("peft_dir", metavar="PEFT_DIR", help="a folder written by peft's save_pretrained")
    imp.add_argument("--out", required=True, metavar="DIR", help="where to write the llmlab adapter folder")
    imp.set_defaults(func=run_import)

    info = sub.add_parser("info", help="what an adapter folder holds: method, settings, parameters, size")
    info.add_argument("run", metavar="RUN_OR_ADAPTER_DIR")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)

    params = sub.add_parser("params", help="trainable vs total parameters of each PEFT method on a model")
    params.add_argument("--model", required=True, help="a packaged model name or a checkpoint folder")
    params.add_argument("--rank", type=int, default=8, help="LoRA rank (default: 8)")
    params.add_argument(
        "--bottleneck", type=int, default=0, help="adapter bottleneck size (default 0: the hidden size / 16)"
    )
    params.add_argument("--virtual-tokens", type=int, default=20, help="prompt tuning length (default: 20)")
    params.add_argument("--train", default="norms", help="the selective subset (default: norms)")
    params.add_argument("--json", action="store_true", help="print JSON")
    params.set_defaults(func=run_params)


def run_merge(args: argparse.Namespace) -> int:
    from llmlab.errors import ConfigError
    from llmlab.peft.interop import base_model_of, merge_to_checkpoint

    model = args.model or base_model_of(args.run)
    if not model:
        raise ConfigError(f"{args.run} does not name its base model; give it with --model")
    with err_console.status(f"merging {args.run} into {model}"):
        result = merge_to_checkpoint(model, args.run, args.out, device=args.device)
    if args.json:
        print_json(result)
    else:
        console.print(
            f"merged {result['method']} adapter {result['adapter']} into {result['model']}: "
            f"{result['out']} ({', '.join(result['files'])})"
        )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from llmlab.peft.interop import export_peft

    out = export_peft(args.run, args.out)
    console.print(f"wrote {out}/adapter_config.json and adapter_model.safetensors (peft format)")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from llmlab.peft.interop import describe, import_peft

    out = import_peft(args.peft_dir, args.out)
    info = describe(out)
    console.print(f"imported a {info['method']} adapter ({info['parameters']:,} parameters) into {out}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from llmlab.peft.interop import describe

    info = describe(args.run)
    if args.json:
        print_json(info)
        return 0
    rows: list[tuple[str, Any]] = [
        ("folder", info["folder"]),
        ("method", info["method"]),
        ("made by", info.get("made_by", "llmlab")),
        ("base model", info.get("base_model") or "-"),
        ("parameters", f"{info['parameters']:,}"),
        ("file size", f"{info['bytes']:,} bytes"),
    ]
    settings = info.get("config") or info.get("peft") or {}
    rows += [(key, _short(value)) for key, value in settings.items()]
    for key, value in rows:
        console.print(f"{key + ':':<12} {value}")
    return 0


def _short(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(map(str, value)) if len(value) <= 8 else f"{len(value)} names"
    return str(value)


def run_params(args: argparse.Namespace) -> int:
    from llmlab.models import load_model
    from llmlab.peft.report import method_table

    with err_console.status(f"loading {args.model}"):
        loaded = load_model(args.model, device="cpu")
    rows = method_table(loaded.model, args.rank, args.bottleneck, args.virtual_tokens, args.train)
    if args.json:
        print_json([{**r.__dict__, "percent": round(r.percent, 4)} for r in rows])
        return 0
    print_table(
        f"{loaded.name}: trainable parameters per method",
        ["method", "setting", "trainable", "total", "trainable %"],
        [[r.method, r.setting, r.trainable, r.total, round(r.percent, 4)] for r in rows],
    )
    return 0
