"""Loss masks: prompt tokens are never learned; the prompt is tokenized exactly as generation tokenizes it."""

from __future__ import annotations

import torch

from llmlab.data.records import Record
from llmlab.data.tokenize import Tokenized, spans, tokenize_record, truncate
from llmlab.generation import Engine
from llmlab.prompting import FewShotPrompt, render, render_chat


def inst(instruction, output, input_text=None):
    fields = {"instruction": instruction, "output": output} | ({"input": input_text} if input_text else {})
    return Record("instruction", fields, "t.jsonl:1")


def learned_text(tok, ex: Tokenized) -> list[str]:
    return [text for text, learned in spans(tok, ex) if learned]


def test_instruction_prompt_is_what_generate_sends(tiny_tok, tiny_model):
    """The masked prefix is exactly Engine.encode of the prompt `llmlab generate --instruction I INPUT` renders."""
    ex = tokenize_record(tiny_tok, inst("Reverse the words", "two one", "one two"))
    prompt = render(FewShotPrompt(query="one two", instruction="Reverse the words"), tiny_tok).text
    expected = Engine(tiny_model, tiny_tok, precision="hf").encode(prompt)
    n_prompt = ex.loss_mask.index(True)
    assert ex.input_ids[:n_prompt] == expected
    assert learned_text(tiny_tok, ex) == ["two one<|im_end|>"]
    # ChatML's newline after <|im_end|> is context, not learned.
    assert tiny_tok.decode(ex.input_ids[n_prompt:]) == "two one<|im_end|>\n"
    assert ex.loss_tokens == len(tiny_tok("two one", add_special_tokens=False)["input_ids"]) + 1


def test_instruction_without_input_is_the_user_turn(tiny_tok):
    ex = tokenize_record(tiny_tok, inst("What is the capital of France?", "Paris."))
    prompt = render_chat(tiny_tok, [{"role": "user", "content": "What is the capital of France?"}])
    assert tiny_tok.decode(ex.input_ids[: ex.loss_mask.index(True)]) == prompt


def test_every_assistant_turn_is_learned_and_nothing_else(tiny_tok):
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Capital of Italy?"},
        {"role": "assistant", "content": "Rome."},
    ]
    ex = tokenize_record(tiny_tok, Record("chat", {"messages": messages}, "c.jsonl:1"))
    assert learned_text(tiny_tok, ex) == ["Hello.<|im_end|>", "Rome.<|im_end|>"]
    assert tiny_tok.decode(ex.input_ids) == render_chat(tiny_tok, messages, add_generation_prompt=False)
    # The second turn's prompt is what `llmlab chat` sends for it (the history rendered, then encoded).
    second = render_chat(tiny_tok, messages[:4])
    start = [i for i in range(1, len(ex)) if ex.loss_mask[i] and not ex.loss_mask[i - 1]][1]
    assert ex.input_ids[:start] == tiny_tok(second)["input_ids"]


def test_without_a_template_plain_layout_and_eos(tiny_tok):
    plain = tiny_tok.__class__(tokenizer_object=tiny_tok.backend_tokenizer, eos_token="<|im_end|>")
    ex = tokenize_record(plain, inst("Add", "3", "1 2"))
    assert [(t, learned) for t, learned in spans(plain, ex)] == [
        ("Add\n\nInput: 1 2\nOutput:", False),
        (" 3<|im_end|>", True),
    ]


def test_text_records_are_all_learned_with_eos(tiny_tok):
    ex = tokenize_record(tiny_tok, Record("text", {"text": "The capital of France is Paris."}, "x"))
    assert all(ex.loss_mask) and ex.input_ids[-1] == tiny_tok.eos_token_id


def test_truncation_keeps_the_head_and_drops_examples_without_completion(tiny_tok):
    ex = tokenize_record(tiny_tok, inst("Reverse the words", "two one", "one two"))
    n_prompt = ex.loss_mask.index(True)
    assert truncate(ex, n_prompt) is None
    cut = truncate(ex, n_prompt + 1)
    assert cut is not None and cut.truncated and cut.loss_tokens == 1


def test_prompt_tokens_never_contribute_to_the_loss(tiny_tok, tiny_model):
    """Changing prompt tokens' targets or the loss-free positions changes nothing; the loss equals an
    independent log-softmax sum over the completion tokens only."""
    from llmlab.data.packing import single_rows
    from llmlab.training.batches import collate
    from llmlab.training.causal_lm import CausalLMObjective

    ex = tokenize_record(tiny_tok, inst("Reverse the words", "two one", "one two"))
    batch = collate(single_rows([ex]), tiny_tok.pad_token_id)
    loss = CausalLMObjective().loss(tiny_model, batch).loss
    ids = torch.tensor([ex.input_ids])
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(ids).logits[0].float(), -1)  # (T, V)
    learned = [t for t in range(1, len(ex)) if ex.loss_mask[t]]
    expected = -sum(logp[t - 1, ex.input_ids[t]] for t in learned)
    torch.testing.assert_close(loss.detach(), expected)
    # The gradient reaches no logit of a prompt position.
    logits = tiny_model(ids).logits.detach().requires_grad_(True)
    targets = batch["targets"]
    keep = targets != -100
    torch.nn.functional.cross_entropy(logits[keep], targets[keep], reduction="sum").backward()
    prompt_positions = [t - 1 for t in range(1, len(ex)) if not ex.loss_mask[t]]
    assert logits.grad is not None and logits.grad[0, prompt_positions].abs().max() == 0
