"""The scaffolded workflows, run step by step as a hosted runner would, in an adopting team's repository.

Each job's ``run:`` steps execute in order with bash (tests/helpers/workflow_runner.py) in a
checkout of a bare ``origin`` that ``selfheal init`` set up, against the GitHub stub. Two
things stand in for the network: ``python -m pip`` is recorded, not run (selfheal is already
installed here), and in the optimize job the learning + validation step is replaced by a fixed
accepted change (tests/test_optimize.py covers learning); everything after it (plan, commit,
push, the PR through the API with the bot token, the rate limit) is the real code.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.github_stub import GitHubStub
from helpers.gitrepo import git, isolate_git
from helpers.openai_stub import closed_port_url
from helpers.workflow_runner import JobResult, path_with, run_job
from ruamel.yaml import YAML

from selfheal.gitops.comments import EVAL_MARKER
from selfheal.scaffold import scaffold

SPEC = "selfheal @ git+https://github.com/acme/selfheal@v0.3.1"
REPO_SLUG = "acme/agent"
INSTALL = "Install selfheal and this repository's agent"

PYTHON_SHIM = """#!/bin/bash
# python, except that `python -m pip ...` is recorded instead of run (no network in tests)
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  shift 2
  printf '%s\\tCMAKE_ARGS=%s\\n' "$*" "${CMAKE_ARGS:-}" >> "$PIP_LOG"
  if [ "$1" = "show" ]; then printf 'Name: %s\\nVersion: 0.3.36\\n' "$2"; fi
  exit 0
fi
exec "{python}" "$@"
"""

# `selfheal` whose optimize learns nothing but returns one fixed accepted change (new per run id).
SELFHEAL_SHIM = '''#!{python}
import os
import sys

ENTRY = """id: heur-learned-{{run}}
section: heuristics
task_type: general
condition: A task asks to change a setting (run {{run}})
rule: Read the current value before writing a new one.
status: candidate
source: {{{{kind: seed, runs: [], created: 2026-01-01T00:00:00Z}}}}
"""

if sys.argv[1:2] == ["optimize"]:
    import selfheal.optimize.training as training

    def learned(settings, *, publish=False, base=None, **_):
        from selfheal.gitops.changeset import ChangeSet, FileChange
        from selfheal.gitops.preflight import plan_publish
        from selfheal.gitops.publish import publish_change

        plan = plan_publish(settings, "optimize", base=base) if publish else None
        run = os.environ.get("GITHUB_RUN_ID", "0")
        path, content = f"cheatsheet/heuristics/heur-learned-{{run}}.yaml", ENTRY.format(run=run)
        report = training.OptimizeReport([], {{path: content}}, [f"ADD heur-learned-{{run}}"])
        if publish:
            change = ChangeSet(kind="optimize", title=f"selfheal: cheatsheet learned in run {{run}}",
                               summary=report.summary, files=[FileChange(path=path, content=content)])
            report.publish = publish_change(settings, change, plan=plan)
        return report

    training.optimize = learned

from selfheal.cli.main import main

main(sys.argv[1:])
'''


def _workflow(root: Path, name: str) -> Any:
    return YAML(typ="safe", pure=True).load((root / ".github" / "workflows" / name).read_text())


def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC | stat.S_IXGRP | stat.S_IXOTH)


class Adopter:
    """A team's repository set up by ``selfheal init``, on a bare origin, and fresh runners for it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.origin = tmp / "origin.git"
        git(tmp, "init", "-q", "--bare", "-b", "main", str(self.origin))
        seed = tmp / "seed"
        seed.mkdir()
        scaffold(seed, "lambda_ops", owner="@acme", selfheal_spec=SPEC)
        with (seed / "selfheal.yaml").open("a") as fh:
            fh.write("\ngitops:\n  max_prs_per_day: 1\n")
        git(seed, "init", "-q", "-b", "main")
        git(seed, "config", "user.name", "Dana")
        git(seed, "config", "user.email", "dana@example.com")
        git(seed, "add", "-A")
        git(seed, "commit", "-q", "-m", "selfheal init")
        git(seed, "remote", "add", "origin", self.origin.as_uri())
        git(seed, "push", "-q", "origin", "main")
        self.seed = seed
        self.runs = 0

    def pr_branch(self, name: str, edit: str) -> None:
        git(self.seed, "checkout", "-q", "-b", name)
        target = self.seed / "prompts" / "lambda_ops" / "system.md.j2"
        target.write_text(target.read_text() + edit)
        git(self.seed, "commit", "-q", "-am", "a prompt change")
        git(self.seed, "push", "-q", "origin", name)
        git(self.seed, "checkout", "-q", "main")

    def runner(self, ref: str = "main") -> tuple[Path, Path, dict[str, str]]:
        """A fresh runner: (workspace checked out at ``ref``, temp dir, environment) with nothing kept."""
        self.runs += 1
        box = self.tmp / f"runner-{self.runs}"
        ws = box / "work"
        git(self.tmp, "clone", "-q", self.origin.as_uri(), str(ws))
        git(ws, "checkout", "-q", ref)
        shims = box / "shims"
        shims.mkdir()
        _executable(shims / "python", PYTHON_SHIM.replace("{python}", sys.executable))
        home = box / "home"
        home.mkdir()
        env = {
            "PATH": path_with(shims), "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"),
            "GIT_CONFIG_NOSYSTEM": "1", "PIP_LOG": str(box / "pip.log"), "LANG": "C.UTF-8",
            "PYTHONPATH": os.environ.get("PYTHONPATH", ""), "OPENAI_BASE_URL": closed_port_url(),
        }
        return ws, box, env


@pytest.fixture()
def adopter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Adopter:
    isolate_git(monkeypatch, tmp_path)
    return Adopter(tmp_path)


def _pip(box: Path) -> list[str]:
    log = box / "pip.log"
    return log.read_text().splitlines() if log.is_file() else []


def _explain(result: JobResult) -> str:
    return "\n".join(f"--- {s.name} (exit {s.exit_code})\n{s.stdout[-1500:]}\n{s.stderr[-1500:]}"
                     for s in result.steps if s.ran)


def test_eval_workflow_posts_one_comment_updated_on_the_next_push(adopter: Adopter):
    adopter.pr_branch("feat", "\nAlways state the value you changed.\n")
    workflow = _workflow(adopter.seed, "selfheal-eval.yml")
    github = {"repository": REPO_SLUG, "base_ref": "main", "event_name": "pull_request", "run_id": "11",
              "event": {"pull_request": {"number": 7, "head": {"repo": {"full_name": REPO_SLUG}}}}}
    with GitHubStub(token="ghs_actions_token", repo=REPO_SLUG) as stub:
        secrets = {"GITHUB_TOKEN": stub.token, "OPENAI_API_KEY": "sk-test-not-real"}
        results = []
        for _ in range(2):   # the PR is pushed twice: two runs on two fresh runners
            ws, box, env = adopter.runner("feat")
            env["GITHUB_API_URL"] = stub.url
            results.append((run_job(workflow, "eval", ws, github=github, secrets=secrets, base_env=env,
                                    runner_temp=box / "temp"), box))
        comments = [c for c in stub.comments.values() if c["issue"] == 7]
        assert len(comments) == 1, _explain(results[-1][0])                  # upserted, not appended
        assert comments[0]["body"].startswith(EVAL_MARKER) and "selfheal eval" in comments[0]["body"]
        assert len(stub.calls("POST", "/issues/7/comments")) == 1
    result, box = results[-1]
    evaluated = result.step("Evaluate against the base branch")
    # No committed replay cache in a fresh repository: no verdict, so the gate fails and the job says so.
    assert evaluated.ran and evaluated.outputs["status"] not in ("", "0"), _explain(result)
    assert result.step("Fail when the gate fails").ran and result.failed
    assert "selfheal eval gate failed" in result.step("Fail when the gate fails").stdout
    assert result.step("Comment the report on the PR").exit_code == 0
    html = result.step("Write the HTML report")
    assert html.ran and html.exit_code == 0                               # guarded: never what fails the job
    assert "**Model:** OpenAI API" in result.summary and "Verdict" in result.summary
    assert not result.step("Prepare the embedded model").ran               # the key is there: no local model
    # selfheal itself is installed (no extra: the API key is set); the repository has no package to install.
    assert [line.split("\t")[0] for line in _pip(box)] == [f"install {SPEC}"]


def test_without_openai_key_the_local_model_is_installed_and_cached(adopter: Adopter):
    (adopter.seed / "pyproject.toml").write_text('[project]\nname = "acme-agent"\nversion = "0.1.0"\n')
    (adopter.seed / "agents" / "triage").mkdir(parents=True)
    (adopter.seed / "agents" / "triage" / "pyproject.toml").write_text('[project]\nname = "triage"\nversion = "1"\n')
    git(adopter.seed, "add", "-A")
    git(adopter.seed, "commit", "-q", "-m", "package the agent")
    git(adopter.seed, "push", "-q", "origin", "main")
    workflow = _workflow(adopter.seed, "selfheal-eval.yml")
    ws, box, env = adopter.runner()
    github = {"repository": REPO_SLUG, "base_ref": "main", "event_name": "pull_request", "run_id": "12",
              "event": {"pull_request": {"number": 8, "head": {"repo": {"full_name": REPO_SLUG}}}}}
    result = run_job(workflow, "eval", ws, github=github, secrets={"GITHUB_TOKEN": "x"}, base_env=env,
                     runner_temp=box / "temp", until=INSTALL)
    assert not result.failed, _explain(result)
    assert "**Model:** the embedded local model" in result.summary
    installs = [line.split("\t") for line in _pip(box) if line.startswith("install ")]
    assert [i[0] for i in installs] == [
        "install selfheal[local] @ git+https://github.com/acme/selfheal@v0.3.1",
        "install .",                    # the repository's own package
        "install ./agents/triage/",     # and the agent packages it keeps
    ]
    assert "-DGGML_NATIVE=OFF" in installs[0][1]    # a portable llama.cpp build: the cached wheel runs on any runner
    key = result.step(INSTALL).outputs["model-key"]
    assert key.startswith("qwen2.5-coder-1.5b-instruct-q4_k_m-") and key.endswith("-llama-cpp-python-0.3.36")


def test_a_placeholder_selfheal_spec_fails_in_one_line(adopter: Adopter):
    req = adopter.seed / ".github" / "selfheal-requirements.txt"
    req.write_text(req.read_text().replace(SPEC, "selfheal @ git+https://github.com/YOUR-ORG/selfheal@main"))
    git(adopter.seed, "commit", "-q", "-am", "placeholder")
    git(adopter.seed, "push", "-q", "origin", "main")
    ws, box, env = adopter.runner()
    result = run_job(_workflow(adopter.seed, "selfheal-eval.yml"), "eval", ws, github={"repository": REPO_SLUG},
                     secrets={}, base_env=env, runner_temp=box / "temp", until=INSTALL)
    step = result.step(INSTALL)
    assert step.exit_code == 1 and _pip(box) == []
    (line,) = [x for x in step.stdout.splitlines() if x.startswith("::error")]
    assert "selfheal-requirements.txt" in line and "selfheal==X.Y.Z" in line


def _optimize(adopter: Adopter, stub: GitHubStub, secrets: dict[str, str], run_id: str) -> tuple[JobResult, Path]:
    ws, box, env = adopter.runner()
    _executable(box / "shims" / "selfheal", SELFHEAL_SHIM.replace("{python}", sys.executable).replace("{{", "{")
                .replace("}}", "}"))
    env["GITHUB_API_URL"] = stub.url
    github = {"repository": REPO_SLUG, "event_name": "schedule", "run_id": run_id, "ref": "refs/heads/main"}
    return run_job(_workflow(adopter.seed, "selfheal-optimize.yml"), "improve", ws, github=github, secrets=secrets,
                   inputs={}, base_env=env, runner_temp=box / "temp"), box


def test_optimize_workflow_needs_a_bot_token_and_says_so_in_one_line(adopter: Adopter):
    with GitHubStub(token="ghs_actions_token", repo=REPO_SLUG) as stub:
        result, box = _optimize(adopter, stub, {"GITHUB_TOKEN": stub.token, "OPENAI_API_KEY": "sk-x"}, "21")
        assert stub.requests == []
    check = result.step("Check the bot token")
    assert check.exit_code == 1 and result.failed
    (line,) = check.stdout.splitlines()
    assert line.startswith("::error::no bot token: set the SELFHEAL_BOT_TOKEN secret")
    assert not result.step(INSTALL).ran and _pip(box) == []


def test_optimize_opens_its_pr_with_the_bot_token_and_the_next_runner_sees_the_rate_limit(adopter: Adopter):
    now = datetime.now(UTC)
    with GitHubStub(token="ghp_bot_token", repo=REPO_SLUG, origin=adopter.origin) as stub:
        stub.seed_pr("selfheal/optimize/2026-old", created_at=now - timedelta(days=3), state="closed", merged=True)
        stub.seed_pr("selfheal/curate/closed-unmerged", created_at=now - timedelta(hours=5), state="closed")
        # GITHUB_TOKEN is not what the stub accepts: only the bot token can open the PR.
        secrets = {"GITHUB_TOKEN": "ghs_actions_token", "SELFHEAL_BOT_TOKEN": stub.token, "OPENAI_API_KEY": "sk-x"}
        first, _ = _optimize(adopter, stub, secrets, "31")
        assert not first.failed, _explain(first)
        opened = [p for p in stub.pulls.values() if p["head"]["ref"].startswith("selfheal/optimize/")
                  and p["state"] == "open"]
        assert len(opened) == 1 and opened[0]["base"]["ref"] == "main", _explain(first)
        branch = opened[0]["head"]["ref"]
        assert git(adopter.origin, "rev-parse", "--verify", f"refs/heads/{branch}").strip()   # pushed
        assert stub.issue_labels[opened[0]["number"]] == ["selfheal", "selfheal:optimize"]
        out = first.step("Learn on the train split and open a pull request").stdout
        assert f"opened pull request #{opened[0]['number']}" in out and "pushed " + branch in out, out
        assert "**Pull requests opened with:** the SELFHEAL_BOT_TOKEN secret" in first.summary

        # The next scheduled run is a new runner with an empty .selfheal/: the limit comes from GitHub.
        second, _ = _optimize(adopter, stub, secrets, "32")
        step = second.step("Learn on the train split and open a pull request")
        assert step.exit_code == 2 and second.failed, _explain(second)
        assert ("error: rate limit: 1 improvement PRs in the last 24 h on acme/agent (gitops.max_prs_per_day = 1)"
                in step.stderr), step.stderr
        assert len(stub.pulls) == 3                                          # nothing new opened
    heads = subprocess.run(["git", "--git-dir", str(adopter.origin), "branch", "--list", "selfheal/*"],
                           capture_output=True, text=True).stdout.split()
    assert heads == [branch]                                                  # and nothing pushed
