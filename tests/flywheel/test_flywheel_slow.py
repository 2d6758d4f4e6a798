"""The unattended flywheel on the real packaged models, on a reduced setting (slow tier).

Setting: the guide questions about two pages (rag-documents.md, rag-store.md, whose text is the only document
ingested), 8 held out and 8 for training, SmolLM2 as it is (`adapter="none"`; the flywheel's default base is
the adapted model), 4 completions each at temperature 0.7 and every pair (`max_pairs=0`), answers of at most
32 tokens, the scripted ranker `shortest`, DPO 2 epochs (LoRA on every linear layer, lr 1e-3), no reward model
(the slowest step, not needed here), the aligned adapter served and asked one held-out question through the
OpenAI client, then a rerun that skips every step.

What is asserted, and what it means (honestly): on the 8 held-out questions, never ranked or trained on, the
aligned model's greedy answers are shorter than the base model's by at least MARGIN_CHARS characters on
average: DPO taught the ranker's preference, and it carries over to unseen questions. It is NOT an
improvement in correctness: measured again on 2026-12-05 (load average 3 to 5, 763 s, DPO 505 s), 57.3 -> 14.4
characters (delta -42.9, 95% CI [-52.1, -33.4]) and token F1 0.046 -> 0.000. In the run measured first the answers went from 61.1 to 17.3 characters (delta
-43.9, 95% paired bootstrap CI [-58.8, -27.7]) and ROUGE-L against the references from 0.047 to 0.000; the
served model answered "1". 527 s on the project's 2-core machine at a load average of 3 (DPO 383 s, ask 46 s,
eval 41 s, generate 32 s, ingest 9 s, serve 12 s); 918 s at a load average of 4 to 8; the same numbers both
times. On that machine the same setting with a ranker that
preferred shorter answers among wrong ones too gave 61.1 -> 5.1 characters (delta -56.0, 95% paired
bootstrap CI [-73.0, -40.2]) and the aligned model answered "1" to most questions: the rule was gamed, and
ROUGE-L fell from 0.047 to 0.000. The flywheel's default ranker (`reference`: answers that contain the
reference beat the others, the shorter first; the rest tie) cannot be gamed that way, but on 8 train
questions it gave only 8 pairs (most sampled answers miss the reference), too few to move held-out answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
PAGES = ("rag-documents.md", "rag-store.md")
MARGIN_CHARS = 20.0  # the tolerance: measured -43.9 [-58.8, -27.7] (docstring); the interval's end is -27.7


@pytest.mark.slow
def test_the_aligned_model_learns_the_rankers_preference_on_held_out_questions(
    tmp_path: Path, llmlab_cache: Path
) -> None:
    from llmlab.flywheel.questions import question_of
    from llmlab.flywheel.run import FlywheelConfig, plan, run_flywheel

    docs = tmp_path / "docs"
    docs.mkdir()
    for page in PAGES:
        (docs / page).write_text((REPO / "docs" / page).read_text(encoding="utf-8"), encoding="utf-8")
    lines = (REPO / "bench" / "data" / "qa" / "guide.jsonl").read_text(encoding="utf-8").splitlines()
    chosen = [line for line in lines if set(json.loads(line).get("docs", [])) <= set(PAGES)]
    questions = tmp_path / "questions.jsonl"
    questions.write_text("".join(line + "\n" for line in chosen), encoding="utf-8")
    config = FlywheelConfig(out=str(tmp_path / "run"), questions=str(questions), documents=str(docs), heldout=8,
                            train=8, max_new_tokens=32, reward=False, ranker="shortest", adapter="none",
                            n=4, temperature=0.7, max_pairs=0)  # fmt: skip
    run = run_flywheel(config)

    result = json.loads((run / "10-eval" / "measures.json").read_text(encoding="utf-8"))
    measures = result["measures"]
    print(json.dumps(measures, indent=1))
    assert result["items"] == 8
    assert measures["characters"]["delta"] <= -MARGIN_CHARS, measures
    report = (run / "report.md").read_text(encoding="utf-8")
    heldout = [
        json.loads(line)["id"] for line in (run / "01-split" / "heldout.jsonl").read_text().splitlines()
    ]
    asked = {question_of(json.loads(line)["prompt"]) for line in (run / "03-ask" / "prompts.jsonl").open()}
    assert len(asked) == 8
    assert not asked & {json.loads(q)["question"] for q in chosen if json.loads(q)["id"] in heldout}
    assert f"- held-out (8): {', '.join(heldout)}" in report and "stand-in for people" in report
    reply = json.loads((run / "11-serve" / "reply.json").read_text(encoding="utf-8"))
    assert reply["client"] == "openai" and "+" in reply["model"] and reply["reply"].strip()
    again: list[str] = []
    run_flywheel(config, on_event=again.append)  # resumes: every step done, nothing runs
    assert all("skipped" in e for e in again) and len(again) == len(plan(config))
