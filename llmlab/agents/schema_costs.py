"""The cost half of the schema automaton: whether a stack may end, and the fewest bytes that finish it.

    min_close(state) = min over its stacks of the sum of each frame's remaining cost
    minlen(node)     = the length of the node's shortest text

Split from schema_automaton.py (the Automaton inherits this) only to keep files small. Exactness is tested
against a breadth-first search: tests/agents/test_schema_automaton.py::test_min_close_is_the_shortest_completion.
"""

from __future__ import annotations

from typing import Any

from llmlab.agents.schema_grammar import (
    AFTER_COMMA,
    AFTER_VALUE,
    ANY,
    ARR,
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
    INF,
    LIT,
    NUM,
    NUM_ENDS,
    OBJ,
    OPEN,
    SEQ,
    STR,
    Node,
    Stack,
    arith_cost,
)


class CostsMixin:
    """Needs `self.nodes` (the grammar) and `self._minlen` (a cache) from the Automaton."""

    nodes: list[Node]
    _minlen: dict[int, int]

    @staticmethod
    def _key_candidates(node: Node, idx: int, prefix: bytes) -> list[int]:
        """Properties that may come next (skipping only optional ones) whose key starts with `prefix`."""
        out = []
        for j in range(idx, len(node.props)):
            if node.props[j][0].startswith(prefix):
                out.append(j)
            if node.props[j][2]:  # a required property cannot be skipped
                break
        return out

    # ---- ending and cost ----------------------------------------------------------------------------------

    def _can_end(self, stack: Stack) -> bool:
        for f in stack:
            kind = f[0]
            if kind == F_SPACE:
                continue
            if kind == F_NUM and f[2] in NUM_ENDS:
                continue
            if kind == F_FREE and self.nodes[f[1]].can_end:
                continue
            if kind == F_SEQ and all(self.minlen(p) == 0 for p in self.nodes[f[1]].parts[f[2] :]):
                continue
            if kind == F_VALUE and self.minlen(f[1]) == 0:
                continue
            return False
        return True

    def minlen(self, nid: int) -> int:
        """The length of the shortest text for node `nid`."""
        found = self._minlen.get(nid)
        if found is not None:
            return found
        self._minlen[nid] = INF  # recursion guard: a cycle never gives the shortest text
        node = self.nodes[nid]
        if node.kind == OBJ:
            value = 2 + self._props_cost(node, 0, comma_first=False)
        elif node.kind == ARR:
            value = 2 + node.min_items * self.minlen(node.item) + max(0, node.min_items - 1)
        elif node.kind == STR and node.arithmetic:  # "1+1"
            value = 2 + 1 + 2 * (min(map(len, node.numbers)) if node.numbers else 1)
        elif node.kind == STR:
            value = 2 + (min(map(len, node.enum)) if node.enum else node.min_len)
        elif node.kind == NUM:
            value = 1
        elif node.kind == LIT:
            value = len(node.text)
        elif node.kind == ANY:
            value = min((self.minlen(p) for p in node.parts), default=INF)
        elif node.kind == SEQ:
            value = sum(self.minlen(p) for p in node.parts)
        else:  # FREE
            value = 0 if node.can_end else len(node.text) + self.minlen(node.then)
        self._minlen[nid] = value
        return value

    def _props_cost(self, node: Node, idx: int, comma_first: bool) -> int:
        """Bytes for the required properties from `idx` on, each `"key":value`, comma-separated."""
        costs = [len(k) + 3 + self.minlen(v) for k, v, required in node.props[idx:] if required]
        return sum(costs) + max(0, len(costs) - 1) + (1 if comma_first and costs else 0)

    def _frame_cost(self, f: tuple[Any, ...]) -> int:
        kind = f[0]
        if kind == F_VALUE:
            return self.minlen(f[1])
        if kind == F_LIT:
            return len(f[1])
        if kind in (F_STR, F_FREEKEY):
            esc = f[2]
            close = 1 if esc == 0 else 2 if esc == 1 else esc - 10 + 1
            if kind == F_FREEKEY:
                return close + 1 + self.minlen(self.nodes[f[1]].extra) + 1
            return close + max(0, self.nodes[f[1]].min_len - f[3] - (esc != 0))
        if kind == F_ENUM:
            options = self.nodes[f[1]].enum or ()
            return min(len(o) - len(f[2]) for o in options if o.startswith(f[2])) + 1
        if kind == F_NUM:
            return 0 if f[2] in NUM_ENDS else 1
        if kind == F_OBJ:
            return self._object_cost(self.nodes[f[1]], f[2], f[3])
        if kind == F_KEY:
            node = self.nodes[f[1]]
            return min(
                len(node.props[j][0]) - len(f[3]) + 2 + self.minlen(node.props[j][1])
                + self._props_cost(node, j + 1, comma_first=True) + 1
                for j in self._key_candidates(node, f[2], f[3])
            )  # fmt: skip
        if kind == F_ARR:
            node = self.nodes[f[1]]
            need = max(0, node.min_items - f[2])
            if f[3] == OPEN:
                return 1 + need * self.minlen(node.item) + max(0, need - 1)
            return 1 + need * (self.minlen(node.item) + 1)
        if kind == F_SEQ:
            return sum(self.minlen(p) for p in self.nodes[f[1]].parts[f[2] :])
        if kind == F_FREE:
            node = self.nodes[f[1]]
            return 0 if node.can_end else len(node.text) - f[2] + self.minlen(node.then)
        if kind == F_ARITH:
            return arith_cost(f[2], self.nodes[f[1]].numbers)
        return 0  # F_SPACE

    def _object_cost(self, node: Node, idx: int, phase: int) -> int:
        if not node.props:
            return 1 if phase != AFTER_COMMA else 2 + 1 + self.minlen(node.extra) + 1
        if phase != AFTER_COMMA:
            return self._props_cost(node, idx, comma_first=phase == AFTER_VALUE) + 1
        return 1 + min(
            len(node.props[j][0]) + 3 + self.minlen(node.props[j][1]) + self._props_cost(node, j + 1, True)
            for j in self._key_candidates(node, idx, b"")
        )
