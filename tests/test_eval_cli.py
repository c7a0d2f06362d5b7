"""``selfheal eval`` as a user meets it: reports, the --against comparison, the gate's exit codes."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
import types
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import git
import pytest
from helpers.cli import run_cli
from helpers.eval_results import T0

from selfheal.evaluation.results import ExampleResult, ExperimentResult

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {  # name -> task type
    "timeout-a": "lambda_timeout",
    "timeout-b": "lambda_timeout",
    "oom-a": "lambda_memory",
    "oom-b": "lambda_memory",
}


def _write(root: Path, rel: str, text: str) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_text(text)


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A committed selfheal repository with a 4-example dataset and an uncommitted cheatsheet edit."""
    root = tmp_path / "agent"
    root.mkdir()
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    _write(root, ".gitignore", ".selfheal/\n")
    _write(root, "evals/lambda_ops/dataset.yaml", "name: lambda_ops\nagent: lambda_ops\n")
    for name, task_type in EXAMPLES.items():
        _write(root, f"evals/lambda_ops/examples/{name}.yaml",
               f"name: {name}\ntask: fix {name}\ntask_type: {task_type}\nsplit: test\n")
    r = git.Repo.init(root, initial_branch="main")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Test")
        cw.set_value("user", "email", "test@example.com")
    r.git.add("-A")
    r.index.commit("initial")
    _write(root, "cheatsheet/heuristics/heur-timeout-low-memory.yaml",
           (root / "cheatsheet/heuristics/heur-timeout-low-memory.yaml").read_text() + "# edited\n")
    return root


class FakeRunner:
    """Stands in for run_experiment: outcomes per side, and what each side was given."""

    def __init__(self, baseline: str, candidate: str) -> None:
        self.patterns = {"baseline": baseline, "candidate": candidate}
        self.calls: list[dict[str, Any]] = []

    def __call__(self, settings: Any, dataset: Any, *, split: str = "test", names: list[str] | None = None,
                 git_ref: str | None = None, **kw: Any) -> ExperimentResult:
        side = "candidate" if git_ref is None else "baseline"
        heur = settings.cheatsheet_dir / "heuristics/heur-timeout-low-memory.yaml"
        self.calls.append({"side": side, "settings": settings, "names": names, "split": split, "kw": kw,
                           "edited": "# edited" in heur.read_text(), "cheatsheet_dir": settings.cheatsheet_dir})
        pattern = self.patterns[side]
        chosen = dataset.select(split, names)
        results = [
            ExampleResult(example_id=ex.id, name=ex.name, split=ex.split, task_type=ex.task_type,
                          passed=pattern[i] == "P", score=1.0 if pattern[i] == "P" else 0.0,
                          run_id=None, total_tokens=1000, latency_s=1.0)
            for i, ex in enumerate(chosen)
        ]
        return ExperimentResult(
            experiment_id=str(uuid.uuid4()), name=f"{dataset.name}-{split}-{side}", dataset=dataset.name,
            dataset_hash=dataset.hash, split=split, model="scripted:fake", context_version="ctx",
            cheatsheet_version="cs", git_ref=git_ref, cache_mode=settings.model.cache_mode,
            started_at=T0, finished_at=T0, results=results,
        )


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> Callable[[str, str], FakeRunner]:
    try:
        runner = importlib.import_module("selfheal.evaluation.runner")
    except ImportError:  # the evaluation core is not there yet: a stand-in module
        runner = types.ModuleType("selfheal.evaluation.runner")
        monkeypatch.setitem(sys.modules, "selfheal.evaluation.runner", runner)
        import selfheal.evaluation as pkg

        monkeypatch.setattr(pkg, "runner", runner, raising=False)

    def make(baseline: str, candidate: str) -> FakeRunner:
        f = FakeRunner(baseline, candidate)
        monkeypatch.setattr(runner, "run_experiment", f, raising=False)
        return f

    return make


def test_against_head_gate_fails_on_a_regression(repo: Path, fake: Callable[[str, str], FakeRunner],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    r = git.Repo(repo)
    status_before = r.git.status("--porcelain")
    runner = fake("PPPF", "PFPF")  # 75% -> 50%
    code, out, err = run_cli(["-C", str(repo), "eval", "--against", "HEAD", "--gate", "--format", "md"], capsys)
    assert code == 1
    assert out.startswith("<!-- selfheal-eval -->")
    assert "| oom-b | lambda_memory | pass → fail |" in out
    lines = err.strip().splitlines()
    assert lines[-1] == (
        "gate failed: success rate fell 25 points (75.0% -> 50.0%), more than the 5-point margin"
    )
    # The baseline read HEAD's cheatsheet from a worktree; the candidate the edited working tree.
    base, cand = (next(c for c in runner.calls if c["side"] == s) for s in ("baseline", "candidate"))
    assert not base["edited"] and cand["edited"]
    assert not str(base["cheatsheet_dir"]).startswith(str(repo))
    assert not base["cheatsheet_dir"].exists()  # the worktree is gone
    # ... while trace store, state and response cache stay the user's.
    for attr in ("trace_store_path", "state_dir", "response_cache_dir"):
        assert getattr(base["settings"], attr) == getattr(cand["settings"], attr).resolve()
    assert base["settings"].scenarios_dir == (repo / "evals/lambda_ops/scenarios").resolve()
    # Versions are the ref's git ids; the candidate's cheatsheet is dirty.
    assert f"`{r.git.rev_parse('HEAD:cheatsheet')[:12]}`" in out
    assert f"`{r.git.rev_parse('HEAD:prompts/lambda_ops')[:12]}`" in out
    assert "-dirty`" in out
    assert f"HEAD @ {r.head.commit.hexsha[:12]}" in out
    assert r.git.status("--porcelain") == status_before
    assert len(r.git.worktree("list", "--porcelain").split("\n\n")) == 1


def test_against_head_passes_and_both_experiments_are_stored(
    repo: Path, fake: Callable[[str, str], FakeRunner], capsys: pytest.CaptureFixture[str]
) -> None:
    fake("PPPF", "PPPP")
    code, out, err = run_cli(["-C", str(repo), "eval", "--against", "main", "--gate", "--format", "json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["verdict"] == "pass"
    comp = data["comparison"]
    assert comp["overall"]["fail_to_pass"] == 1 and comp["baseline"]["git_ref"] == "main"

    from selfheal.config import load_settings
    from selfheal.evaluation.experiments import load_experiment
    from selfheal.tracing.store import LocalTraceStore

    with LocalTraceStore.from_settings(load_settings(repo, env={})) as store:
        base = load_experiment(store, comp["baseline"]["experiment_id"])
        cand = load_experiment(store, comp["candidate"]["experiment_id"])
    assert base.git_ref == "main" and base.extra["git_commit"] == git.Repo(repo).head.commit.hexsha
    assert cand.git_ref is None and cand.cheatsheet_version.endswith("-dirty")


def test_margin_option_loosens_the_gate(repo: Path, fake: Callable[[str, str], FakeRunner],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    fake("PPPF", "PFPF")
    code, _, err = run_cli(["-C", str(repo), "eval", "--against", "HEAD", "--gate", "--margin", "0.3",
                            "--format", "md"], capsys)
    assert code == 0, err
    assert "gate failed" not in err


def test_without_gate_a_regression_still_exits_0(repo: Path, fake: Callable[[str, str], FakeRunner],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fake("PPPP", "FFFF")
    code, out, _ = run_cli(["-C", str(repo), "eval", "--against", "HEAD", "--format", "md"], capsys)
    assert code == 0 and "**Verdict: not gated**" in out


def test_single_run_report_filters_and_cache_override(repo: Path, fake: Callable[[str, str], FakeRunner],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    runner = fake("", "PF")
    code, out, err = run_cli(["-C", str(repo), "eval", "--task-type", "lambda_memory", "--cache", "replay",
                              "--gate", "--format", "md", "-j", "2", "--timeout", "30"], capsys)
    assert code == 0, err
    (call,) = runner.calls
    assert call["names"] == ["oom-a", "oom-b"] and call["settings"].model.cache_mode == "replay"
    assert call["kw"]["jobs"] == 2 and call["kw"]["timeout_s"] == 30
    assert "| success rate | 50.0% (1/2) |" in out and "nothing to gate on" in out


def test_output_file_is_written_instead_of_stdout(repo: Path, fake: Callable[[str, str], FakeRunner],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    fake("PP", "PF")
    report = repo / "out" / "eval.json"
    code, out, err = run_cli(["-C", str(repo), "eval", "--against", "HEAD", "--example", "timeout-a",
                              "--example", "oom-a", "--format", "json", "--output", str(report)], capsys)
    assert code == 0, err
    assert out.strip() == f"wrote the json report to {report}"
    data = json.loads(report.read_text())
    assert [e["name"] for e in data["comparison"]["examples"]] == ["oom-a", "timeout-a"]
    assert not list(report.parent.glob(".*.tmp"))


def test_user_errors_exit_2_with_one_line(repo: Path, fake: Callable[[str, str], FakeRunner],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    fake("PPPP", "PPPP")
    code, out, err = run_cli(["-C", str(repo), "eval", "--against", "no-such-ref"], capsys)
    assert code == 2 and err.strip() == "error: unknown git ref 'no-such-ref'"
    code, _, err = run_cli(["-C", str(repo), "eval", "--example", "nope"], capsys)
    assert code == 2 and "no example 'nope'" in err
    code, _, err = run_cli(["-C", str(repo), "eval", "--dataset", "missing"], capsys)
    assert code == 2 and "unknown dataset 'missing'" in err
    code, _, err = run_cli(["-C", str(repo), "eval", "--split", "train"], capsys)
    assert code == 2 and "no example for split 'train'" in err


# -- end to end: the real runner, scripted model, a temporary git repository ------------------
BAD_RULE = "Raise the timeout, not the memory."


def _follows_the_cheatsheet(messages: list[Any]) -> Any:
    """A scripted agent that does what the retrieved cheatsheet says (so a bad edit shows)."""
    from langchain_core.messages import AIMessage, ToolMessage

    text = "\n".join(str(m.content) for m in messages)
    done = [m for m in messages if isinstance(m, ToolMessage)]
    if done:
        return AIMessage(content="Fixed it.\nUSED: none")
    if "checkout-api" in text:
        fn, tool, args = "checkout-api", "update_timeout", {"timeout_s": 10}
    elif BAD_RULE in text:
        fn, tool, args = "image-resizer", "update_timeout", {"timeout_s": 60}
    else:
        fn, tool, args = "image-resizer", "update_memory", {"memory_mb": 1024}
    return AIMessage(content="", tool_calls=[{"name": tool, "args": {"function_name": fn, **args}, "id": "c1"}])


@pytest.mark.timeout(60)
def test_end_to_end_against_head_with_the_real_runner(tmp_path: Path) -> None:
    """A bad cheatsheet edit in the working tree fails the gate against HEAD (real runner, moto, git)."""
    from selfheal.config import load_settings
    from selfheal.evaluation.evaluate import evaluate
    from selfheal.evaluation.gate import GateConfig
    from selfheal.evaluation.report import to_markdown
    from selfheal.models.fakes import ScriptedChatModel

    root = tmp_path / "agent"
    root.mkdir()
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    (root / "evals/lambda_ops/scenarios").mkdir(parents=True)
    shutil.copy(REPO / "evals/lambda_ops/dataset.yaml", root / "evals/lambda_ops/dataset.yaml")
    for scenario in ("lambda_timeout", "lambda_memory"):
        shutil.copy(REPO / f"evals/lambda_ops/scenarios/{scenario}.yaml", root / "evals/lambda_ops/scenarios")
    _write(root, ".gitignore", ".selfheal/\n")
    r = git.Repo.init(root, initial_branch="main")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Test")
        cw.set_value("user", "email", "test@example.com")
    r.git.add("-A")
    r.index.commit("initial")
    heur = root / "cheatsheet/heuristics/heur-oom-raise-memory.yaml"
    heur.write_text(heur.read_text().replace("Raise memory 1.5-2x, not the timeout.", BAD_RULE))
    status = r.git.status("--porcelain")

    settings = load_settings(root, env={})
    outcome = evaluate(
        settings, split="all", against="HEAD", gate=GateConfig(), progress=False,
        model_factory=lambda: ScriptedChatModel([_follows_the_cheatsheet], repeat=True),
    )
    assert outcome.baseline is not None and outcome.comparison is not None and outcome.decision is not None
    assert outcome.baseline.success_rate == 1.0, [(x.name, x.error, x.scores) for x in outcome.baseline.results]
    assert outcome.candidate.success_rate == 0.5
    assert [f.name for f in outcome.comparison.pass_to_fail] == ["lambda_memory"]
    assert not outcome.decision.passed
    assert "success rate fell 50 points (100.0% -> 50.0%)" in outcome.decision.reasons[-1]
    assert outcome.baseline.cheatsheet_version == r.git.rev_parse("HEAD:cheatsheet")
    assert outcome.candidate.cheatsheet_version.endswith("-dirty")
    assert outcome.baseline.context_version == outcome.candidate.context_version == r.git.rev_parse(
        "HEAD:prompts/lambda_ops")
    md = to_markdown(comparison=outcome.comparison, decision=outcome.decision)
    assert "| lambda_memory | lambda_memory | pass → fail |" in md
    # Both experiments stored, the user's checkout untouched, no worktree left behind.
    from selfheal.evaluation.experiments import list_experiments
    from selfheal.tracing.store import LocalTraceStore

    with LocalTraceStore.from_settings(settings) as store:
        stored = {e.experiment_id: e for e in list_experiments(store)}
    assert set(stored) == {outcome.baseline.experiment_id, outcome.candidate.experiment_id}
    assert stored[outcome.baseline.experiment_id].extra["git_commit"] == r.head.commit.hexsha
    assert r.git.status("--porcelain") == status
    assert len(r.git.worktree("list", "--porcelain").split("\n\n")) == 1
