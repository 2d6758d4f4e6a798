"""Prompting: zero/one/few-shot builders, chat templates, prompt templates as data."""

from llmlab.prompting.chat import Message, has_chat_template, render_chat
from llmlab.prompting.fewshot import Example, FewShotPrompt, Rendered, load_examples, render
from llmlab.prompting.templates import PromptTemplate

__all__ = [
    "Example",
    "FewShotPrompt",
    "Message",
    "PromptTemplate",
    "Rendered",
    "has_chat_template",
    "load_examples",
    "render",
    "render_chat",
]
