"""Replay that can judge a change: the dataset's named cache, its manifest, refusal, auto, cache status/prune."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import git
import pytest
from helpers.eval_fixtures import AgentScript, agent_model, make_repo

from selfheal.cli.main import main
from selfheal.config import load_settings
from selfheal.errors import SelfhealError
from selfheal.evaluation.evaluate import evaluate
from selfheal.models import providers
from selfheal.models.cache_manifest import (
    CacheManifest,
    Coverage,
    load_manifest,
    prune_cache,
    same_content,
    save_manifest,
)

SPLITS = {"lambda_timeout": "test", "lambda_memory": "test"}


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    (tmp_path / "agent").mkdir()
    root = make_repo(tmp_path / "agent", SPLITS)
    (root / ".gitignore").write_text(".selfheal/\n")
    (root / "evals/lambda_ops/replay").mkdir()  # the dataset's named cache: found without any variable
    r = git.Repo.init(root, initial_branch="main")
    with r.config_writer() as cw:
        cw.set_value("user", "name", "Test")
        cw.set_value("user", "email", "test@example.com")
    r.git.add("-A")
    r.index.commit("initial")
    r.close()
    return root


class Live:
    """The 'real' model behind the cache: counts the calls that reach it."""

    def __init__(self) -> None:
        self.script = AgentScript()
        self.calls = 0

    def __call__(self, settings: Any) -> Any:
        self.calls += 1
        return agent_model(self.script)


@pytest.fixture()
def live(monkeypatch: pytest.MonkeyPatch) -> Live:
    model = Live()
    monkeypatch.setattr(providers, "make_base_chat_model", model)
    return model


def settings_of(root: Path) -> Any:
    return load_settings(root, env={}, overrides={"model": {"provider": "local"}})


def edit_context(root: Path) -> None:
    """A real change: every example's system prompt differs."""
    ctx = root / "prompts/lambda_ops/context.yaml"
    text = ctx.read_text()
    assert "Act on the function the task names" in text
    ctx.write_text(text.replace("Act on the function the task names", "Act on the function named in the task"))


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def test_record_writes_a_manifest_and_replay_runs_offline_from_the_datasets_cache(repo: Path, live: Live) -> None:
    cache = repo / "evals/lambda_ops/replay"
    recorded = evaluate(settings_of(repo), cache="record", progress=False, save=False)
    assert live.calls > 0 and recorded.candidate.success_rate == 1.0
    m = load_manifest(cache)
    assert m is not None and m.model == recorded.candidate.model and m.dataset == "lambda_ops"
    assert len(m.coverage) == 1
    cov = m.coverage[0]
    assert cov.context_version == recorded.candidate.context_version
    assert set(cov.examples) == {r.example_id for r in recorded.candidate.results}
    assert len(cov.keys) == len(list(cache.glob("??/*.json"))) > 0
    assert not list(cache.glob(".*.tmp"))

    live.calls = 0
    replayed = evaluate(settings_of(repo), cache="replay", progress=False, save=False)
    assert live.calls == 0  # the real model is never built in replay
    assert [(r.name, r.passed, r.status) for r in replayed.candidate.results] == [
        (r.name, r.passed, r.status) for r in recorded.candidate.results]
    note = replayed.candidate.extra["cache"]["note"]
    assert note.startswith("replayed from") and "covered by the manifest" in note


def test_replay_refuses_a_side_whose_prompts_changed_before_running_anything(
    repo: Path, live: Live, capsys: pytest.CaptureFixture[str]
) -> None:
    evaluate(settings_of(repo), cache="record", progress=False, save=False)
    edit_context(repo)
    live.calls = 0
    with pytest.raises(SelfhealError) as info:
        evaluate(settings_of(repo), against="HEAD", cache="replay", progress=False)
    msg = info.value.message
    assert info.value.exit_code == 2 and live.calls == 0
    assert "the candidate side: its prompts changed" in msg and "baseline side" not in msg
    assert "--cache auto" in msg
    code, out, err = cli(["-C", str(repo), "eval", "--against", "HEAD", "--cache", "replay", "--gate"], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("error: --cache replay cannot judge this change from ")
    assert not (repo / ".selfheal/traces.sqlite").exists() or live.calls == 0


def test_auto_replays_the_baseline_and_runs_the_changed_candidate_live(repo: Path, live: Live) -> None:
    evaluate(settings_of(repo), cache="record", progress=False, save=False)
    heur = next((repo / "cheatsheet").rglob("heur-*.yaml"))
    heur.write_text(heur.read_text() + "# a comment: a new version, the same prompts\n")
    live.calls = 0
    out = evaluate(settings_of(repo), against="HEAD", cache="auto", progress=False, save=False)
    cand = out.candidate.extra["cache"]
    assert cand["mode"] == "auto" and cand["covered"] is False and cand["recorded"] == 0 and cand["replayed"] > 0
    assert live.calls == 0  # nothing new was asked: the real model was never built

    edit_context(repo)
    out = evaluate(settings_of(repo), against="HEAD", cache="auto", progress=False, save=False)
    assert out.baseline is not None and out.comparison is not None
    base, cand = out.baseline.extra["cache"], out.candidate.extra["cache"]
    # covered: every request replays (auto would still run a new one live, e.g. after a loop change)
    assert base["mode"] == "auto" and base["covered"] is True and base["recorded"] == 0 and base["replayed"] > 0
    assert "covered by the manifest" in base["note"]
    assert cand["mode"] == "auto" and cand["covered"] is False and cand["recorded"] > 0
    assert "ran live where its requests are new: its prompts changed" in cand["note"]
    assert out.comparison.candidate.cache_note == cand["note"]
    assert out.comparison.overall.candidate.rate == out.comparison.overall.baseline.rate == 1.0
    m = load_manifest(repo / "evals/lambda_ops/replay")
    assert m is not None and len(m.coverage) == 3  # recorded, comment-only, edited: each version covered now
    # ... so the same change now replays entirely
    live.calls = 0
    again = evaluate(settings_of(repo), against="HEAD", cache="replay", progress=False, save=False)
    assert live.calls == 0 and again.candidate.extra["cache"]["recorded"] == 0


def test_cache_status_and_prune(repo: Path, live: Live, capsys: pytest.CaptureFixture[str]) -> None:
    cache = repo / "evals/lambda_ops/replay"
    code, out, err = cli(["-C", str(repo), "cache", "prune"], capsys)
    assert code == 0 and "skipped (no manifest)" in out
    code, _, err = cli(["-C", str(repo), "cache", "prune", "--dataset", "lambda_ops"], capsys)
    assert code == 2 and "has no manifest.json" in err
    evaluate(settings_of(repo), cache="record", progress=False, save=False)
    stray = cache / "ab" / ("ab" + "0" * 62 + ".json")
    stray.parent.mkdir(exist_ok=True)
    stray.write_text("{}")
    n = len(list(cache.glob("??/*.json")))

    code, out, _ = cli(["-C", str(repo), "cache", "status", "--json"], capsys)
    [item] = [i for i in json.loads(out) if i["dataset"] == "lambda_ops"]
    assert Path(item["path"]) == cache.resolve()
    assert item["entries"] == n and item["unreferenced"] == 1 and item["referenced"] == n - 1
    assert item["manifest"]["model"].startswith("local:") and item["current"] == [True]
    code, out, _ = cli(["-C", str(repo), "cache", "status"], capsys)
    assert "<- the working tree" in out and "unreferenced 1 (prunable)" in out

    code, out, _ = cli(["-C", str(repo), "cache", "prune", "--dry-run"], capsys)
    assert code == 0 and "would delete 1" in out and stray.exists()
    code, out, _ = cli(["-C", str(repo), "cache", "prune", "--json"], capsys)
    [item] = json.loads(out)["caches"]
    assert item["removed"] == [f"ab/{stray.name}"] and not stray.exists()
    assert len(list(cache.glob("??/*.json"))) == n - 1


def test_the_variable_still_overrides_the_datasets_cache(repo: Path, live: Live, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    settings = load_settings(repo, env={"SELFHEAL_MODEL_CACHE_DIR": str(other)},
                             overrides={"model": {"provider": "local"}})
    evaluate(settings, cache="record", progress=False, save=False)
    assert load_manifest(other) is not None and load_manifest(repo / "evals/lambda_ops/replay") is None


def test_manifest_model_and_version_matching(tmp_path: Path) -> None:
    m = CacheManifest(name="d", model="local:x", dataset="d", dataset_hash="h",
                      coverage=[Coverage(context_version="a" * 40, cheatsheet_version="b" * 40, keys=["k1"])])
    save_manifest(tmp_path, m)
    assert load_manifest(tmp_path) == m
    assert same_content("nogit-" + "a" * 12, "a" * 40) and same_content("a" * 40 + "-dirty", "a" * 40)
    assert not same_content("a" * 40, "b" * 40) and not same_content("nogit-aaaa", "aaaa")
    (tmp_path / "manifest.json").write_text('{"name": 1}')
    with pytest.raises(SelfhealError, match="invalid cache manifest"):
        load_manifest(tmp_path)
    with pytest.raises(SelfhealError, match="has no manifest"):
        prune_cache(tmp_path / "none")
