"""The GitHub workflows: valid against GitHub's workflow schema, and their commands parse."""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

from selfheal.cli.main import cli
from selfheal.gitops.comments import build_parser
from selfheal.scaffold import template

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = ["selfheal-eval.yml", "selfheal-optimize.yml"]
check_jsonschema = pytest.importorskip("check_jsonschema", reason="dev dependency check-jsonschema")
jsonschema = pytest.importorskip("jsonschema")


def _load(name: str) -> Any:
    return YAML(typ="safe", pure=True).load((REPO / ".github" / "workflows" / name).read_text())


@pytest.fixture(scope="module")
def validator() -> Any:
    path = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor" / "github-workflows.json"
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@pytest.mark.parametrize("name", WORKFLOWS + ["ci.yml"])
def test_workflows_match_githubs_schema(validator, name):
    errors = [e.message for e in validator.iter_errors(_load(name))]
    assert errors == []


def test_a_broken_workflow_fails_the_schema(validator):
    broken = copy.deepcopy(_load("selfheal-eval.yml"))
    broken["permissions"]["pull-requests"] = "sometimes"
    del broken["jobs"]["eval"]["runs-on"]
    assert len(list(validator.iter_errors(broken))) >= 1
    assert list(validator.iter_errors({"on": "push"}))          # no jobs


def test_eval_and_optimize_workflows_say_what_the_design_asks():
    ev = _load("selfheal-eval.yml")
    assert ev["on"]["pull_request"]["paths"] == ["prompts/**", "cheatsheet/**", "evals/**"]
    assert ev["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = ev["jobs"]["eval"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0 and steps[1]["with"]["python-version"] == "3.11"
    assert any(s.get("if", "").startswith("steps.eval.outputs.status != '0'") for s in steps)   # fails on regression
    opt = _load("selfheal-optimize.yml")
    assert "schedule" in opt["on"] and "workflow_dispatch" in opt["on"]
    assert opt["permissions"] == {"contents": "write", "pull-requests": "write"}
    env = opt["jobs"]["improve"]["env"]
    assert {k: env[k] for k in ("OPENAI_API_KEY", "LANGSMITH_API_KEY", "GITHUB_TOKEN")} == {
        "OPENAI_API_KEY": "${{ secrets.OPENAI_API_KEY }}",
        "LANGSMITH_API_KEY": "${{ secrets.LANGSMITH_API_KEY }}",
        "GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}",
    }


def _expr(m: re.Match[str]) -> str:
    """A GitHub expression as a plausible runtime value: its literal fallback, else a branch name."""
    fallback = re.search(r"\|\|\s*'([^']*)'", m.group(1))
    if fallback:
        return fallback.group(1)
    return {"github.event.pull_request.number": "42"}.get(m.group(1).strip(), "main")


def _commands(prefix: str) -> list[list[str]]:
    found = []
    for name in WORKFLOWS:
        for job in _load(name)["jobs"].values():
            for step in job["steps"]:
                for line in str(step.get("run", "")).splitlines():
                    line = re.sub(r"\$\{\{(.*?)\}\}", _expr, line.strip())
                    if line.startswith(prefix):
                        found.append(shlex.split(line)[len(shlex.split(prefix)):])
    return found


def test_every_selfheal_command_in_the_workflows_parses():
    commands = _commands("selfheal ")
    assert {c[0] for c in commands} == {"eval", "optimize", "curate"}
    group_ctx = cli.make_context("selfheal", ["eval"], resilient_parsing=True)
    for args in commands:
        command = cli.get_command(group_ctx, args[0])
        assert command is not None, args
        ctx = command.make_context(args[0], args[1:], parent=group_ctx)   # raises on unknown options/values
        assert ctx.params
    eval_ctx = cli.get_command(group_ctx, "eval").make_context("eval", commands[0][1:], parent=group_ctx)
    assert eval_ctx.params["against"] == "origin/main" and eval_ctx.params["gate"] is True
    with pytest.raises(click.UsageError):
        cli.get_command(group_ctx, "eval").make_context("eval", ["--no-such-option"], parent=group_ctx)


def test_the_comment_step_parses():
    (args,) = _commands("python -m selfheal.gitops.comments ")
    parsed = build_parser().parse_args(args)
    assert parsed.pr == 42 and parsed.body_file == Path("eval-report.md")


@pytest.mark.parametrize("name", WORKFLOWS)
def test_scaffolded_workflows_are_the_repositorys(name):
    assert template(name) == (REPO / ".github" / "workflows" / name).read_text()
