"""An example without a verdict never passes: errors, timeouts and cache misses in every report and the gate;
configuration errors stop ``selfheal eval`` with one line and exit 2."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import git
import pytest
from helpers.eval_fixtures import AgentScript, make_repo, model_factory
from helpers.eval_results import T0

from selfheal.cli.main import main
from selfheal.config import load_settings
from selfheal.errors import CacheMissError, ConfigError, SelfhealError
from selfheal.evaluation import runner as eval_runner
from selfheal.evaluation.evaluate import evaluate
from selfheal.evaluation.results import ExampleResult, ExperimentResult
from selfheal.models.cache import CachedChatModel

REPO = Path(__file__).resolve().parents[1]
NAMES = ["timeout-a", "timeout-b", "oom-a", "oom-b"]
STATUS = {"P": ("ok", True), "F": ("ok", False), "E": ("error", False), "T": ("timeout", False),
          "M": ("cache_miss", False)}


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "agent"
    root.mkdir()
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    (root / ".gitignore").write_text(".selfheal/\n")
    ds = root / "evals/lambda_ops"
    (ds / "examples").mkdir(parents=True)
    (ds / "dataset.yaml").write_text("name: lambda_ops\nagent: lambda_ops\n")
    for name in NAMES:
        (ds / f"examples/{name}.yaml").write_text(f"name: {name}\ntask: fix {name}\ntask_type: t\nsplit: test\n")
    r = git.Repo.init(root, initial_branch="main")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Test")
        cw.set_value("user", "email", "test@example.com")
    r.git.add("-A")
    r.index.commit("initial")
    r.close()
    return root


def fake(monkeypatch: pytest.MonkeyPatch, baseline: str, candidate: str) -> None:
    """run_experiment replaced: one letter per example, P/F pass/fail, E error, T timeout, M cache miss."""

    def run(settings: Any, dataset: Any, *, split: str = "test", names: list[str] | None = None,
            git_ref: str | None = None, **_: Any) -> ExperimentResult:
        pattern = candidate if git_ref is None else baseline
        results = []
        for ex, letter in zip(dataset.select(split, names), pattern, strict=False):
            status, passed = STATUS[letter]
            results.append(ExampleResult(example_id=ex.id, name=ex.name, split=ex.split, task_type=ex.task_type,
                                         passed=passed, score=float(passed), status=status,
                                         error=None if status == "ok" else f"{status} here"))
        return ExperimentResult(experiment_id=str(uuid.uuid4()), name="x", dataset=dataset.name,
                                dataset_hash=dataset.hash, split=split, model="scripted:fake", context_version="c",
                                cheatsheet_version="s", git_ref=git_ref, started_at=T0, finished_at=T0,
                                results=results)

    monkeypatch.setattr(eval_runner, "run_experiment", run)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_errors_timeouts_and_misses_are_their_own_outcome_in_every_format(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake(monkeypatch, "PPPP", "PETM")
    code, md, _ = cli(["-C", str(repo), "eval", "--against", "HEAD", "--format", "md"], capsys)
    assert code == 0  # not gated
    assert "| errors / timeouts / cache misses | 0 / 0 / 0 | 1 / 1 / 1 |" in md
    assert "| pass | cache miss |" in md and "| pass | timeout |" in md and "| pass | error |" in md
    code, table, _ = cli(["-C", str(repo), "eval", "--against", "HEAD", "--format", "table"], capsys)
    assert "errors / timeouts" in table and "1 / 1 / 1" in table and "0 / 0 / 0" in table
    code, out, _ = cli(["-C", str(repo), "eval", "--against", "HEAD", "--json"], capsys)
    c = json.loads(out)["comparison"]
    assert (c["candidate_errors"], c["candidate_timeouts"], c["candidate_cache_misses"]) == (1, 1, 1)
    assert c["overall"]["candidate"]["cache_misses"] == 1
    assert [e["candidate_status"] for e in c["examples"]] == ["ok", "error", "timeout", "cache_miss"]
    # a single run too
    code, out, _ = cli(["-C", str(repo), "eval", "--json"], capsys)
    assert json.loads(out)["summary"]["overall"]["cache_misses"] == 1


def test_gate_fails_on_examples_without_a_verdict_one_reason_per_line(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake(monkeypatch, "PPPM", "PPPM")  # no drop at all, but one miss on each side
    code, out, err = cli(["-C", str(repo), "eval", "--against", "HEAD", "--gate", "--format", "md"], capsys)
    assert code == 1 and "Verdict: ❌ failed" in out
    lines = err.strip().splitlines()
    assert lines == [
        "gate failed: 1 example(s) on the baseline side produced no verdict (errored, timed out or missed the"
        " cache), more than the 0 allowed (eval.max_errors)",
        "gate failed: 1 example(s) on the candidate side produced no verdict (errored, timed out or missed the"
        " cache), more than the 0 allowed (eval.max_errors)",
    ]
    monkeypatch.setenv("SELFHEAL_EVAL_MAX_ERRORS", "1")
    code, _, err = cli(["-C", str(repo), "eval", "--against", "HEAD", "--gate", "--format", "md"], capsys)
    assert code == 0, err


def test_every_example_errored_fails_the_gate_even_without_a_baseline(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake(monkeypatch, "", "MMMM")
    code, out, err = cli(["-C", str(repo), "eval", "--gate", "--format", "md", "--cache", "replay"], capsys)
    assert code == 1 and "✅" not in out
    assert "gate failed: no example produced a verdict, so there is nothing to gate on" in err.splitlines()
    fake(monkeypatch, "EEEE", "EEEE")
    code, _, err = cli(["-C", str(repo), "eval", "--against", "HEAD", "--gate", "--format", "md"], capsys)
    assert code == 1
    assert "gate failed: no example produced a verdict on both sides, so nothing could be compared" in err


def test_configuration_errors_exit_2_with_one_line(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    fake(monkeypatch, "PPPP", "PPPP")
    cases: list[tuple[list[str], str]] = [
        (["--agent", "nope", "eval"], "nope"),
        (["eval", "--against", "no-such-ref"], "unknown git ref 'no-such-ref'"),
        (["eval", "--cache", "bogus"], "bogus"),
        (["eval", "--shard", "5/4"], "K must be between 1 and N"),
        (["eval", "--shard", "1/4", "--gate"], "--gate judges the whole dataset"),
    ]
    for args, needle in cases:
        code, out, err = cli(["-C", str(repo), *args], capsys)
        assert code == 2 and needle in err and "Traceback" not in err, (args, err)
        assert out == "", args
    monkeypatch.setenv("SELFHEAL_MODEL_CACHE_MODE", "bogus")
    code, out, err = cli(["-C", str(repo), "eval"], capsys)
    assert code == 2 and "SELFHEAL_MODEL_CACHE_MODE" in err and len(err.strip().splitlines()) == 1
    monkeypatch.delenv("SELFHEAL_MODEL_CACHE_MODE")
    (repo / "evals/lambda_ops/dataset.yaml").write_text("name: lambda_ops\nagent: [unclosed\n")
    code, out, err = cli(["-C", str(repo), "eval"], capsys)
    assert code == 2 and "dataset.yaml" in err and len(err.strip().splitlines()) == 1
    (repo / "evals/lambda_ops/dataset.yaml").unlink()
    code, out, err = cli(["-C", str(repo), "eval"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


# -- the real runner ---------------------------------------------------------------
SPLITS = {"lambda_timeout": "test", "lambda_memory": "test", "lambda_cost": "test"}


def test_a_configuration_error_inside_the_examples_stops_the_eval(tmp_path: Path) -> None:
    """A model that cannot be built is not N failed examples: one line, exit 2."""
    root = make_repo(tmp_path, SPLITS)
    settings = load_settings(root, env={})

    def broken() -> Any:
        raise ConfigError("model.name: no model named 'gpt-nope' at this endpoint")

    with pytest.raises(SelfhealError) as info:
        evaluate(settings, model_factory=broken, progress=False, save=False)
    assert info.value.exit_code == 2 and "gpt-nope" in info.value.message
    # and a broken prompt template (a file error met while running the first example)
    tpl = next((root / "prompts/lambda_ops").glob("*.j2"))
    tpl.write_text("{{ unclosed ")
    with pytest.raises(SelfhealError) as info:
        evaluate(settings, model_factory=model_factory(AgentScript()), progress=False, save=False)
    assert info.value.exit_code == 2 and tpl.name in info.value.message


def test_a_replay_miss_is_a_cache_miss_not_an_error(tmp_path: Path) -> None:
    root = make_repo(tmp_path, SPLITS)
    settings = load_settings(root, env={})
    script = AgentScript()

    def replaying() -> CachedChatModel:
        return CachedChatModel.wrap(model_factory(script)(), identity="scripted:x", mode="replay",
                                    cache_dir=tmp_path / "empty")

    out = evaluate(settings, model_factory=replaying, progress=False, save=False)
    assert [r.status for r in out.candidate.results] == ["cache_miss"] * 3
    assert all(not r.passed and "no recorded response" in (r.error or "") for r in out.candidate.results)
    assert issubclass(CacheMissError, SelfhealError)
