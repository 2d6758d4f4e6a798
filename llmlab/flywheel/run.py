"""The flywheel: documents -> answers -> feedback -> alignment -> evaluation -> serving, in one run folder.

Each step is one `llmlab` command (the same a person would type, see docs/flywheel.md), run in order; a step
writes its artifacts in its own folder (`01-split/`, `02-ingest/`, ...) with the command's output in
`log.txt`, and a `done.json` marker when it finished. Rerunning skips the steps that have a marker, so a run
that stopped continues at the first unfinished step; `redo` removes a step's marker and those of every later
step. Before a step runs, each file it reads is checked (present, and JSON where it should be); a problem is
reported as `flywheel step NAME: what is wrong; how to fix it`, naming the step that writes the file.

Library code: nothing here prints; progress goes to `on_event`, errors are raised as FlywheelError.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmlab.errors import LlmlabError
from llmlab.rlhf.rankers import CRITERIA


class FlywheelError(LlmlabError):
    """A step cannot run or failed; the message names the step and the fix."""


@dataclass(frozen=True)
class FlywheelConfig:
    """Settings of a flywheel run (the CLI flags of `llmlab flywheel run`)."""

    out: str = "runs/flywheel"
    """the run folder: every step writes its artifacts under it"""
    questions: str = "bench/data/qa/guide.jsonl,bench/data/qa/guide-more.jsonl"
    """questions with reference answers, {"id", "question", "answer"} a line: one JSONL file, or several
    separated by commas (in a YAML config also a list); ids must be unique over all of them"""
    documents: str = "docs"
    """the documents to answer from (a folder or file; ingested into the run's store)"""
    heldout: int = 50
    """questions held out for the final evaluation only"""
    train: int = 0
    """questions for feedback, ranking, reward training and DPO (0: all that are not held out)"""
    seed: int = 0
    """seed of the split, the sampling and the training"""
    model: str = "smollm2-135m-instruct"
    """the model that answers and is aligned"""
    adapter: str = "auto"
    """an adapter merged into the model first (step base); the merged model is then the base of every step
    (asked, sampled, aligned, evaluated, served): auto is the packaged grounded-answer adapter that `rag ask`
    uses with the packaged model, none the model as is, or an adapter folder"""
    reward_model: str = "minilm-l6"
    """the body of the reward model"""
    n: int = 8
    """completions sampled per train question"""
    ranker: str = "f1"
    """the scripted ranker: f1 (token F1 against the train questions' reference answers; equal F1 ties),
    reference (contains the reference, then shorter) or a `feedback rank --ranker` name (shortest, ...)"""
    max_pairs: int = 2
    """most preference pairs per train question, those whose ranks differ most (0: every pair); DPO's time
    grows with the pairs (2: the 120 train questions' pairs train in about 20 minutes on 2 busy cores)"""
    temperature: float = 1.0
    """sampling temperature of the completions"""
    heldout_samples: int = 4
    """completions sampled per held-out question from the base and the aligned model (at `temperature`) for
    the sampled measures: their mean token F1 is the policy's expected score under the ranker's rule, what DPO
    optimizes (0: greedy answers only)"""
    max_new_tokens: int = 48
    """most tokens in an answer (sampling, evaluation, serving)"""
    dpo_epochs: int = 1
    """DPO epochs over the pairs"""
    dpo_lr: float = 3e-4
    """DPO learning rate"""
    dpo_beta: float = 0.5
    """DPO beta: how far the aligned model may move from the base (larger stays closer)"""
    rpo_alpha: float = 1.0
    """RPO: the weight of the chosen answers' NLL added to the DPO loss (0: plain DPO, which collapsed the
    answers here)"""
    dpo_seq_len: int = 1024
    """DPO's --seq-len: long enough for the grounded prompts (two passages), so no pair is left out"""
    reward: bool = True
    """train a reward model on the pairs (`llmlab reward train`); the evaluation then also compares its scores"""
    ppo: bool = False
    """also run `llmlab align ppo` against the reward model (the alternative path; not evaluated)"""
    serve: bool = True
    """serve the aligned adapter and ask it one held-out question through the OpenAI client"""

    def __post_init__(self) -> None:
        # a YAML config's list of files is kept as `--questions` gives them: one comma-separated string
        if isinstance(self.questions, (list, tuple)):
            object.__setattr__(self, "questions", ",".join(str(q) for q in self.questions))
        if self.heldout_samples == 1:
            raise FlywheelError("heldout_samples must be 0 (greedy answers only) or at least 2, got 1: one "
                                "sample a question says little of the policy; use 4 (the default) or more")  # fmt: skip


@dataclass(frozen=True)
class Step:
    """One step: the commands it runs (argv after `llmlab`), the files it reads and those it writes."""

    name: str
    folder: str
    commands: list[list[str]]
    reads: dict[str, str] = field(default_factory=dict)  # path -> the step that writes it
    writes: list[str] = field(default_factory=list)


Runner = Callable[[list[str], Path], tuple[int, str]]  # (argv after `llmlab`, log file) -> (status, stderr)


def run_llmlab(argv: list[str], log: Path) -> tuple[int, str]:
    """Run `python -m llmlab ARGV`, its standard output and error appended to `log`; (status, stderr)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    with log.open("a", encoding="utf-8") as out:
        out.write(f"$ llmlab {' '.join(_quote(a) for a in argv)}\n")
        out.flush()
        proc = subprocess.run(
            [sys.executable, "-m", "llmlab", *argv], stdout=out, stderr=subprocess.PIPE, text=True, env=env
        )
        out.write(proc.stderr)
    return proc.returncode, proc.stderr


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


STEP_NAMES = (
    "split", "base", "ingest", "ask", "generate", "rank", "pairs", "reward", "dpo", "ppo", "eval", "serve", "report",
)  # fmt: skip


def base_adapter(config: FlywheelConfig) -> str | None:
    """The adapter the base step merges (`--adapter`; auto: the packaged grounded-answer adapter with the
    packaged model, as `rag ask` does), as a path relative to the working directory when it is under it."""
    from llmlab.rag.adapter import answer_adapter

    try:
        found = answer_adapter(config.adapter, config.model)
    except LlmlabError as error:
        raise FlywheelError(f"flywheel step base: --adapter {config.adapter}: {error}") from None
    if found is None:
        return None
    found = Path(found).absolute()
    return str(found.relative_to(Path.cwd())) if found.is_relative_to(Path.cwd()) else str(found)


def plan(config: FlywheelConfig) -> list[Step]:
    """The steps of a run, in order, with their commands and files (paths relative to the run folder's
    parent's working directory, as the commands are run)."""
    r = Path(config.out)

    def p(*parts: str) -> str:
        return str(r.joinpath(*parts))

    c = config
    seed, tokens = str(c.seed), str(c.max_new_tokens)
    adapter = base_adapter(c)
    model = p("00-base", "model") if adapter else c.model
    steps = [
        Step("split", "01-split", [], {}, [p("01-split", "train.jsonl"), p("01-split", "heldout.jsonl")]),
        *([Step("base", "00-base", [["peft", "merge", adapter, "--model", c.model, "--out", model]], {},
                [p("00-base", "model", "config.json")])] if adapter else []),
        Step("ingest", "02-ingest", [["rag", "ingest", c.documents, "--store", p("02-ingest", "store.sqlite")]],
             {}, [p("02-ingest", "store.sqlite")]),
        Step("ask", "03-ask",
             [["flywheel", "prompts", "--store", p("02-ingest", "store.sqlite"), "--model", model,
               "--train", p("01-split", "train.jsonl"), "--heldout", p("01-split", "heldout.jsonl"),
               "--max-new-tokens", tokens, "--out", p("03-ask")]],
             {p("01-split", "train.jsonl"): "split", p("01-split", "heldout.jsonl"): "split",
              p("02-ingest", "store.sqlite"): "ingest"},
             [p("03-ask", f) for f in ("answers.jsonl", "prompts.jsonl", "references.jsonl", "heldout.jsonl",
                                       "heldout-prompts.jsonl", "task.yaml")]),
        Step("generate", "04-generate",
             [["feedback", "generate", "--model", model, "--prompts", p("03-ask", "prompts.jsonl"), "-n",
               str(c.n), "--temperature", str(c.temperature), "--max-new-tokens", tokens, "--seed", seed,
               "--quiet", "--out", p("04-generate", "completions.jsonl")]],
             {p("03-ask", "prompts.jsonl"): "ask"}, [p("04-generate", "completions.jsonl")]),
        Step("rank", "05-rank",
             [["feedback", "rank", p("04-generate", "completions.jsonl"), "--ranker",
               f"{c.ranker}:" + p("03-ask", "references.jsonl") if c.ranker in CRITERIA else c.ranker,
               "--criterion", CRITERIA.get(c.ranker, c.ranker), "--out", p("05-rank", "ranked.jsonl")]],
             {p("04-generate", "completions.jsonl"): "generate", p("03-ask", "references.jsonl"): "ask"},
             [p("05-rank", "ranked.jsonl")]),
        Step("pairs", "06-pairs", [["feedback", "pairs", p("05-rank", "ranked.jsonl"), "--per-prompt",
                                    str(c.max_pairs), "--out", p("06-pairs", "pairs.jsonl")]],
             {p("05-rank", "ranked.jsonl"): "rank"}, [p("06-pairs", "pairs.jsonl")]),
    ]  # fmt: skip
    rm = p("07-reward", "rm")
    if c.reward or c.ppo:
        steps.append(Step("reward", "07-reward",
             [["reward", "train", "--model", c.reward_model, "--pairs", p("06-pairs", "pairs.jsonl"),
               "--epochs", "2", "--lr", "1e-4", "--seed", seed, "--out", rm]],
             {p("06-pairs", "pairs.jsonl"): "pairs"}, [p("07-reward", "rm", "reward_model.json")]))  # fmt: skip
    steps += [
        Step("dpo", "08-dpo",
             [["align", "dpo", "--model", model, "--pairs", p("06-pairs", "pairs.jsonl"), "--epochs",
               str(c.dpo_epochs), "--lr", str(c.dpo_lr), "--beta", str(c.dpo_beta), "--rpo-alpha",
               str(c.rpo_alpha), "--seq-len", str(c.dpo_seq_len), "--targets", "all-linear", "--seed", seed,
               "--out", p("08-dpo", "adapter")]],
             {p("06-pairs", "pairs.jsonl"): "pairs"}, [p("08-dpo", "adapter", "adapter_config.json")]),
    ]  # fmt: skip
    if c.ppo:
        steps.append(Step("ppo", "09-ppo",
             [["align", "ppo", "--policy", model, "--reward", rm, "--prompts",
               p("03-ask", "prompts.jsonl"), "--iterations", "2", "--rollout-batch", "8", "--batch-size", "8",
               "--max-new-tokens", tokens, "--eval-samples", "1", "--seed", seed, "--out", p("09-ppo", "adapter")]],
             {p("07-reward", "rm", "reward_model.json"): "reward", p("03-ask", "prompts.jsonl"): "ask"},
             [p("09-ppo", "adapter", "adapter_config.json")]))  # fmt: skip
    evaluate = ["eval", "run", "--model", model, "--precision", "fp32", "--task", p("03-ask", "task.yaml"),
                "--data", p("03-ask", "heldout.jsonl"), "--max-new-tokens", tokens]  # fmt: skip
    sample = ["feedback", "generate", "--model", model, "--prompts", p("03-ask", "heldout-prompts.jsonl"), "-n",
              str(c.heldout_samples), "--temperature", str(c.temperature), "--max-new-tokens", tokens, "--seed",
              seed, "--quiet"]  # fmt: skip
    sampled = [p("10-eval", "base-samples.jsonl"), p("10-eval", "aligned-samples.jsonl")]
    steps += [
        Step("eval", "10-eval",
             [[*evaluate, "--name", "base", "--output", p("10-eval", "base.json")],
              [*evaluate, "--adapter", p("08-dpo", "adapter"), "--name", "aligned", "--output",
               p("10-eval", "aligned.json")],
              *([[*sample, "--out", sampled[0]], [*sample, "--adapter", p("08-dpo", "adapter"), "--out", sampled[1]]]
                if c.heldout_samples else []),
              ["eval", "compare", p("10-eval", "base.json"), p("10-eval", "aligned.json"), "--seed", seed],
              ["flywheel", "measure", p("10-eval", "base.json"), p("10-eval", "aligned.json"),
               "--data", p("03-ask", "heldout.jsonl"), *(["--reward-model", rm] if c.reward else []),
               *(["--samples", *sampled] if c.heldout_samples else []), "--seed", seed, "--out",
               p("10-eval", "measures.json")]],
             {p("03-ask", "task.yaml"): "ask", p("03-ask", "heldout.jsonl"): "ask",
              **({p("03-ask", "heldout-prompts.jsonl"): "ask"} if c.heldout_samples else {}),
              p("08-dpo", "adapter", "adapter_config.json"): "dpo",
              **({p("07-reward", "rm", "reward_model.json"): "reward"} if c.reward else {})},
             [p("10-eval", f) for f in ("base.json", "aligned.json", "measures.json")]
             + (sampled if c.heldout_samples else [])),
    ]  # fmt: skip
    if c.serve:
        steps.append(Step("serve", "11-serve",
             [["flywheel", "client", "--model", model, "--adapter", p("08-dpo", "adapter"), "--questions",
               p("03-ask", "heldout.jsonl"), "--max-new-tokens", tokens, "--out", p("11-serve", "reply.json")]],
             {p("08-dpo", "adapter", "adapter_config.json"): "dpo", p("03-ask", "heldout.jsonl"): "ask"},
             [p("11-serve", "reply.json")]))  # fmt: skip
    steps.append(Step("report", "", [], {p("10-eval", "measures.json"): "eval"}, [p("report.md")]))
    if adapter:  # every step that loads the model reads the merged one
        for step in steps[2:]:
            if any(model in argv for argv in step.commands):
                step.reads[p("00-base", "model", "config.json")] = "base"
    return steps


def run_flywheel(
    config: FlywheelConfig,
    *,
    until: str | None = None,
    redo: str | None = None,
    runner: Runner = run_llmlab,
    on_event: Callable[[str], None] = lambda message: None,
) -> Path:
    """Run the steps in order, skipping finished ones; returns the run folder. See the module docstring.

    Raises:
        FlywheelError: a step's input is missing or malformed, a command failed, or the run folder was made
            with other settings; the message names the step and what to fix.
    """
    steps = plan(config)
    names = [s.name for s in steps]
    for flag, value in (("--until", until), ("--redo", redo)):
        if value is not None and value not in names:
            raise FlywheelError(f"{flag} must be one of {', '.join(names)}, got {value!r}")
    run = Path(config.out)
    _check_settings(run, config)
    if redo is not None:
        for step in steps[names.index(redo) :]:
            _marker(run, step).unlink(missing_ok=True)
    for step in steps:
        marker = _marker(run, step)
        if marker.is_file():
            on_event(f"{step.name}: done before, skipped ({marker})")
        else:
            start = time.perf_counter()
            _run_step(step, config, runner, on_event)
            seconds = time.perf_counter() - start
            _invalidate_later(run, steps, step)
            record = {"step": step.name, "seconds": round(seconds, 1), "commands": step.commands,
                      "reads": sorted(step.reads), "writes": step.writes}  # fmt: skip
            _write_json(marker, record)
            if not (
                run / "settings.json"
            ).is_file():  # written once a step finished: a failed start binds nothing
                _write_json(run / "settings.json", asdict(config))
            on_event(f"{step.name}: done in {seconds:.1f} s")
        if step.name == until:
            break
    return run


def _marker(run: Path, step: Step) -> Path:
    return run / step.folder / "done.json" if step.folder else run / "report.done.json"


def _invalidate_later(run: Path, steps: list[Step], step: Step) -> None:
    """A step that ran again makes the later steps' results stale: their markers go."""
    for later in steps[steps.index(step) + 1 :]:
        _marker(run, later).unlink(missing_ok=True)


def _check_settings(run: Path, config: FlywheelConfig) -> None:
    """The run folder remembers its settings; resuming it with others would mix two runs."""
    path = run / "settings.json"
    settings = asdict(config)
    if path.is_file():
        saved = json.loads(path.read_text(encoding="utf-8"))
        changed = [f"{k} {saved.get(k)!r} -> {v!r}" for k, v in settings.items() if saved.get(k) != v]
        if changed:
            raise FlywheelError(f"flywheel: {run} was made with other settings ({'; '.join(changed)}); "
                                "give another --out for a new run, or the same settings to resume it")  # fmt: skip


def _run_step(step: Step, config: FlywheelConfig, runner: Runner, on_event: Callable[[str], None]) -> None:
    for path, writer in step.reads.items():
        check_input(step.name, Path(path), writer)
    run = Path(config.out)
    folder = run / step.folder
    folder.mkdir(parents=True, exist_ok=True)
    if step.name == "split":
        _split(config, folder)
    elif step.name == "report":
        from llmlab.flywheel.report import write_report

        write_report(config, plan(config))
    log = folder / "log.txt"
    for argv in step.commands:
        on_event(f"{step.name}: llmlab {' '.join(_quote(a) for a in argv)}")
        status, stderr = runner(argv, log)
        if status != 0:
            errors = [line for line in stderr.splitlines() if line.startswith("error:")]
            said = errors[-1] if errors else (stderr.strip().splitlines() or ["(no message)"])[-1]
            raise FlywheelError(f"flywheel step {step.name}: `llmlab {argv[0]} {argv[1]}` failed (exit {status}): "
                                f"{said}; the full output is in {log}. Fix it and rerun: finished steps are "
                                "skipped")  # fmt: skip
    for path in step.writes:
        if not Path(path).exists():
            raise FlywheelError(f"flywheel step {step.name}: the commands succeeded but {path} was not written; "
                                f"see {log}")  # fmt: skip


def check_input(step: str, path: Path, writer: str) -> None:
    """A file a step reads exists and, for JSON and JSONL, parses; else a FlywheelError naming both steps."""
    fix = f"rerun with --redo {writer} to write it again"
    if not path.exists():
        raise FlywheelError(
            f"flywheel step {step}: its input {path} is missing (step {writer} writes it); {fix}"
        )
    if path.suffix == ".jsonl":
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                _parse(step, f"{path}:{number}", line, fix)
    elif path.suffix == ".json":
        _parse(step, str(path), path.read_text(encoding="utf-8"), fix)


def _parse(step: str, where: str, text: str, fix: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FlywheelError(f"flywheel step {step}: {where}: not JSON ({error.msg}); {fix}") from None


def _split(config: FlywheelConfig, folder: Path) -> None:
    from llmlab.errors import DataError
    from llmlab.flywheel.questions import read_questions, split_questions, write_jsonl

    try:
        train, heldout = split_questions(read_questions(config.questions), config.heldout, config.train,
                                         config.seed)  # fmt: skip
    except DataError as error:
        raise FlywheelError(f"flywheel step split: {error}") from None
    for name, chosen in (("train", train), ("heldout", heldout)):
        write_jsonl(folder / f"{name}.jsonl", [{"id": q.id, "question": q.question, "answer": list(q.answers)}
                                               for q in chosen])  # fmt: skip


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
