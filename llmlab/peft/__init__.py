"""Parameter-efficient fine-tuning: LoRA, bottleneck adapters, prompt tuning and selective training, injected
into a plain transformers model by name, several named adapters per model, saved in peft's format (LoRA, prompt
tuning) or llmlab's (adapters, selective).

Names are imported lazily so that `import llmlab.peft` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LoraConfig": "llmlab.peft.lora",
    "LoRALinear": "llmlab.peft.lora",
    "merged_lora": "llmlab.peft.lora",
    "apply_lora": "llmlab.peft.inject",
    "find_targets": "llmlab.peft.inject",
    "BottleneckConfig": "llmlab.peft.adapters",
    "apply_adapters": "llmlab.peft.adapters",
    "PromptTuningConfig": "llmlab.peft.prompt_tuning",
    "apply_prompt_tuning": "llmlab.peft.prompt_tuning",
    "soft_prompt": "llmlab.peft.prompt_tuning",
    "virtual_tokens": "llmlab.peft.prompt_tuning",
    "SelectiveConfig": "llmlab.peft.selective",
    "select_parameters": "llmlab.peft.selective",
    "load_adapter": "llmlab.peft.checkpoint",
    "merge_and_unload": "llmlab.peft.checkpoint",
    "save_adapter": "llmlab.peft.checkpoint",
    "ParameterCount": "llmlab.peft.report",
    "count_parameters": "llmlab.peft.report",
    "AdapterInfo": "llmlab.peft.registry",
    "active_adapter": "llmlab.peft.registry",
    "delete_adapter": "llmlab.peft.registry",
    "disable_adapters": "llmlab.peft.registry",
    "list_adapters": "llmlab.peft.registry",
    "set_active_adapter": "llmlab.peft.registry",
    "set_trainable": "llmlab.peft.registry",
    "trainable_parameters": "llmlab.peft.registry",
    "unload": "llmlab.peft.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmlab.peft' has no attribute {name!r}")
