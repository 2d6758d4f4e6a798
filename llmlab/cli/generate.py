"""`llmlab generate` (one prompt, streamed) and `llmlab chat` (a multi-turn REPL)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from llmlab.cli.args import add_config_arguments, build_config
from llmlab.cli.output import err_console, print_json, write_stream
from llmlab.cli.session import add_adapter_argument, add_model_arguments, decode_hooks, load_engine

if TYPE_CHECKING:
    from llmlab.prompting import Example

DECODING_HELP = (
    "Decoding: --greedy (or --temperature 0) always takes the most likely token; otherwise the next token is "
    "sampled from softmax(logits / temperature), restricted by --top-k (the k most likely), --top-p (the "
    "smallest set holding p of the probability) and --min-p. --seed makes sampling repeatable."
)


def register(subparsers: Any) -> None:
    from llmlab.generation.config import GenerationConfig

    gen = subparsers.add_parser(
        "generate",
        help="complete one prompt with a model (streams the text)",
        description="Generate text for PROMPT. Chat models get the prompt as a user message through their chat "
        "template; --shots adds worked examples (few-shot). " + DECODING_HELP,
    )
    gen.add_argument("prompt", help='the prompt text, or "-" to read it from standard input')
    add_model_arguments(gen)
    add_adapter_argument(gen)
    add_config_arguments(gen, GenerationConfig)
    gen.add_argument(
        "--shots", metavar="FILE", help='few-shot examples, JSONL: {"input": ..., "output": ...}'
    )
    gen.add_argument(
        "--instruction", default="", help="an instruction put before the examples and the prompt"
    )
    gen.add_argument("--system", help="system message for chat models (default: the model's own)")
    gen.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    gen.add_argument(
        "--json", action="store_true", help="print one JSON object (text, tokens, timing) at the end"
    )
    gen.add_argument(
        "--config", metavar="FILE.yaml", help="decoding settings from a YAML file (flags override)"
    )
    gen.set_defaults(func=run_generate)

    chat = subparsers.add_parser(
        "chat",
        help="talk with a model: a multi-turn REPL with streaming",
        description="Chat with a model. Commands: /reset (forget the conversation), /set NAME VALUE (e.g. "
        "/set temperature 0.7), /show (current settings), /system TEXT, /adapter NAME|off (switch adapters "
        "given with --adapter), /help, /quit. " + DECODING_HELP,
    )
    add_model_arguments(chat)
    add_adapter_argument(chat)
    add_config_arguments(chat, GenerationConfig)
    chat.add_argument("--system", help="system message (default: the model's own)")
    chat.add_argument("--json", action="store_true", help="one JSON line per turn, no prompts (for scripts)")
    chat.add_argument(
        "--config", metavar="FILE.yaml", help="decoding settings from a YAML file (flags override)"
    )
    chat.set_defaults(func=run_chat)


def _prompt_text(
    args: argparse.Namespace, examples: list[Example], tokenizer: Any, budget: int, kind: str = "decoder-only"
) -> tuple[str, int, int]:
    """(rendered prompt, shots kept, shots dropped)."""
    from llmlab.prompting import FewShotPrompt, render

    query = sys.stdin.read() if args.prompt == "-" else args.prompt
    if (
        kind == "encoder-decoder"
        and not examples
        and not args.instruction
        and not getattr(tokenizer, "chat_template", None)
    ):
        return (
            query,
            0,
            0,
        )  # the encoder reads the source as it is (the "Input: / Output:" layout is a prompt)
    if args.raw:
        prompt = FewShotPrompt(query, args.instruction, examples, args.system)
        rendered = render(prompt, tokenizer, budget, chat=False) if examples or args.instruction else None
        return (rendered.text, rendered.shots, rendered.dropped) if rendered else (query, 0, 0)
    rendered = render(FewShotPrompt(query, args.instruction, examples, args.system), tokenizer, budget)
    if rendered.dropped:
        err_console.print(f"[dim]dropped {rendered.dropped} example(s) to fit the context window[/dim]")
    return rendered.text, rendered.shots, rendered.dropped


def run_generate(args: argparse.Namespace) -> int:
    from llmlab.generation.config import GenerationConfig
    from llmlab.prompting import load_examples

    config = build_config(GenerationConfig, args, args.config)
    # A bad --shots file is refused before the model loads (seconds; half a minute on a GGUF's first use).
    examples = load_examples(args.shots) if args.shots else []
    loaded, engine = load_engine(args)
    budget = engine.context_length - config.max_new_tokens
    text, shots, dropped = _prompt_text(args, examples, loaded.tokenizer, budget, loaded.kind)
    stream = engine.stream(text, config, **decode_hooks(loaded.model))
    for piece in stream:
        if not args.json:
            write_stream(piece)
    completion = stream.completion
    assert completion is not None
    rate = completion.completion_tokens / max(completion.seconds, 1e-9)
    if args.json:
        print_json(
            _completion_json(loaded.name, completion, rate) | {"shots": shots, "dropped_shots": dropped}
        )
    else:
        write_stream("\n")
        err_console.print(
            f"[dim]{completion.completion_tokens} tokens, {rate:.1f} tokens/s, {completion.finish_reason}[/dim]"
        )
    return 0


def _completion_json(model: str, completion: Any, rate: float) -> dict[str, Any]:
    data = {
        "model": model,
        "text": completion.text,
        "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "seconds": round(completion.seconds, 3),
        "tokens_per_second": round(rate, 1),
    }
    if completion.logprobs is not None:
        data["logprobs"] = completion.logprobs
    return data


def run_chat(args: argparse.Namespace) -> int:
    from llmlab.generation.config import GenerationConfig

    config = build_config(GenerationConfig, args, args.config)
    loaded, engine = load_engine(args)
    session = ChatSession(engine, loaded.tokenizer, config, args.system)
    session.precision = args.precision
    if not args.json:
        err_console.print(f"[bold]{loaded.name}[/bold] — type a message; /help for commands, /quit to leave.")
    while True:
        try:
            line = input("" if args.json else "you> ")
        except EOFError:
            return 0
        if not line.strip():
            continue
        if line.startswith("/"):
            if not session.command(line, args.json):
                return 0
            continue
        session.turn(line, args.json, loaded.name)


class ChatSession:
    """The conversation, its settings, and the slash commands."""

    def __init__(self, engine: Any, tokenizer: Any, config: Any, system: str | None):
        self.engine, self.tokenizer, self.config, self.system = engine, tokenizer, config, system
        self.history: list[dict[str, str]] = []
        self.precision = "auto"

    def fit(self, user: str) -> str:
        """Render the conversation, dropping the oldest turns until it leaves room for the answer."""
        from llmlab.prompting import fit_chat

        budget = self.engine.context_length - self.config.max_new_tokens
        count = lambda text: len(self.engine.encode(text))  # noqa: E731 - what the engine will see
        text, dropped = fit_chat(self.tokenizer, self.history, user, budget, self.system, count)
        if dropped:
            self.history = self.history[2 * dropped :]
            err_console.print(f"[dim](dropped the oldest {dropped} turn(s) to fit the context window)[/dim]")
        return text

    def turn(self, user: str, as_json: bool, model: str) -> None:
        stream = self.engine.stream(self.fit(user), self.config, **decode_hooks(self.engine.model))
        if not as_json:
            write_stream("bot> ")
        for piece in stream:
            if not as_json:
                write_stream(piece)
        completion = stream.completion
        assert completion is not None
        self.history += [{"role": "user", "content": user}, {"role": "assistant", "content": completion.text}]
        rate = completion.completion_tokens / max(completion.seconds, 1e-9)
        if as_json:
            print_json(_completion_json(model, completion, rate) | {"user": user})
        else:
            write_stream("\n")

    def command(self, line: str, as_json: bool) -> bool:
        """Run a slash command; False means quit."""
        name, _, rest = line[1:].partition(" ")
        if name in ("quit", "exit", "q"):
            return False
        if name == "reset":
            self.history = []
            self._say("conversation cleared", as_json)
        elif name == "set":
            self._set(rest, as_json)
        elif name == "show":
            self._say(", ".join(f"{k}={v}" for k, v in dataclasses.asdict(self.config).items()), as_json)
        elif name == "adapter":
            self._switch_adapter(rest.strip(), as_json)
        elif name == "system":
            self.system = rest.strip() or None
            self._say(f"system message: {self.system or '(model default)'}", as_json)
        else:
            self._say(
                "commands: /reset, /set NAME VALUE, /show, /system TEXT, /adapter NAME|off, /quit", as_json
            )
        return True

    def _switch_adapter(self, name: str, as_json: bool) -> None:
        """Make another --adapter active (or none): the engine is rebuilt, the base model is not reloaded."""
        from llmlab.errors import ConfigError
        from llmlab.generation import Engine
        from llmlab.peft import list_adapters, set_active_adapter

        model = self.engine.model
        loaded = list(list_adapters(model))
        try:
            set_active_adapter(model, None if name in ("off", "none") else name)
        except ConfigError:
            self._say(
                f"usage: /adapter NAME|off with NAME one of {', '.join(loaded) or '(none loaded)'}", as_json
            )
            return
        self.engine = Engine(model, self.tokenizer, self.engine.kind, self.precision)
        self._say(f"adapter: {name if name not in ('off', 'none') else 'off (base model)'}", as_json)

    def _set(self, rest: str, as_json: bool) -> None:
        from llmlab.errors import ConfigError

        key, _, value = rest.strip().partition(" ")
        key = key.replace("-", "_")
        fields = {f.name: f for f in dataclasses.fields(self.config)}
        if key not in fields or not value:
            self._say(f"usage: /set NAME VALUE with NAME one of {', '.join(fields)}", as_json)
            return
        try:
            self.config = dataclasses.replace(
                self.config, **{key: _parse_value(value, getattr(self.config, key))}
            )
        except (ConfigError, ValueError) as e:
            self._say(f"not changed: {e}", as_json)
            return
        self._say(f"{key} = {getattr(self.config, key)}", as_json)

    @staticmethod
    def _say(message: str, as_json: bool) -> None:
        if as_json:
            print_json({"info": message})
        else:
            err_console.print(f"[dim]{message}[/dim]")


def _parse_value(text: str, current: Any) -> Any:
    """Parse a /set value with the type of the current setting."""
    if isinstance(current, bool):
        if text.lower() not in ("true", "false", "on", "off", "1", "0", "yes", "no"):
            raise ValueError(f"expected true or false, got {text!r}")
        return text.lower() in ("true", "on", "1", "yes")
    if isinstance(current, list):
        return [] if text in ("none", "[]") else [text]
    if current is None:
        return None if text == "none" else int(text)
    return type(current)(text)
