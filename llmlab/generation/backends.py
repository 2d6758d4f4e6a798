"""What the decoding engine needs from a model: prefill a left-padded batch, step one token, drop rows, and
join two running batches into one (continuous batching).

Three backends share one interface (`Backend`):
- `DecoderBackend(FusedForward)`: the fused Llama path (fused_llama.py), fp32 / bf16 / int8 weights.
- `DecoderBackend(HFForward)`: any transformers causal LM, through its own forward and `DynamicCache`.
- `Seq2SeqBackend`: transformers encoder-decoder models (T5, BART, ...): encode once, decode with a cache.

Left padding: row r's tokens occupy the last `len_r` columns of the KV cache; its rotary positions are
`cumsum(mask) - 1`, so every row sees positions 0..len_r-1 exactly as if it ran alone, and padded keys are
masked out. Joining two batches right-aligns them at the longer one's column count (the shorter one's rows
get more padding columns on the left; positions are per row, so nothing else changes), and when rows leave,
leading columns that are padding in every remaining row are dropped. Encoder-decoder models cannot join:
their decoders derive positions from the cache length, which left padding would shift.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from llmlab.errors import ModelError
from llmlab.generation.fused_llama import FusedLlama, KVCache, Precision, supports
from llmlab.models.int8 import activation_maxima, calibration_ids, int8_supported


@dataclass
class PromptBatch:
    """Prompts as the backends take them."""

    input_ids: torch.Tensor
    """(B, S) token ids, left-padded."""
    mask: torch.Tensor
    """(B, S) bool, False at padding."""
    lengths: list[int]
    """Each prompt's number of tokens (kept on the host: bookkeeping never waits for the device)."""
    prefix_embeds: torch.Tensor | None = None
    """(P, H) virtual-token embeddings put before every prompt (prompt tuning), or None."""


class Backend(Protocol):
    vocab_size: int
    device: torch.device
    can_join: bool
    """Whether `join` works (rows can enter a running batch)."""

    def prefill(self, batch: PromptBatch, max_new_tokens: int) -> tuple[torch.Tensor, Any]:
        """Run the prompts; return last-position logits (B, V) and the decoding state."""
        ...

    def step(self, state: Any, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row (B,); return next logits (B, V)."""
        ...

    def select(self, state: Any, rows: list[int]) -> None:
        """Keep only these rows of the state, in this order (a finished row stops costing compute); a row
        given twice is copied (identical prompts are prefilled once)."""
        ...

    def join(self, state: Any, other: Any, max_new_tokens: int) -> Any:
        """One state with `state`'s rows then `other`'s, with room for `max_new_tokens` more steps."""
        ...


class DecoderForward(Protocol):
    """A decoder-only model's forward with a KV cache, as `DecoderBackend` drives it."""

    device: torch.device

    def new_cache(self, batch: int, max_len: int) -> Any: ...

    def forward(
        self,
        cache: Any,
        positions: torch.Tensor,
        key_mask: torch.Tensor | None,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        last_only: bool = True,
    ) -> torch.Tensor:
        """Logits (B, V) of the last position, or (B, S, V) of every new one when not `last_only`."""
        ...

    def select_cache(self, cache: Any, rows: torch.Tensor) -> Any: ...

    def crop_cache(self, cache: Any, columns: int) -> Any:
        """Keep the first `columns` columns (drop rejected draft positions)."""
        ...

    def trim_cache(self, cache: Any, start: int) -> Any:
        """Drop the first `start` columns (padding in every row)."""
        ...

    def join_caches(self, a: Any, b: Any, capacity: int) -> Any:
        """a's rows then b's, right-aligned; room for `capacity` columns in all."""
        ...

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor: ...


class FusedForward:
    """`DecoderForward` over the fused Llama path."""

    def __init__(self, model: Any, precision: Precision, tokenizer: Any = None):
        maxima = base_maxima(model, tokenizer) if precision == "int8" and tokenizer is not None else None
        # The previous fused copy of this model (an engine built before an adapter switch): its layers that the
        # switch does not touch are reused, so a switch re-packs only the adapted layers.
        previous = model.__dict__.get(_FUSED)
        self.fused = FusedLlama(model, precision, maxima=maxima, reuse=previous)
        model.__dict__[_FUSED] = self.fused
        self.device = self.fused.device
        # A multi-position pass equals one-position steps to float rounding only in fp32: with int8 or bf16
        # inputs, a rounding-level difference flips a rounding to the grid and grows through the layers.
        self.exact_verify = precision == "fp32"

    def new_cache(self, batch: int, max_len: int) -> Any:
        return self.fused.new_cache(batch, max_len)

    def forward(
        self,
        cache: Any,
        positions: torch.Tensor,
        key_mask: torch.Tensor | None,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        last_only: bool = True,
    ) -> torch.Tensor:
        return self.fused.forward(cache, positions, key_mask, input_ids, inputs_embeds, last_only)

    def select_cache(self, cache: KVCache, rows: torch.Tensor) -> KVCache:
        cache.select(rows)
        return cache

    def crop_cache(self, cache: KVCache, columns: int) -> KVCache:
        cache.length = columns  # the columns after it are overwritten by the next pass
        return cache

    def trim_cache(self, cache: KVCache, start: int) -> KVCache:
        cache.trim(start)
        return cache

    def join_caches(self, a: KVCache, b: KVCache, capacity: int) -> KVCache:
        return KVCache.join(a, b, capacity)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return nn.functional.embedding(input_ids, self.fused.embed)


_FUSED, _MAXIMA = "_llmlab_fused", "_llmlab_int8_maxima"


def base_maxima(model: Any, tokenizer: Any) -> dict[str, torch.Tensor]:
    """SmoothQuant's activation maxima of the base model (adapters off), measured once per set of base weights:
    every adapter then shares the base's scales, so the layers it does not touch quantize exactly as before."""
    from llmlab.peft.registry import adapter_parameters, disable_adapters, list_adapters

    with disable_adapters(model):
        added = {
            id(p)
            for name, info in list_adapters(model).items()
            if info.method != "selective"  # a selective adapter's tensors are base parameters
            for p in adapter_parameters(model, name).values()
        }
        key = tuple((p.data_ptr(), p._version) for p in model.parameters() if id(p) not in added)
        cached = model.__dict__.get(_MAXIMA)
        if cached is not None and cached[0] == key:
            return cached[1]
        maxima = activation_maxima(model, calibration_ids(tokenizer))
    model.__dict__[_MAXIMA] = (key, maxima)
    return maxima


class HFForward:
    """`DecoderForward` over any transformers causal LM (its own modules and DynamicCache)."""

    def __init__(self, model: Any):
        self.model = model
        self.device = next(model.parameters()).device
        self.exact_verify = all(p.dtype == torch.float32 for p in model.parameters())

    def new_cache(self, batch: int, max_len: int) -> Any:
        from transformers import DynamicCache

        return DynamicCache()

    @torch.inference_mode()
    def forward(
        self,
        cache: Any,
        positions: torch.Tensor,
        key_mask: torch.Tensor | None,
        input_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        last_only: bool = True,
    ) -> torch.Tensor:
        batch, new = positions.shape
        if key_mask is None:
            key_mask = torch.ones(batch, cache.get_seq_length() + new, dtype=torch.bool, device=self.device)
        out = self.model(
            input_ids=input_ids,
            inputs_embeds=inputs_embeds,
            attention_mask=key_mask.long(),
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1 if last_only else 0,
        )
        return out.logits[:, -1].float() if last_only else out.logits.float()

    def select_cache(self, cache: Any, rows: torch.Tensor) -> Any:
        cache.batch_select_indices(rows)
        return cache

    def crop_cache(self, cache: Any, columns: int) -> Any:
        for layer in _full_layers(cache):
            layer.keys, layer.values = layer.keys[:, :, :columns], layer.values[:, :, :columns]
        return cache

    def trim_cache(self, cache: Any, start: int) -> Any:
        for layer in _full_layers(cache):
            layer.keys, layer.values = layer.keys[:, :, start:], layer.values[:, :, start:]
        return cache

    def join_caches(self, a: Any, b: Any, capacity: int) -> Any:
        """DynamicCache grows as it goes, so `capacity` is not needed; keys are (B, H_kv, T, D)."""
        length = max(int(a.get_seq_length()), int(b.get_seq_length()))
        for left, right in zip(_full_layers(a), _full_layers(b), strict=True):
            left.keys = torch.cat([_pad_left(left.keys, length), _pad_left(right.keys, length)])
            left.values = torch.cat([_pad_left(left.values, length), _pad_left(right.values, length)])
        return a

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(input_ids)


def _full_layers(cache: Any) -> list[Any]:
    """The layers of a DynamicCache, which must all be plain full-attention layers to be joined or trimmed
    (a sliding-window layer keeps only its last W columns, so columns would not line up across rows)."""
    from transformers.cache_utils import DynamicLayer

    layers = list(cache.layers)
    if any(type(layer) is not DynamicLayer for layer in layers):
        kinds = sorted({type(layer).__name__ for layer in layers})
        raise ModelError(f"cannot join batches over cache layers of kind {', '.join(kinds)}; use one batch")
    return layers


def _pad_left(x: torch.Tensor, length: int) -> torch.Tensor:
    """(B, H, T, D) -> (B, H, length, D) with zeros before the T columns."""
    return nn.functional.pad(x, (0, 0, length - x.shape[2], 0))


@dataclass
class DecoderState:
    cache: Any
    key_mask: torch.Tensor | None
    """(B, columns) bool, False at padding; None while no row has padding."""
    next_pos: torch.Tensor
    """(B,) rotary position of each row's next token."""
    pads: list[int]
    """Padding columns on the left of each row (constant while decoding; changed by joins and trims)."""
    columns: int
    """Columns filled in the KV cache."""


class DecoderBackend:
    """Prefill/step/select/join for decoder-only models over a `DecoderForward`, and verify/rollback for
    speculative decoding (speculative.py).

    Row lengths, padding and column counts are kept on the host, so no step waits for the device except to
    read the chosen tokens."""

    can_join = True
    can_verify = True

    def __init__(self, forward: DecoderForward, vocab_size: int):
        self.forward = forward
        self.vocab_size = vocab_size
        self.device = forward.device
        self.exact_verify: bool = getattr(forward, "exact_verify", False)
        """Whether a verify pass gives the tokens one-position steps give (prompt lookup's default)."""

    def prefill(self, batch: PromptBatch, max_new_tokens: int) -> tuple[torch.Tensor, DecoderState]:
        ids, mask = batch.input_ids.to(self.device), batch.mask.to(self.device)
        embeds, prefix = None, 0
        if batch.prefix_embeds is not None:
            embeds_prefix = batch.prefix_embeds.to(self.device)
            B, prefix = ids.shape[0], embeds_prefix.shape[0]
            embeds = torch.cat(
                [embeds_prefix.expand(B, -1, -1), self.forward.embed(ids).to(embeds_prefix.dtype)], dim=1
            )
            mask = torch.cat([torch.ones(B, prefix, dtype=torch.bool, device=self.device), mask], dim=1)
        columns = mask.shape[1]
        pads = [columns - prefix - n for n in batch.lengths]
        positions = (mask.long().cumsum(-1) - 1).clamp_min(0)  # (B, S)
        key_mask = mask if any(pads) else None
        cache = self.forward.new_cache(mask.shape[0], columns + max_new_tokens)
        logits = self.forward.forward(
            cache, positions, key_mask, input_ids=None if embeds is not None else ids, inputs_embeds=embeds
        )
        return logits, DecoderState(cache, key_mask, positions[:, -1] + 1, pads, columns)

    def step(self, state: DecoderState, tokens: torch.Tensor) -> torch.Tensor:
        if state.key_mask is not None:
            ones = torch.ones(state.key_mask.shape[0], 1, dtype=torch.bool, device=self.device)
            state.key_mask = torch.cat([state.key_mask, ones], dim=1)
        logits = self.forward.forward(
            state.cache, state.next_pos[:, None], state.key_mask, input_ids=tokens[:, None].to(self.device)
        )
        state.next_pos = state.next_pos + 1
        state.columns += 1
        return logits

    def room(self, state: DecoderState) -> int | None:
        """Columns the KV cache can still take, or None when it grows as needed."""
        capacity = getattr(state.cache, "capacity", None)
        return None if capacity is None else capacity - state.columns

    def verify(self, state: DecoderState, tokens: torch.Tensor) -> torch.Tensor:
        """Feed S tokens per row (B, S) in one pass (a token and its draft); return logits (B, S, V)."""
        B, S = tokens.shape
        if state.key_mask is not None:
            ones = torch.ones(B, S, dtype=torch.bool, device=self.device)
            state.key_mask = torch.cat([state.key_mask, ones], dim=1)
        positions = state.next_pos[:, None] + torch.arange(S, device=self.device)  # (B, S)
        logits = self.forward.forward(
            state.cache, positions, state.key_mask, input_ids=tokens.to(self.device), last_only=False
        )
        state.next_pos = state.next_pos + S
        state.columns += S
        return logits

    def rollback(self, state: DecoderState, drop: int) -> None:
        """Forget the last `drop` positions fed (rejected draft tokens)."""
        if drop <= 0:
            return
        state.columns -= drop
        state.cache = self.forward.crop_cache(state.cache, state.columns)
        state.next_pos = state.next_pos - drop
        if state.key_mask is not None:
            state.key_mask = state.key_mask[:, : state.columns]

    def select(self, state: DecoderState, rows: list[int]) -> None:
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        state.cache = self.forward.select_cache(state.cache, index)
        state.next_pos = state.next_pos.index_select(0, index)
        state.pads = [state.pads[r] for r in rows]
        if state.key_mask is None:
            return
        start = min(state.pads, default=0)  # leading columns that are padding in every row
        state.key_mask = state.key_mask.index_select(0, index)[:, start:]
        if start:
            state.cache = self.forward.trim_cache(state.cache, start)
            state.pads = [p - start for p in state.pads]
            state.columns -= start
        if not any(state.pads):
            state.key_mask = None

    def join(self, state: DecoderState, other: DecoderState, max_new_tokens: int) -> DecoderState:
        columns = max(state.columns, other.columns)
        masks = [self._padded_mask(s, columns) for s in (state, other)]
        cache = self.forward.join_caches(state.cache, other.cache, columns + max_new_tokens)
        pads = [p + columns - s.columns for s in (state, other) for p in s.pads]
        key_mask = torch.cat(masks) if any(pads) else None
        next_pos = torch.cat([state.next_pos, other.next_pos])
        return DecoderState(cache, key_mask, next_pos, pads, columns)

    def _padded_mask(self, state: DecoderState, columns: int) -> torch.Tensor:
        """(rows, columns) bool: the state's key mask with padding columns added on the left."""
        mask = state.key_mask
        if mask is None:
            mask = torch.ones(len(state.pads), state.columns, dtype=torch.bool, device=self.device)
        return nn.functional.pad(mask, (columns - state.columns, 0), value=False)


@dataclass
class Seq2SeqState:
    encoder_outputs: Any
    encoder_mask: torch.Tensor
    cache: Any


class Seq2SeqBackend:
    """Encoder-decoder models: the prompt goes to the encoder, the decoder starts from its start token."""

    can_join = False

    def __init__(self, model: Any):
        self.model = model
        self.device = next(model.parameters()).device
        self.vocab_size: int = model.config.vocab_size
        self.start_id: int = model.config.decoder_start_token_id

    @torch.inference_mode()
    def prefill(self, batch: PromptBatch, max_new_tokens: int) -> tuple[torch.Tensor, Seq2SeqState]:
        from transformers import DynamicCache, EncoderDecoderCache

        ids, mask = batch.input_ids.to(self.device), batch.mask.to(self.device).long()
        encoder = self.model.get_encoder()
        if batch.prefix_embeds is None:
            encoded = encoder(input_ids=ids, attention_mask=mask)
        else:  # prompt tuning: virtual tokens before the encoder's input
            prefix = batch.prefix_embeds.to(self.device)
            B, P = ids.shape[0], prefix.shape[0]
            embeds = self.model.get_input_embeddings()(ids)
            embeds = torch.cat([prefix.to(embeds.dtype).expand(B, -1, -1), embeds], dim=1)
            mask = torch.cat([torch.ones(B, P, dtype=mask.dtype, device=self.device), mask], dim=1)
            encoded = encoder(inputs_embeds=embeds, attention_mask=mask)
        state = Seq2SeqState(encoded, mask, EncoderDecoderCache(DynamicCache(), DynamicCache()))
        start = torch.full((ids.shape[0],), self.start_id, dtype=torch.long, device=self.device)
        return self.step(state, start), state

    @torch.inference_mode()
    def step(self, state: Seq2SeqState, tokens: torch.Tensor) -> torch.Tensor:
        out = self.model(
            encoder_outputs=state.encoder_outputs,
            attention_mask=state.encoder_mask,
            decoder_input_ids=tokens[:, None].to(self.device),
            cache=state.cache,
            use_cache=True,
        )
        return out.logits[:, -1].float()

    def select(self, state: Seq2SeqState, rows: list[int]) -> None:
        index = torch.tensor(rows, dtype=torch.long, device=self.device)
        state.encoder_outputs.last_hidden_state = state.encoder_outputs.last_hidden_state.index_select(
            0, index
        )
        state.encoder_mask = state.encoder_mask.index_select(0, index)
        state.cache.batch_select_indices(index)

    def join(self, state: Seq2SeqState, other: Seq2SeqState, max_new_tokens: int) -> Seq2SeqState:
        raise ModelError(
            "encoder-decoder models cannot take new rows into a running batch (their decoders take positions "
            "from the cache length); start a new batch"
        )


def default_precision(model: Any) -> Precision:
    """int8 on a CPU with VNNI (4x less memory traffic, perplexity within 2% of fp32), else exact fp32."""
    device = next(model.parameters()).device
    return "int8" if device.type == "cpu" and int8_supported() else "fp32"


def make_backend(model: Any, kind: str, precision: str = "auto", tokenizer: Any = None) -> Backend:
    """Pick the backend for a model: fused for Llama, transformers' own forward otherwise.

    Args:
        precision: "auto", "fp32", "bf16", "int8" (fused Llama path), or "hf" to force transformers' forward.
    """
    if kind == "encoder-decoder":
        return Seq2SeqBackend(model)
    vocab = model.get_output_embeddings().weight.shape[0]
    if precision == "hf" or not supports(model) or not _fusable(model):
        return DecoderBackend(HFForward(model), vocab)
    chosen: Precision = default_precision(model) if precision == "auto" else precision  # type: ignore[assignment]
    from llmlab.peft.lora import merged_lora

    # The fused path copies the weights now: an active LoRA adapter is merged into that copy (the model
    # itself stays unmerged). A later adapter switch needs a new backend.
    with merged_lora(model):
        return DecoderBackend(FusedForward(model, chosen, tokenizer), vocab)


def _fusable(model: Any) -> bool:
    """False when an active adapter changes the model in a way the fused path does not run (bottleneck
    adapters); LoRA is merged into the fused weights, soft prompts come as `prefix_embeds`."""
    from llmlab.peft.registry import active_adapter, has_adapters

    if not has_adapters(model):
        return True
    info = active_adapter(model)
    return info is None or info.method in ("lora", "prompt-tuning", "selective")
