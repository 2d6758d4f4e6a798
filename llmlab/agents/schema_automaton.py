"""Grammar-constrained decoding, part 1: a byte-level pushdown automaton compiled from JSON schemas.

A JSON schema (the subset tool schemas use) compiles into grammar nodes; a state of the automaton is the set
of stacks of frames (an object waiting for a key, a string inside its escape, a number after its dot, ...)
that the bytes so far allow, so `anyOf` and tool choice are tracked without backtracking. Every state is
interned to an int and its transitions are memoised per byte, so walking a token's bytes costs a few list
lookups once the automaton has seen a state (json_constraint.py turns this into token masks).

    step(state, byte) -> state | DEAD        accepting(state)        min_close(state) = bytes still needed

The JSON written is compact except for one optional space after ':' and ','; object properties come in
schema order (optional ones may be skipped); numbers follow RFC 8259 (integers without '.' or exponent);
strings allow any byte but '"', '\\' and control bytes, plus the JSON escapes. Keywords enforced while
decoding: type, enum, const, properties, required, additionalProperties (a schema, for objects without
properties), items, minItems, maxItems, anyOf, oneOf (as anyOf), nullable, local $ref. Other keywords
(minimum, pattern, minLength, ...) are not; validation.py checks them after decoding.

This is the approach of Willard & Louf, "Efficient Guided Generation for LLMs" (2023, arXiv:2307.09702:
outlines), with a pushdown automaton over bytes instead of a regex FSM over characters, and masks computed per
state (GBNF in llama.cpp and XGrammar, Dong et al. 2024, do the same). `min_close` lets the token masker keep
every call finishable within the token budget. Tests: tests/agents/test_schema_automaton.py (json.loads and
validate() accept every accepted string; random byte strings are rejected exactly when they are not a
valid prefix).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from typing import Any

from llmlab.agents.schema_costs import CostsMixin
from llmlab.agents.schema_grammar import (
    AFTER_COMMA,
    AFTER_VALUE,
    ANY,
    ARITH_BYTES,
    ARITH_START,
    ARR,
    DEAD,
    DIGITS,
    END,
    F_ARITH,
    F_ARR,
    F_ENUM,
    F_FREE,
    F_FREEKEY,
    F_KEY,
    F_LIT,
    F_NUM,
    F_OBJ,
    F_SEQ,
    F_SPACE,
    F_STR,
    F_VALUE,
    FREE,
    LIT,
    NUM,
    NUM_ENDS,
    OBJ,
    OPEN,
    SEQ,
    STR,
    UNKNOWN,
    Node,
    SchemaCompiler,
    Stack,
    arith_step,
    number_byte,
    string_byte,
)
from llmlab.errors import ConfigError


class Automaton(CostsMixin):
    """Grammar nodes plus the interned states and memoised byte transitions of their pushdown automaton."""

    def __init__(
        self, min_string_length: int = 0, arithmetic_numbers: tuple[bytes, ...] | None = None
    ) -> None:
        self.min_string_length = min_string_length  # for strings whose schema gives no minLength
        self.arithmetic_numbers = arithmetic_numbers  # the numbers arithmetic strings may use (None: any)
        self.nodes: list[Node] = []
        self._any_json = -1
        self._refs: dict[str, int] = {}
        self._state_ids: dict[tuple[Stack, ...], int] = {}
        self._states: list[tuple[Stack, ...]] = []
        self._trans: list[array] = []
        self._next_bytes: dict[int, list[int]] = {}
        self._accepting: dict[int, bool] = {}
        self._cost: dict[int, int] = {}
        self._minlen: dict[int, int] = {}
        self._kmp: dict[tuple[int, int, int], int] = {}
        self.unsupported: list[str] = []

    # ---- building the grammar -------------------------------------------------------------------------

    def add(self, node: Node) -> int:
        self.nodes.append(node)
        return len(self.nodes) - 1

    def lit(self, text: str | bytes) -> int:
        return self.add(Node(LIT, text=text.encode() if isinstance(text, str) else text))

    def seq(self, *parts: int) -> int:
        return self.add(Node(SEQ, parts=parts))

    def any_of(self, *alternatives: int) -> int:
        return self.add(Node(ANY, parts=alternatives))

    def free(self, trigger: str = "", then: int = -1, can_end: bool = True) -> int:
        """Free text that hands over to `then` right after `trigger` appears (whose first byte must not recur
        in it, so a mismatch always restarts the match at zero or one byte)."""
        raw = trigger.encode()
        if raw and raw[0] in raw[1:]:
            raise ConfigError(f"trigger {trigger!r}: its first character must not appear again in it")
        return self.add(Node(FREE, text=raw, then=then, can_end=can_end))

    def schema(self, schema: Mapping[str, Any] | bool, root: Mapping[str, Any] | None = None) -> int:
        """Compile a JSON schema into nodes; returns the root node."""
        return SchemaCompiler(self, root if root is not None else schema).compile(schema)

    def any_json(self) -> int:
        """Any JSON value (objects with free keys, arrays, strings, numbers, booleans, null)."""
        if self._any_json < 0:
            self._any_json = slot = self.add(Node(ANY))  # placeholder, filled once the children exist
            obj = self.add(Node(OBJ, extra=slot))
            arr = self.add(Node(ARR, item=slot))
            scalars = (self.add(Node(STR)), self.add(Node(NUM)), self.lit("true"), self.lit("false"))
            self.nodes[slot] = Node(ANY, parts=(obj, arr, *scalars, self.lit("null")))
        return self._any_json

    # ---- states -----------------------------------------------------------------------------------------

    def start(self, root: int) -> int:
        """The state before any byte of a value of node `root`."""
        return self._intern(self._close(((F_VALUE, root),)))

    def step(self, state: int, byte: int) -> int:
        row = self._trans[state]
        nxt = row[byte]
        if nxt == UNKNOWN:
            out: list[Stack] = []
            for stack in self._states[state]:
                out += self._step(stack, byte)
            nxt = row[byte] = self._intern(out) if out else DEAD
        return nxt

    def walk(self, state: int, data: bytes, start: int = 0) -> int:
        """The state after `data[start:]`, or DEAD."""
        for i in range(start, len(data)):
            state = self.step(state, data[i])
            if state < 0:
                return DEAD
        return state

    def next_bytes(self, state: int) -> list[int]:
        """The bytes with a live transition from `state`, ascending."""
        found = self._next_bytes.get(state)
        if found is None:
            candidates: set[int] = set()
            for stack in self._states[state]:
                more = self._candidates(stack)
                if more is None:
                    candidates = set(range(256))
                    break
                candidates |= more
            found = self._next_bytes[state] = [b for b in sorted(candidates) if self.step(state, b) >= 0]
        return found

    def _candidates(self, stack: Stack) -> set[int] | None:
        """A superset of the bytes a stack may take next (None: nearly any byte), so that `next_bytes` need
        not try all 256."""
        if not stack:
            return set()
        top = stack[-1]
        kind = top[0]
        if kind in (F_STR, F_FREEKEY, F_FREE, F_ARR):
            return None
        if kind == F_LIT:
            return {top[1][0]}
        if kind == F_VALUE:
            return set(b'{["-0123456789')
        if kind == F_ENUM:
            return {0x22} | {o[len(top[2])] for o in self.nodes[top[1]].enum or () if len(o) > len(top[2])}
        if kind == F_KEY:
            keys = [
                self.nodes[top[1]].props[j][0]
                for j in self._key_candidates(self.nodes[top[1]], top[2], top[3])
            ]
            return {0x22} | {k[len(top[3])] for k in keys if len(k) > len(top[3])}
        if kind == F_OBJ:
            return set(b'",}')
        if kind == F_ARITH:
            return set(ARITH_BYTES)
        out: set[int] = {0x20} if kind == F_SPACE else set(b"0123456789.eE+-")
        for closed in self._close(stack[:-1]):  # what follows an optional space or a finished number
            more = self._candidates(closed)
            if more is None:
                return None
            out |= more
        return out

    def accepting(self, state: int) -> bool:
        """True when the text so far may end here."""
        found = self._accepting.get(state)
        if found is None:
            found = self._accepting[state] = any(self._can_end(s) for s in self._states[state])
        return found

    def min_close(self, state: int) -> int:
        """The fewest bytes that complete the text from `state` (0 when it may end here)."""
        found = self._cost.get(state)
        if found is None:
            found = self._cost[state] = min(sum(self._frame_cost(f) for f in s) for s in self._states[state])
        return found

    def stacks(self, state: int) -> tuple[Stack, ...]:
        return self._states[state]

    def _intern(self, stacks: Iterable[Stack]) -> int:
        key = tuple(dict.fromkeys(stacks))
        found = self._state_ids.get(key)
        if found is None:
            found = self._state_ids[key] = len(self._states)
            self._states.append(key)
            self._trans.append(array("i", [UNKNOWN]) * 256)
        return found

    # ---- the pushdown automaton ---------------------------------------------------------------------------

    def _close(self, stack: Stack) -> list[Stack]:
        """Expand frames that consume no byte (choices, sequences, literals as values) until each stack's top
        waits for a byte, or the stack is empty (done)."""
        out, todo, seen = [], [stack], set()
        while todo:
            s = todo.pop()
            if s in seen:
                continue
            seen.add(s)
            if not s:
                out.append(s)
                continue
            top, rest = s[-1], s[:-1]
            if top[0] == F_VALUE:
                node = self.nodes[top[1]]
                if node.kind == ANY:
                    todo += [(*rest, (F_VALUE, alt)) for alt in reversed(node.parts)]
                elif node.kind == SEQ:
                    todo.append((*rest, (F_SEQ, top[1], 0)))
                elif node.kind == FREE:
                    todo.append((*rest, (F_FREE, top[1], 0)))
                elif node.kind == LIT:
                    todo.append((*rest, (F_LIT, node.text)) if node.text else rest)
                else:
                    out.append(s)
            elif top[0] == F_SEQ:
                parts = self.nodes[top[1]].parts
                i = top[2]
                todo.append((*rest, (F_SEQ, top[1], i + 1), (F_VALUE, parts[i])) if i < len(parts) else rest)
            else:
                out.append(s)
        return out

    def _step(self, stack: Stack, b: int) -> list[Stack]:
        if not stack:
            return []
        top, rest = stack[-1], stack[:-1]
        kind = top[0]
        if kind == F_SPACE:
            return self._close(rest) if b == 0x20 else self._refeed(rest, b)
        if kind == F_LIT:
            if top[1][0] != b:
                return []
            return self._close((*rest, (F_LIT, top[1][1:]))) if len(top[1]) > 1 else self._close(rest)
        return STEPS[kind](self, top, rest, b)

    def _refeed(self, stack: Stack, b: int) -> list[Stack]:
        out: list[Stack] = []
        for s in self._close(stack):
            out += self._step(s, b)
        return out

    def _value(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        node = self.nodes[top[1]]
        if node.kind == OBJ and b == 0x7B:  # {
            return [(*rest, (F_OBJ, top[1], 0, OPEN))]
        if node.kind == ARR and b == 0x5B:  # [
            return [(*rest, (F_ARR, top[1], 0, OPEN))]
        if node.kind == STR and b == 0x22:  # "
            if node.arithmetic:
                return [(*rest, (F_ARITH, top[1], ARITH_START))]
            return [(*rest, (F_STR, top[1], 0, 0) if node.enum is None else (F_ENUM, top[1], b""))]
        if node.kind == NUM and (b == 0x2D or b in DIGITS):  # - or digit
            return [(*rest, (F_NUM, top[1], 0 if b == 0x2D else 1 if b == 0x30 else 2))]
        return []

    def _string(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        kind, nid, esc, count = top
        need = self.nodes[nid].min_len if kind == F_STR else 0
        nxt = string_byte(esc, b)
        if nxt is None:
            return []
        if nxt == "end":
            if count < need:
                return []
            if kind == F_FREEKEY:  # a free key: then ':' and the value
                node = self.nodes[top[1]]
                return [
                    (*rest, (F_OBJ, top[1], 0, AFTER_VALUE), (F_VALUE, node.extra), (F_SPACE,), (F_LIT, b":"))
                ]
            return self._close(rest)
        if count < need and nxt == 0 and (esc != 0 or not 0x80 <= b < 0xC0):  # a character is complete
            count += 1
        return [(*rest, (kind, nid, nxt, count))]

    def _enum(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        options = self.nodes[top[1]].enum or ()
        escaped_quote = (len(top[2]) - len(top[2].rstrip(b"\\"))) % 2 == 1
        if b == 0x22 and not escaped_quote:
            return self._close(rest) if top[2] in options else []
        prefix = top[2] + bytes((b,))
        return [(*rest, (F_ENUM, top[1], prefix))] if any(o.startswith(prefix) for o in options) else []

    def _number(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        phase, integer = top[2], self.nodes[top[1]].integer
        nxt = number_byte(phase, b, integer)
        if nxt is None:
            return self._refeed(rest, b) if phase in NUM_ENDS else []
        return [(*rest, (F_NUM, top[1], nxt))]

    def _object(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        nid, idx, phase = top[1], top[2], top[3]
        node = self.nodes[nid]
        if b == 0x22 and phase in (OPEN, AFTER_COMMA):  # a key starts
            if not node.props:
                return [(*rest, (F_FREEKEY, nid, 0, 0))] if node.extra >= 0 else []
            return [(*rest, (F_KEY, nid, idx, b""))] if self._key_candidates(node, idx, b"") else []
        if b == 0x7D and phase in (OPEN, AFTER_VALUE):  # }
            return self._close(rest) if not any(p[2] for p in node.props[idx:]) else []
        if b == 0x2C and phase == AFTER_VALUE:  # ,
            more = node.extra >= 0 if not node.props else idx < len(node.props)
            return [(*rest, (F_OBJ, nid, idx, AFTER_COMMA), (F_SPACE,))] if more else []
        return []

    def _key(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        nid, idx, prefix = top[1], top[2], top[3]
        node = self.nodes[nid]
        if b == 0x22:
            for j in self._key_candidates(node, idx, prefix):
                if node.props[j][0] == prefix:
                    value = node.props[j][1]
                    return [
                        (*rest, (F_OBJ, nid, j + 1, AFTER_VALUE), (F_VALUE, value), (F_SPACE,), (F_LIT, b":"))
                    ]
            return []
        longer = prefix + bytes((b,))
        return [(*rest, (F_KEY, nid, idx, longer))] if self._key_candidates(node, idx, longer) else []

    def _array(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        nid, count, phase = top[1], top[2], top[3]
        node = self.nodes[nid]
        cap = node.max_items if node.max_items is not None else node.min_items
        if b == 0x5D and count >= node.min_items:  # ]
            return self._close(rest)
        if phase == OPEN and (node.max_items is None or node.max_items > 0):
            return self._refeed(
                (*rest, (F_ARR, nid, min(1, max(cap, 1)), AFTER_VALUE), (F_VALUE, node.item)), b
            )
        if phase == AFTER_VALUE and b == 0x2C and (node.max_items is None or count < node.max_items):
            nxt = min(count + 1, max(cap, 1))
            return [(*rest, (F_ARR, nid, nxt, AFTER_VALUE), (F_VALUE, node.item), (F_SPACE,))]
        return []

    def _arith(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        nxt = arith_step(top[2], b, self.nodes[top[1]].numbers)
        if nxt is None:
            return []
        return self._close(rest) if nxt == END else [(*rest, (F_ARITH, top[1], nxt))]

    def _free(self, top: tuple[Any, ...], rest: Stack, b: int) -> list[Stack]:
        node = self.nodes[top[1]]
        k = self._kmp_next(top[1], top[2], b)
        if node.text and k == len(node.text):
            return self._close((*rest, (F_VALUE, node.then)))
        return [(*rest, (F_FREE, top[1], k))]

    def _kmp_next(self, nid: int, k: int, b: int) -> int:
        """How much of the trigger is matched after byte b, given k matched (its first byte does not recur)."""
        trigger = self.nodes[nid].text
        if not trigger:
            return 0
        if trigger[k] == b:
            return k + 1
        return 1 if trigger[0] == b else 0


STEPS = {
    F_VALUE: Automaton._value,
    F_STR: Automaton._string,
    F_FREEKEY: Automaton._string,
    F_ENUM: Automaton._enum,
    F_NUM: Automaton._number,
    F_OBJ: Automaton._object,
    F_KEY: Automaton._key,
    F_ARR: Automaton._array,
    F_FREE: Automaton._free,
    F_ARITH: Automaton._arith,
}
