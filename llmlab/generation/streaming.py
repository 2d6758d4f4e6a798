"""Turning a growing list of token ids into text pieces, and cutting the text at stop strings.

Incremental detokenization follows the prefix/read-offset scheme of text-generation-inference: decode a short
window of recent tokens twice (with and without the newest ones) and emit the difference, holding it back
while it ends in U+FFFD (a multi-byte character split across byte-level tokens). Decoding the window instead
of the whole sequence keeps each step O(window) and keeps tokenizers' whitespace rules (leading spaces,
"▁" markers) correct.

Stop strings are searched in the text as it grows; text that could still become a stop string is held back,
so a stream never shows a partial stop string, and the final text ends right before the stop string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Feed token ids one at a time; get the new text each time (maybe "")."""

    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip_special = skip_special_tokens
        self.ids: list[int] = []
        self.prefix_offset = 0
        self.read_offset = 0

    def _decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=self.skip_special))

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT):
            piece = new_text[len(prefix_text) :]
            self.prefix_offset = self.read_offset
            self.read_offset = len(self.ids)
            return piece
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an incomplete character at the very end), replacement chars included."""
        prefix_text = self._decode(self.ids[self.prefix_offset : self.read_offset])
        new_text = self._decode(self.ids[self.prefix_offset :])
        self.prefix_offset = self.read_offset = len(self.ids)
        return new_text[len(prefix_text) :]


class StopStrings:
    """Finds the first stop string in growing text and says how much text is safe to show."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.longest = max((len(s) for s in self.stops), default=0)

    def find(self, text: str, new_from: int) -> int:
        """Index where the earliest stop string starts, searching only where new text could complete one."""
        if not self.stops:
            return -1
        start = max(0, new_from - self.longest + 1)
        hits = [i for i in (text.find(s, start) for s in self.stops) if i >= 0]
        return min(hits) if hits else -1

    def safe_length(self, text: str) -> int:
        """Length of the prefix of `text` that cannot turn into the start of a stop string."""
        for size in range(min(self.longest, len(text)), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self.stops):
                return len(text) - size
        return len(text)
