"""``selfheal eval --shard K/N`` and ``selfheal eval merge``: four shards merge into the unsharded report."""

from __future__ import annotations

import json
import shutil
import uuid
import zlib
from pathlib import Path
from typing import Any

import git
import pytest
from helpers.eval_fixtures import AgentScript, make_repo, model_factory
from helpers.eval_results import T0

from selfheal.cli.main import main
from selfheal.config import load_settings
from selfheal.errors import SelfhealError
from selfheal.evaluation import runner as eval_runner
from selfheal.evaluation.evaluate import evaluate, judge_results
from selfheal.evaluation.gate import GateConfig
from selfheal.evaluation.results import ExampleResult, ExperimentResult
from selfheal.evaluation.shard import ShardResult, merge_shards, select_shard, shard_positions

REPO = Path(__file__).resolve().parents[1]
# name -> (baseline, candidate) outcome letters: P pass, F fail, E error, M cache miss
OUTCOMES = {f"ex-{i:02d}": ("P", "P") for i in range(10)}
OUTCOMES.update({"ex-02": ("P", "F"), "ex-05": ("F", "P"), "ex-07": ("P", "E"), "ex-09": ("P", "F")})


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "agent"
    root.mkdir()
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "selfheal.yaml", root / "selfheal.yaml")
    (root / ".gitignore").write_text(".selfheal/\n*.json\n")
    ds = root / "evals/lambda_ops"
    (ds / "examples").mkdir(parents=True)
    (ds / "dataset.yaml").write_text("name: lambda_ops\nagent: lambda_ops\n")
    for i, name in enumerate(OUTCOMES):
        (ds / f"examples/{name}.yaml").write_text(
            f"name: {name}\ntask: fix {name}\ntask_type: t{i % 3}\nsplit: test\n")
    r = git.Repo.init(root, initial_branch="main")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Test")
        cw.set_value("user", "email", "test@example.com")
    r.git.add("-A")
    r.index.commit("initial")
    r.close()
    return root


@pytest.fixture()
def fake(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_experiment replaced by a deterministic one: outcome, tokens and latency fixed per example."""

    def run(settings: Any, dataset: Any, *, split: str = "test", names: list[str] | None = None,
            git_ref: str | None = None, **_: Any) -> ExperimentResult:
        side = 0 if git_ref is not None else 1
        results = []
        for ex in dataset.select(split, names):
            letter = OUTCOMES[ex.name][side]
            seed = zlib.crc32(f"{ex.name}{side}".encode())
            results.append(ExampleResult(
                example_id=ex.id, name=ex.name, split=ex.split, task_type=ex.task_type, passed=letter == "P",
                score=1.0 if letter == "P" else 0.25, status="error" if letter == "E" else "ok",
                total_tokens=1000 + seed % 500, latency_s=1 + (seed % 100) / 10))
        return ExperimentResult(
            experiment_id=str(uuid.uuid4()), name=f"{dataset.name}-{split}-{side}", dataset=dataset.name,
            dataset_hash=dataset.hash, split=split, model="scripted:fake", context_version="c" * 40,
            cheatsheet_version="s" * 40, git_ref=git_ref, cache_mode=settings.model.cache_mode,
            started_at=T0, finished_at=T0, results=results)

    monkeypatch.setattr(eval_runner, "run_experiment", run)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _body(md: str) -> str:
    """The report without its provenance (experiment ids and names differ between runs by design)."""
    return md.split("### Provenance")[0]


def test_four_shards_merge_into_the_unsharded_report_and_gate(
    repo: Path, fake: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, whole_md, _ = cli(["-C", str(repo), "eval", "--against", "HEAD", "--format", "md"], capsys)
    assert code == 0
    _, whole_json, _ = cli(["-C", str(repo), "eval", "--against", "HEAD", "--json"], capsys)
    code, _, err = cli(["-C", str(repo), "eval", "--against", "HEAD", "--gate", "--format", "md"], capsys)
    assert code == 1
    whole_reasons = [line for line in err.splitlines() if line.startswith("gate failed:")]

    files = []
    for k in range(1, 5):
        path = tmp_path / f"shard-{k}.json"
        code, out, err = cli(["-C", str(repo), "eval", "--against", "HEAD", "--shard", f"{k}/4",
                              "--results", str(path), "--format", "md"], capsys)
        assert code == 0 and path.is_file() and f"shard {k}/4" in err
        shard = ShardResult.model_validate_json(path.read_text())
        assert shard.positions == shard_positions(10, k, 4) and len(shard.candidate.results) == len(shard.positions)
        files.append(str(path))
    sizes = [len(ShardResult.model_validate_json(Path(f).read_text()).positions) for f in files]
    assert sizes == [3, 3, 2, 2]

    code, merged_md, _ = cli(["-C", str(repo), "eval", "merge", *reversed(files), "--format", "md"], capsys)
    assert code == 0
    assert _body(merged_md) == _body(whole_md)
    _, merged_json, _ = cli(["-C", str(repo), "eval", "merge", *files, "--json"], capsys)
    a, b = json.loads(merged_json)["comparison"], json.loads(whole_json)["comparison"]
    for side in ("baseline", "candidate"):
        a.pop(side), b.pop(side)
    assert a == b

    code, _, err = cli(["-C", str(repo), "eval", "merge", *files, "--gate", "--format", "md"], capsys)
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("gate failed:")] == whole_reasons

    # the baseline from elsewhere (e.g. main's merged shards): --against-results
    code, _, err = cli(["-C", str(repo), "eval", "merge", *files, "--against-results", files[0], "--gate"], capsys)
    assert code == 2 and "cannot merge 1 file(s) of a 4-shard run: missing shard(s) 2, 3, 4" in err
    code, out, _ = cli(["-C", str(repo), "eval", "merge", *files, *[x for f in files for x in ("--against-results", f)],
                        "--format", "md"], capsys)
    assert code == 0 and "No example changed outcome." in out  # the candidate against its own results


def test_merge_refuses_incomplete_or_mixed_shards(tmp_path: Path, repo: Path, fake: None,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for k in (1, 2):
        p = tmp_path / f"s{k}.json"
        cli(["-C", str(repo), "eval", "--shard", f"{k}/2", "--results", str(p), "--format", "md"], capsys)
        paths.append(str(p))
    code, _, err = cli(["-C", str(repo), "eval", "merge", paths[0], paths[0], "--format", "md"], capsys)
    assert code == 2 and "shard(s) 1 given twice" in err and "missing shard(s) 2" in err
    code, _, err = cli(["-C", str(repo), "eval", "merge", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "cannot read" in err
    (tmp_path / "bad.json").write_text("{}")
    code, _, err = cli(["-C", str(repo), "eval", "merge", str(tmp_path / "bad.json")], capsys)
    assert code == 2 and "not a shard or experiment result" in err
    with pytest.raises(SelfhealError, match="no shard files"):
        merge_shards([])


def test_shards_partition_the_examples_deterministically() -> None:
    items = list(range(11))
    parts = [select_shard(items, k, 4) for k in range(1, 5)]
    assert sorted(x for p in parts for x in p) == items
    assert parts == [select_shard(items, k, 4) for k in range(1, 5)]
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


SPLITS = {"lambda_timeout": "test", "lambda_memory": "test", "lambda_cost": "test", "lambda_errors": "test",
          "lambda_throttling": "test"}


def test_sharded_real_runs_merge_to_the_unsharded_verdicts(tmp_path: Path) -> None:
    """The real runner and the scripted agent: merged shards give the same verdicts and statistics."""
    root = make_repo(tmp_path, SPLITS)
    settings = load_settings(root, env={})
    script = AgentScript({"lambda_memory": "wrong", "lambda_cost": "permanent"})
    kw: dict[str, Any] = {"model_factory": model_factory(script), "progress": False, "save": False, "retries": 0}
    whole = evaluate(settings, gate=GateConfig(), **kw)
    shards = []
    for k in range(1, 5):
        out = evaluate(settings, shard=(k, 4), **kw)
        shards.append(ShardResult(shard=k, shards=4, total=out.total, positions=out.positions or [],
                                  candidate=out.candidate))
    candidate, baseline = merge_shards(shards)
    assert baseline is None
    merged = judge_results(candidate, None, GateConfig())
    key = [(r.example_id, r.passed, r.status, r.score, r.steps) for r in whole.candidate.results]
    assert [(r.example_id, r.passed, r.status, r.score, r.steps) for r in candidate.results] == key
    assert merged.decision == whole.decision and not merged.decision.passed
