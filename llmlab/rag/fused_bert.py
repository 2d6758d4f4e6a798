"""Moved to `llmlab.models.fused_bert` (model code: a fused BERT forward); this name keeps old imports working."""

from llmlab.models.fused_bert import FusedBert, supports  # noqa: F401
