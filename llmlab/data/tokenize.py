"""Records to token ids with a loss mask: the model learns the completion, never the prompt.

A record becomes segments of text, each either prompt (masked: no loss) or completion (in the loss):

    instruction  prompt = the text `llmlab generate --instruction I "INPUT"` sends (llmlab.prompting.render:
                 the chat template with the instruction and input as one user turn, or the plain
                 "I\\n\\nInput: ...\\nOutput:" layout for a model without a template); completion = the rest of
                 the rendered conversation (chat template) or " " + output.
    chat         for every assistant turn k: prompt = render_chat(messages[:k], add_generation_prompt=True),
                 completion = render_chat(messages[:k+1]) minus that prompt; text between turns is prompt.
    text         all of it is completion.

So training sees exactly the tokens generation will feed the model: the prompt segment is encoded as the
decoding engine encodes a prompt (`encode_prompt` = `Engine.encode`: special tokens added unless the text
already starts with BOS), later segments without special tokens. A completion ends at the model's stop token:
tokens the template puts after it (ChatML's trailing newline) stay as context but are not learned, and a
completion without a stop token gets the tokenizer's EOS appended, so the model learns to stop.

`loss_mask[t]` is True when token t is a training target (predicted from the tokens before it).
Tests: tests/data/test_tokenize.py (prompt tokens never reach the loss; equality with Engine.encode).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from llmlab.data.records import Record
from llmlab.errors import DataError
from llmlab.prompting.chat import Message, render_chat
from llmlab.prompting.fewshot import FewShotPrompt, render

Segment = tuple[str, bool]  # (text, in the loss)


@dataclass
class Tokenized:
    """One training example."""

    input_ids: list[int]
    loss_mask: list[bool]
    """True where the token is a target of the loss."""
    source: str
    """`file:line` (or the document's path) it came from."""
    truncated: bool = False

    @property
    def loss_tokens(self) -> int:
        return sum(self.loss_mask[1:])  # token 0 has no context, so it is never predicted

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_prompt(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a prompt exactly as `llmlab.generation.Engine.encode` makes them."""
    bos = tokenizer.bos_token
    add_special = not (bos and text.startswith(bos))
    return list(tokenizer(text, add_special_tokens=add_special)["input_ids"])


def encode_piece(tokenizer: Any, text: str) -> list[int]:
    """Token ids of text that continues a sequence (no special tokens added)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def stop_token_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """The tokens that end a completion: the tokenizer's EOS and the model's generation_config EOS ids."""
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (gen_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return ids


def _chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def chat_segments(tokenizer: Any, messages: Sequence[Message], source: str = "") -> list[Segment]:
    """Prompt and completion texts of a conversation, rendered as at generation time (see module doc)."""
    segments: list[Segment] = []
    done = ""
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prompt = render_chat(tokenizer, messages[:k], add_generation_prompt=True)
        full = render_chat(tokenizer, messages[: k + 1], add_generation_prompt=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise DataError(
                "the chat template does not render this conversation as a growing prefix (it rewrites earlier "
                "turns), so the prompt the model sees at generation time cannot be reproduced; train on one "
                "assistant turn per record",
                source or None,
            )
        segments += [(prompt[len(done) :], False), (full[len(prompt) :], True)]
        done = full
    return [s for s in segments if s[0]]


def instruction_segments(tokenizer: Any, instruction: str, input_text: str, output: str) -> list[Segment]:
    """The prompt `llmlab generate` builds for this instruction and input, then the output."""
    if input_text.strip():
        prompt = FewShotPrompt(query=input_text, instruction=instruction)
    else:
        prompt = FewShotPrompt(query=instruction)
    if _chat_template(tokenizer):
        messages = [*prompt.messages(), {"role": "assistant", "content": output}]
        return chat_segments(tokenizer, messages)
    return [(render(prompt, tokenizer, chat=False).text, False), (" " + output, True)]


def tokenize_segments(
    tokenizer: Any, segments: Sequence[Segment], stop_ids: Collection[int], source: str
) -> Tokenized:
    """Encode segments in order; completion tokens after the first stop token are context only."""
    ids: list[int] = []
    mask: list[bool] = []
    eos = tokenizer.eos_token_id
    for i, (text, learn) in enumerate(segments):
        piece = encode_prompt(tokenizer, text) if i == 0 else encode_piece(tokenizer, text)
        if not learn:
            ids += piece
            mask += [False] * len(piece)
            continue
        stop = next((j for j, t in enumerate(piece) if t in stop_ids), None)
        if stop is None and eos is not None:
            piece, stop = [*piece, eos], len(piece)
        cut = len(piece) if stop is None else stop + 1
        ids += piece
        mask += [True] * cut + [False] * (len(piece) - cut)
    return Tokenized(ids, mask, source)


def record_segments(tokenizer: Any, record: Record) -> list[Segment]:
    """The prompt/completion segments of one record (see module doc)."""
    f = record.fields
    if record.format == "text":
        return [(f["text"], True)]
    if record.format == "instruction":
        return instruction_segments(tokenizer, f["instruction"], f.get("input", ""), f["output"])
    if record.format in ("label", "seq2seq"):
        task = "classify" if record.format == "label" else "seq2seq"
        raise DataError(
            f"a {record.format} record trains an {'encoder' if task == 'classify' else 'encoder-decoder'} "
            f"model; use --task {task}",
            record.source,
        )
    return chat_segments(tokenizer, f["messages"], record.source)


def tokenize_record(tokenizer: Any, record: Record, stop_ids: Collection[int] | None = None) -> Tokenized:
    """One record as token ids and a loss mask."""
    stops = stop_token_ids(tokenizer) if stop_ids is None else stop_ids
    return tokenize_segments(tokenizer, record_segments(tokenizer, record), stops, record.source)


def truncate(example: Tokenized, max_tokens: int) -> Tokenized | None:
    """Cut an example to `max_tokens` (from the end); None when no completion token is left to learn."""
    if len(example) <= max_tokens:
        return example
    cut = Tokenized(example.input_ids[:max_tokens], example.loss_mask[:max_tokens], example.source, True)
    return cut if cut.loss_tokens else None


def spans(tokenizer: Any, example: Tokenized) -> list[Segment]:
    """The example's text in runs of masked and learned tokens, decoded (for --dry-run displays)."""
    out: list[Segment] = []
    start = 0
    for t in range(1, len(example) + 1):
        if t == len(example) or example.loss_mask[t] != example.loss_mask[start]:
            ids = example.input_ids[start:t]
            out.append((tokenizer.decode(ids, skip_special_tokens=False), example.loss_mask[start]))
            start = t
    return out
