"""Prompting: zero/one/few-shot builders, chat templates, prompt templates as data, grounded (RAG) prompts, and
fitting a prompt into a token budget."""

from llmlab.prompting.budget import Fitted, count_tokens, fit_to_budget
from llmlab.prompting.chat import Message, fit_chat, has_chat_template, render_chat
from llmlab.prompting.fewshot import Example, FewShotPrompt, Rendered, load_examples, render
from llmlab.prompting.templates import PromptTemplate

__all__ = [
    "Example",
    "FewShotPrompt",
    "Fitted",
    "Message",
    "PromptTemplate",
    "Rendered",
    "count_tokens",
    "fit_chat",
    "fit_to_budget",
    "has_chat_template",
    "load_examples",
    "render",
    "render_chat",
]
