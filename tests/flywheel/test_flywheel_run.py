"""The flywheel's orchestration (fast tier): order, resume, redo, and errors that name the step and the fix.

The commands are recorded by a scripted runner that writes each step's declared outputs instead of running
`llmlab` (the real commands run in tests/flywheel/test_flywheel_slow.py); the split step is real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmlab.flywheel.questions import read_questions, split_questions
from llmlab.flywheel.run import FlywheelConfig, FlywheelError, plan, run_flywheel

QUESTIONS = [{"id": f"q{i}", "question": f"Question {i}?", "answer": f"answer {i}"} for i in range(10)]


class Recorder:
    """Runs nothing: records each command and writes the outputs its step declares (JSONL files empty)."""

    def __init__(self, config: FlywheelConfig, fail: str | None = None) -> None:
        self.writes = {tuple(argv): step.writes for step in plan(config) for argv in step.commands}
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, argv: list[str], log: Path) -> tuple[int, str]:
        self.calls.append(argv)
        if self.fail is not None and argv[:2] == self.fail.split():
            return (
                2,
                "Traceback...\nerror: pairs.jsonl:3: 'chosen' is empty; write the preferred completion\n",
            )
        for path in self.writes[tuple(argv)]:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text("{}" if path.endswith(".json") else "", encoding="utf-8")
        return 0, ""


@pytest.fixture
def config(tmp_path: Path) -> FlywheelConfig:
    questions = tmp_path / "qa.jsonl"
    records = [*QUESTIONS, {"id": "nf", "question": "Unanswerable?", "answer": None}]
    questions.write_text("".join(json.dumps(q) + "\n" for q in records), encoding="utf-8")
    return FlywheelConfig(out=str(tmp_path / "run"), questions=str(questions), heldout=3, train=5)


def verbs(calls: list[list[str]]) -> list[str]:
    return [" ".join(argv[:2]) for argv in calls]


def test_the_steps_run_in_order_and_a_rerun_skips_them(config: FlywheelConfig) -> None:
    runner = Recorder(config)
    run_flywheel(config, until="dpo", runner=runner)
    assert verbs(runner.calls) == ["peft merge", "rag ingest", "flywheel prompts", "feedback generate",
                                   "feedback rank", "feedback pairs", "reward train", "align dpo"]  # fmt: skip
    merged = str(Path(config.out) / "00-base" / "model")
    assert runner.calls[0][2] == "llmlab/rag/adapters/grounded-smollm2-135m" and runner.calls[0][-1] == merged
    # the merged model (the packaged adapter in SmolLM2, as `rag ask` answers) is the base of every step
    assert all(argv[argv.index("--model") + 1] == merged for argv in runner.calls[2:]
               if "--model" in argv and argv[0] != "reward")  # fmt: skip
    assert runner.calls[4][4].startswith("f1:") and runner.calls[5][3:5] == ["--per-prompt", "2"]
    again = Recorder(config)
    events: list[str] = []
    run_flywheel(config, until="dpo", runner=again, on_event=events.append)
    assert again.calls == [] and sum("skipped" in e for e in events) == 9


def test_redo_runs_the_step_and_every_later_one(config: FlywheelConfig) -> None:
    run_flywheel(config, until="dpo", runner=Recorder(config))
    runner = Recorder(config)
    run_flywheel(config, until="dpo", redo="pairs", runner=runner)
    assert verbs(runner.calls) == ["feedback pairs", "reward train", "align dpo"]


def test_the_split_is_deterministic_disjoint_and_leaves_unanswerable_out(config: FlywheelConfig) -> None:
    run_flywheel(config, until="split", runner=Recorder(config))
    run = Path(config.out) / "01-split"
    train = [json.loads(line)["id"] for line in (run / "train.jsonl").read_text().splitlines()]
    heldout = [json.loads(line)["id"] for line in (run / "heldout.jsonl").read_text().splitlines()]
    assert (
        len(train) == 5
        and len(heldout) == 3
        and not set(train) & set(heldout)
        and "nf" not in train + heldout
    )
    again, kept = split_questions(read_questions(config.questions), 3, 5, seed=0)
    assert ([q.id for q in again], [q.id for q in kept]) == (train, heldout)
    other = split_questions(read_questions(config.questions), 3, 5, seed=1)[1]
    assert [q.id for q in other] != heldout  # the seed changes the split (checked: it does for seeds 0, 1)


def test_a_missing_questions_file_names_the_split_step(tmp_path: Path) -> None:
    config = FlywheelConfig(out=str(tmp_path / "run"), questions=str(tmp_path / "none.jsonl"))
    with pytest.raises(
        FlywheelError, match=r"flywheel step split: .*none\.jsonl: no such file; give a JSONL"
    ):
        run_flywheel(config, runner=Recorder(config))


def test_a_malformed_question_names_the_step_file_and_line(config: FlywheelConfig) -> None:
    with open(config.questions, "a", encoding="utf-8") as f:
        f.write('{"id": "x", "question": "No answer field?"}\n')
    with pytest.raises(
        FlywheelError, match=r"flywheel step split: .*qa\.jsonl:12: missing field\(s\) answer"
    ):
        run_flywheel(config, runner=Recorder(config))


def test_a_missing_input_names_the_step_and_the_step_that_writes_it(config: FlywheelConfig) -> None:
    run_flywheel(config, until="generate", runner=Recorder(config))
    completions = Path(config.out) / "04-generate" / "completions.jsonl"
    completions.unlink()
    with pytest.raises(FlywheelError) as error:
        run_flywheel(config, until="rank", runner=Recorder(config))
    assert str(error.value) == (
        f"flywheel step rank: its input {completions} is missing (step generate writes it); rerun with "
        "--redo generate to write it again"
    )


def test_a_malformed_input_names_the_step_the_line_and_the_fix(config: FlywheelConfig) -> None:
    run_flywheel(config, until="generate", runner=Recorder(config))
    completions = Path(config.out) / "04-generate" / "completions.jsonl"
    completions.write_text('{"prompt": "p", "completions": ["a", "b"]}\n{"prompt": \n', encoding="utf-8")
    with pytest.raises(FlywheelError, match=r"flywheel step rank: .*completions\.jsonl:2: not JSON \(.*\); "
                                            r"rerun with --redo generate"):  # fmt: skip
        run_flywheel(config, until="rank", runner=Recorder(config))


def test_a_failed_command_names_the_step_its_error_and_the_log(config: FlywheelConfig) -> None:
    runner = Recorder(config, fail="align dpo")
    with pytest.raises(FlywheelError) as error:
        run_flywheel(config, until="dpo", runner=runner)
    log = Path(config.out) / "08-dpo" / "log.txt"
    assert str(error.value) == (
        "flywheel step dpo: `llmlab align dpo` failed (exit 2): error: pairs.jsonl:3: 'chosen' is empty; write "
        f"the preferred completion; the full output is in {log}. Fix it and rerun: finished steps are skipped"
    )
    again = Recorder(config)
    run_flywheel(config, until="dpo", runner=again)  # resumes at the step that failed
    assert verbs(again.calls) == ["align dpo"]


def test_other_settings_are_refused_rather_than_mixed(config: FlywheelConfig) -> None:
    run_flywheel(config, until="split", runner=Recorder(config))
    changed = FlywheelConfig(**{**config.__dict__, "heldout": 4})
    with pytest.raises(
        FlywheelError, match=r"was made with other settings \(heldout 3 -> 4\); give another --out"
    ):
        run_flywheel(changed, runner=Recorder(changed))


def test_unknown_steps_are_refused(config: FlywheelConfig) -> None:
    with pytest.raises(
        FlywheelError, match=r"--until must be one of split, base, ingest, .*, report, got 'deploy'"
    ):
        run_flywheel(config, until="deploy", runner=Recorder(config))


def test_the_held_out_measures_apply_the_rankers_rule() -> None:
    """Hand-derived: "pypdf." holds the reference and beats a longer answer that also does (shorter) and any
    answer that does not; two that miss it tie, whatever their lengths."""
    from llmlab.flywheel.measure import contains_reference, ranker_preference

    refs = ["pypdf"]
    assert contains_reference("It uses PyPDF.", refs) == 1.0 and contains_reference("pdfminer", refs) == 0.0
    assert ranker_preference("The library is pypdf, I think.", "pypdf.", refs) == 1.0
    assert ranker_preference("pypdf.", "It is a library.", refs) == -1.0
    assert ranker_preference("It is a library called X.", "A library.", refs) == 0.0


def test_the_sampled_measures_average_each_questions_samples(tmp_path: Path) -> None:
    """Hand-derived: question a's base samples score token F1 1 and 0 (mean 0.5), its aligned ones 1 and 1;
    question b's base 0 and 0, aligned 2/3 ("the pypdf library": the article dropped, precision 1/2, recall 1)
    and 0. The files list the prompts in other orders: the means are paired by prompt."""
    from llmlab.errors import DataError
    from llmlab.flywheel.measure import sampled_measures

    data = {"PA": ["Paris"], "PB": ["pypdf"]}  # held-out prompt -> its references
    base, aligned = tmp_path / "base.jsonl", tmp_path / "aligned.jsonl"
    base.write_text(json.dumps({"prompt": "PB", "completions": ["pdfminer", "no idea"]}) + "\n"
                    + json.dumps({"prompt": "PA", "completions": ["Paris", "London"]}) + "\n")  # fmt: skip
    aligned.write_text(json.dumps({"prompt": "PA", "completions": ["Paris.", "paris"]}) + "\n"
                       + json.dumps({"prompt": "PB", "completions": ["the pypdf library", "x"]}) + "\n")  # fmt: skip
    measures = sampled_measures((base, aligned), data)
    assert measures["sampled_f1"][0] == [0.5, 0.0]
    assert measures["sampled_f1"][1] == pytest.approx([1.0, (2 * 1.0 * 0.5 / 1.5) / 2])
    assert measures["sampled_contains_reference"] == ([0.5, 0.0], [1.0, 0.5])
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"prompt": "elsewhere", "completions": ["x", "y"]}) + "\n")
    with pytest.raises(DataError, match="share no held-out prompt"):
        sampled_measures((other, aligned), data)


def test_the_eval_step_samples_both_models_on_the_held_out_prompts(config: FlywheelConfig) -> None:
    from dataclasses import replace

    run = Path(config.out)
    evaluate = next(s for s in plan(config) if s.name == "eval")
    sampled = [argv for argv in evaluate.commands if argv[:2] == ["feedback", "generate"]]
    assert len(sampled) == 2 and all(argv[argv.index("-n") + 1] == "4" for argv in sampled)
    assert all(
        argv[argv.index("--prompts") + 1] == str(run / "03-ask" / "heldout-prompts.jsonl") for argv in sampled
    )
    assert "--adapter" not in sampled[0] and sampled[1][sampled[1].index("--adapter") + 1] == str(
        run / "08-dpo" / "adapter"
    )
    measure = evaluate.commands[-1]
    assert measure[measure.index("--samples") + 1 : measure.index("--samples") + 3] == [
        str(run / "10-eval" / "base-samples.jsonl"),
        str(run / "10-eval" / "aligned-samples.jsonl"),
    ]
    off = next(s for s in plan(replace(config, heldout_samples=0)) if s.name == "eval")
    assert not any(argv[:2] == ["feedback", "generate"] for argv in off.commands)
    assert "--samples" not in off.commands[-1]
    with pytest.raises(FlywheelError, match=r"heldout_samples must be 0 .* or at least 2, got 1"):
        replace(config, heldout_samples=1)


def test_adapter_none_uses_the_model_as_is_and_a_bad_adapter_names_the_step(config: FlywheelConfig) -> None:
    from dataclasses import replace

    steps = plan(replace(config, adapter="none"))
    assert [s.name for s in steps][:2] == ["split", "ingest"]
    assert all(argv[argv.index("--model") + 1] == "smollm2-135m-instruct" for s in steps for argv in s.commands
               if "--model" in argv and argv[0] != "reward")  # fmt: skip
    with pytest.raises(FlywheelError, match=r"flywheel step base: --adapter nowhere: .*nowhere"):
        plan(replace(config, adapter="nowhere"))


def test_the_reference_rankers_rules_are_stated_once(config: FlywheelConfig) -> None:
    """The rankers module states each reference ranker's rule in full (EXPLAINED, quoted by the report) and
    its criterion (CRITERIA); the flywheel's rank step passes them on instead of keeping its own copies."""
    from dataclasses import replace

    import llmlab
    from llmlab.rlhf.rankers import CRITERIA, EXPLAINED, PARAMETRIC

    assert set(EXPLAINED) == set(CRITERIA) == {"f1", "reference"} and set(CRITERIA) <= set(PARAMETRIC)
    for name in CRITERIA:
        steps = plan(replace(config, ranker=name))
        rank = next(argv for s in steps for argv in s.commands if argv[:2] == ["feedback", "rank"])
        references = Path(config.out) / "03-ask" / "references.jsonl"
        assert rank[rank.index("--ranker") + 1] == f"{name}:{references}"
        assert rank[rank.index("--criterion") + 1] == CRITERIA[name]
    package = Path(llmlab.__file__).parent
    sources = "\n".join(p.read_text(encoding="utf-8") for p in sorted(package.rglob("*.py")))
    for text in [*(rule[:40] for rule in EXPLAINED.values()), *(f'"{c}"' for c in CRITERIA.values())]:
        assert sources.count(text) == 1, f"{text!r} is written more than once in llmlab/"


def test_the_tutorial_shows_every_command_of_the_default_run() -> None:
    """docs/flywheel.md spells out the steps one command each: every command `make flywheel` runs (the
    defaults, into runs/flywheel) is on the page as it is run, so copying the page runs the same loop."""
    import shlex

    page = (Path(__file__).parents[2] / "docs" / "flywheel.md").read_text(encoding="utf-8")
    shown = {line for line in page.splitlines() if line.startswith("llmlab ")}
    commands = [f"llmlab {shlex.join(argv)}" for step in plan(FlywheelConfig()) for argv in step.commands]
    assert len(commands) == 15
    assert [c for c in commands if c not in shown] == []
