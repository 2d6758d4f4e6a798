"""The playground's stages are sampling.py's own filters: the last stage equals process_logits' distribution;
a hand-checked top-k / top-p case; greedy puts all the mass on the argmax."""

from __future__ import annotations

import math

import torch

from llmlab.generation.config import SamplingParams
from llmlab.generation.sampling import process_logits
from llmlab.serving.playground import filter_stages


def test_last_stage_is_what_sampling_draws_from():
    logits = torch.randn(50, generator=torch.Generator().manual_seed(0)) * 3
    params = SamplingParams(temperature=0.7, top_k=10, top_p=0.8, min_p=0.05)
    out = filter_stages(logits, params, top=50)
    expected = process_logits(logits[None], params).softmax(-1)[0]
    assert [s["name"] for s in out["stages"]] == [
        "model",
        "temperature 0.7",
        "top-k 10",
        "top-p 0.8",
        "min-p 0.05",
    ]
    torch.testing.assert_close(
        torch.tensor(out["stages"][-1]["probs"]), expected[out["ids"]], atol=1e-6, rtol=0
    )
    assert out["stages"][0]["kept"] == 50 and out["stages"][2]["kept"] == 10


def test_hand_checked_stages():
    """Logits ln(4), ln(3), ln(2), ln(1): p = .4 .3 .2 .1. Temperature 1 leaves them; top-k 3 drops the last
    (.444 .333 .222); top-p 0.7 then keeps the smallest set reaching 0.7 of the renormalised mass: 4/9 + 3/9
    = 0.778 >= 0.7, so two tokens (.571 .429)."""
    logits = torch.log(torch.tensor([4.0, 3.0, 2.0, 1.0]))
    out = filter_stages(logits, SamplingParams(temperature=1.0, top_k=3, top_p=0.7), top=4)
    probs = [s["probs"] for s in out["stages"]]
    assert out["ids"] == [0, 1, 2, 3]
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(probs[0], [0.4, 0.3, 0.2, 0.1], strict=True))
    assert all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(probs[2], [4 / 9, 3 / 9, 2 / 9, 0], strict=True)
    )
    assert all(math.isclose(a, b, abs_tol=1e-6) for a, b in zip(probs[3], [4 / 7, 3 / 7, 0, 0], strict=True))


def test_greedy_puts_all_mass_on_the_argmax():
    out = filter_stages(torch.tensor([0.1, 2.0, 1.0]), SamplingParams(greedy=True), top=3)
    assert out["stages"][-1] == {"name": "greedy", "probs": [1.0, 0.0, 0.0], "kept": 1}


def test_the_route_returns_the_stages(server):
    from servekit import http_json

    body = {"prompt": "The capital", "temperature": 0.5, "top_k": 4, "top": 8, "chat": False}
    status, got = http_json(server.url + "/v1/llmlab/next-token", body)
    assert status == 200
    assert len(got["tokens"]) == len(got["ids"]) == 8
    assert [s["kept"] for s in got["stages"]][-1] == 4 and sum(got["stages"][-1]["probs"]) > 0.99
