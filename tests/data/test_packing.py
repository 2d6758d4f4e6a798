"""Packing: per-document positions, no target across documents, and no attention across documents."""

from __future__ import annotations

import torch

from llmlab.data.packing import IGNORE, pack_documents, pack_examples, split_by_seed
from llmlab.data.tokenize import Tokenized
from llmlab.training.batches import collate
from llmlab.training.causal_lm import hidden_states, split_head


def doc(ids, source="d"):
    return Tokenized(list(ids), [True] * len(ids), source)


def test_positions_restart_and_targets_stay_inside_documents():
    rows = pack_documents([doc([10, 11, 12]), doc([20, 21]), doc([30, 31, 32, 33, 34])], seq_len=6)
    assert [r.input_ids for r in rows] == [[10, 11, 12, 20, 21, 30], [31, 32, 33, 34]]
    assert [r.position_ids for r in rows] == [[0, 1, 2, 0, 1, 0], [0, 1, 2, 3]]
    # 12 and 21 end their documents: they predict nothing; 30 (cut off by the row end) still predicts 31.
    assert [r.targets for r in rows] == [[11, 12, IGNORE, 21, IGNORE, 31], [32, 33, 34, IGNORE]]


def test_pack_examples_keeps_examples_whole():
    examples = [doc(range(n), f"e{n}") for n in (5, 2, 4, 3)]
    rows = pack_examples(examples, seq_len=7)
    assert sorted(len(r) for r in rows) == [7, 7]
    assert all(r.position_ids.count(0) == 2 for r in rows)


def test_split_by_seed_is_repeatable_and_disjoint():
    items = list(range(50))
    a, b = split_by_seed(items, 0.1, seed=3), split_by_seed(items, 0.1, seed=3)
    assert a == b and len(a[1]) == 5 and not set(a[0]) & set(a[1])
    assert split_by_seed(items, 0.1, seed=4)[1] != a[1]
    assert split_by_seed([1], 0.5, seed=0) == ([1], [])


def test_packed_logits_equal_alone(tiny_model):
    """Each document's logits in a packed row equal those of the document run alone (fp32 tolerance)."""
    g = torch.Generator().manual_seed(0)
    docs = [doc(torch.randint(4, 300, (n,), generator=g).tolist()) for n in (7, 12, 5)]
    (row,) = pack_documents(docs, seq_len=24)
    body, head = split_head(tiny_model)
    with torch.no_grad():
        packed = head(hidden_states(body, collate([row], 0)))[0]  # (T, V)
        start = 0
        for d in docs:
            alone = head(hidden_states(body, collate(pack_documents([d], 24), 0)))[0]
            torch.testing.assert_close(packed[start : start + len(d)], alone)
            start += len(d)
    # Without the per-document positions the later documents would see the earlier ones (the check has teeth).
    plain = collate([row], 0)
    plain["position_ids"] = torch.arange(len(row))[None]
    with torch.no_grad():
        leaked = head(hidden_states(body, plain))[0]
    assert not torch.allclose(leaked[7:19], packed[7:19], atol=1e-3)
