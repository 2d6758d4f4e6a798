"""The grounded-answer adapter: a LoRA adapter that teaches SmolLM2-135M-Instruct to answer from numbered
context blocks with a short phrase (and its block number in the free style), or the not-found reply when no
block holds the answer (issue 14).

It ships in the package (llmlab/rag/adapters/grounded-smollm2-135m, a few MB) and `make adapter` reproduces
it: bench/data/grounded-answers/build.py writes the training conversations from a public training split
(FairytaleQA's train stories; never a dev or test split), and `llmlab finetune lora` trains it with the
settings in that folder's llmlab_adapter.json. `rag ask`, `rag chat`, `ask` and `demo` use it by default with
the packaged model (`--adapter auto`); `--adapter none` turns it off and `--adapter DIR` uses another one.
The adapter is merged into the weights when the model loads, so it costs nothing per token; with it the
grounded prompt is zero-shot (`--prompt auto`), as the adapter was trained.
Tests: tests/rag/test_adapter.py; measured by bench/rag_answers.py (`adapter:` answer styles).
"""

from __future__ import annotations

import json
from pathlib import Path

GROUNDED_ADAPTER = Path(__file__).parent / "adapters" / "grounded-smollm2-135m"
"""The packaged grounded-answer adapter; its llmlab_adapter.json names the model it was trained on."""


def answer_adapter(setting: str | None, model: str | None) -> Path | None:
    """The adapter folder to answer with: `auto` is the packaged grounded adapter when `model` is the one it
    was trained on (none for other models, or when the package was built without it), `none` is no adapter,
    anything else a LoRA adapter or training run folder."""
    from llmlab.models.registry import DEFAULT_CHAT_MODEL
    from llmlab.peft.checkpoint import LLMLAB_CONFIG, resolve_adapter_folder

    if setting in (None, "", "none", "off"):
        return None
    if setting == "auto":
        try:
            base = json.loads((GROUNDED_ADAPTER / LLMLAB_CONFIG).read_text(encoding="utf-8"))["base_model"]
        except (OSError, ValueError, KeyError):
            return None  # a package built without the adapter
        return GROUNDED_ADAPTER if (model or DEFAULT_CHAT_MODEL).lower() == base else None
    return Path(resolve_adapter_folder(setting))  # a clear ConfigError when it is not an adapter folder
