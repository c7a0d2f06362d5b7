"""Flags mean the same on every command: --json, --since/--older-than, --cache, scores, -y off a terminal.

Each test drives ``selfheal`` as a user would (the console entry point) and
checks what they would notice: the flag is in every command's help, a bad
value is exit 2 naming the flag, JSON output is the only thing on stdout, and
a confirmation without a terminal refuses with one line instead of exit 130.
"""

from __future__ import annotations

import ast
import importlib
import io
import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import click
import pytest
from helpers.cli import run_cli
from helpers.gitrepo import isolate_git, make_repo
from helpers.openai_stub import OpenAIStub

from selfheal.cli.main import COMMANDS, main
from selfheal.cli.options import CACHE_MODES, json_option
from selfheal.timespec import ACCEPTED_FORMS

REPO = Path(__file__).resolve().parents[1]
CLI_DIR = REPO / "selfheal" / "cli"

#: commands that may go without --json, each with the reason (none today).
JSON_ALLOWLIST: dict[str, str] = {
    "chat": "an interactive session: there is no single result to print",
}


def _leaves(name: str, cmd: click.Command) -> list[tuple[str, click.Command]]:
    if isinstance(cmd, click.Group):
        # A group that runs on its own (``selfheal eval`` besides ``selfheal eval merge``) is a command too.
        own = [(name, cmd)] if cmd.invoke_without_command else []
        return own + [leaf for sub, c in sorted(cmd.commands.items()) for leaf in _leaves(f"{name} {sub}", c)]
    return [(name, cmd)]


def every_command() -> list[tuple[str, click.Command]]:
    """Every registered command, subcommands of groups included, as (``"traces prune"``, command)."""
    found: list[tuple[str, click.Command]] = []
    for name, (module, attr, _help) in sorted(COMMANDS.items()):
        found += _leaves(name, getattr(importlib.import_module(module), attr))
    return found


COMMAND_NAMES = [name for name, _ in every_command()]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    return tmp_path


# -- --json everywhere ----------------------------------------------------------------------


def test_the_command_list_covers_groups() -> None:
    assert {"traces prune", "dataset push", "dataset pull", "model prepare", "init", "eval", "run"} <= set(
        COMMAND_NAMES
    )


@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_command_has_json_in_its_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    if name in JSON_ALLOWLIST:
        pytest.skip(JSON_ALLOWLIST[name])
    code, out, err = run_cli([*name.split(), "--help"], capsys)
    assert code == 0, err
    assert "--json" in out, f"`selfheal {name}` has no --json"


def test_json_is_the_shared_option_everywhere() -> None:
    """One decorator: the same name, flag and help on every command (a command's own --json would drift)."""
    shared = json_option(click.Command("x")).params[0]
    for name, cmd in every_command():
        opts = [p for p in cmd.params if "--json" in getattr(p, "opts", [])]
        if name in JSON_ALLOWLIST and not opts:
            continue
        assert len(opts) == 1, name
        assert (opts[0].name, opts[0].is_flag, opts[0].help) == (shared.name, True, shared.help), name


def test_eval_json_is_format_json(repo: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import selfheal.evaluation.evaluate as evaluate_mod
    import selfheal.evaluation.report as report_mod

    outcome = SimpleNamespace(candidate="result", comparison=None, decision=None)
    monkeypatch.setattr(evaluate_mod, "evaluate", lambda *a, **kw: outcome)
    monkeypatch.setattr(report_mod, "to_json", lambda **kw: json.dumps({"single": kw["single"]}) + "\n")
    code, out, err = run_cli(["-C", str(repo), "eval", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == {"single": "result"}
    code, out, err = run_cli(["-C", str(repo), "eval", "--json", "--format", "md"], capsys)
    assert json.loads(out) == {"single": "result"}  # --json wins: machine-readable was asked for


def test_init_json_is_the_only_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "agent").mkdir()
    code, out, err = run_cli(["init", str(tmp_path / "agent"), "--agent", "support-bot", "--owner", "@acme",
                              "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert "selfheal.yaml" in data["created"] and data["agent"] == "support-bot" and data["kept"] == []
    code, out, err = run_cli(["init", str(tmp_path / "agent"), "--agent", "support-bot", "--json"], capsys)
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1  # set up already
    code, out, err = run_cli(["init", str(tmp_path / "agent"), "--agent", "support-bot", "--force-missing-only",
                              "--json"], capsys)
    assert code == 0, err
    assert "selfheal.yaml" in json.loads(out)["kept"]


def test_model_prepare_json(repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    weights = repo / "tiny.gguf"
    weights.write_bytes(b"\0" * 2**20)
    monkeypatch.setenv("SELFHEAL_MODEL_GGUF_PATH", str(weights))
    code, out, err = run_cli(["-C", str(repo), "model", "prepare", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out) == {"path": str(weights), "size_mib": 1.0}


@pytest.mark.parametrize("sub", ["push", "pull"])
def test_dataset_sync_json_errors_stay_on_stderr(sub: str, repo: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("LANGSMITH_TRACING", "LANGSMITH_API_KEY", "LANGCHAIN_TRACING_V2", "LANGCHAIN_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    code, out, err = run_cli(["-C", str(repo), "dataset", sub, "lambda_ops", "--json"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: LangSmith is not configured") and err.count("\n") == 1


# -- --since / --older-than: one grammar --------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["traces", "list", "--since", "7 days"], "--since"),
        (["traces", "stats", "--since", "last week"], "--since"),
        (["curate", "--dry-run", "--since", "yesterday"], "--since"),
        (["traces", "prune", "--older-than", "-3d", "--yes"], "--older-than"),
    ],
)
def test_a_bad_window_is_a_usage_error_naming_the_flag(args: list[str], flag: str, repo: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["-C", str(repo), *args], capsys)
    assert code == 2 and out == ""
    assert f"'{flag}'" in err and ACCEPTED_FORMS in err


@pytest.mark.parametrize("when", ["7d", "1y", "2026-01-31", "2026-01-31T12:00Z", "all"])
def test_every_command_takes_every_form(when: str, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args in (["traces", "list", "--since", when, "--json"], ["traces", "stats", "--since", when, "--json"],
                 ["traces", "prune", "--older-than", when, "--json"]):
        code, out, err = run_cli(["-C", str(repo), *args], capsys)
        assert code == 0, (args, err)
        json.loads(out)
    code, out, err = run_cli(["-C", str(repo), "curate", "--dry-run", "--since", when, "--json"], capsys)
    assert code == 0, err
    assert "no runs to curate" in json.loads(out)["errors"][0]


# -- --cache on run as on eval -----------------------------------------------------------------


def _choices(name: str) -> tuple[str, ...]:
    cmd = dict(every_command())[name]
    (opt,) = [p for p in cmd.params if "--cache" in getattr(p, "opts", [])]
    assert isinstance(opt.type, click.Choice)
    return tuple(sorted(opt.type.choices))


def test_run_and_eval_offer_the_same_cache_modes() -> None:
    from typing import get_args

    from selfheal.config import ModelSettings

    settable = get_args(ModelSettings.model_fields["cache_mode"].annotation)
    assert _choices("run") == _choices("eval") == tuple(sorted(CACHE_MODES)) == tuple(sorted(settable))


def test_run_records_then_replays_offline_and_a_replay_miss_is_an_error(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    with OpenAIStub() as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        # Replay before anything was recorded: a miss, and the model is never asked (as in eval).
        code, out, err = run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "lambda_timeout",
                                  "--cache", "replay", "--json"], capsys)
        assert code == 2 and out == "" and stub.bodies == []
        assert err.startswith("error: replay: no recorded response") and err.count("\n") == 1
        stub.reply_tool_calls([("get_function_configuration", {"function_name": "checkout-api"})])
        stub.reply_tool_calls([("update_timeout", {"function_name": "checkout-api", "timeout_s": 12})])
        stub.reply_text("Raised the timeout to 12 s.\nUSED: heur-timeout-low-memory")
        code, out, err = run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "lambda_timeout",
                                  "--cache", "record", "--json"], capsys)
        assert code == 0, err
        recorded = json.loads(out)
        assert len(stub.bodies) == 3
    # The endpoint is gone: replay answers from the recorded files alone.
    code, out, err = run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "lambda_timeout",
                              "--cache", "replay", "--json"], capsys)
    assert code == 0, err
    replayed = json.loads(out)
    assert replayed["success"] is True and replayed["run_id"] != recorded["run_id"]
    assert [c["name"] for c in replayed["tool_calls"]] == [c["name"] for c in recorded["tool_calls"]]
    runs = json.loads(run_cli(["-C", str(repo), "traces", "list", "--json"], capsys)[1])
    assert [r["metadata"].get("error_type") for r in runs][-1] == "model_error"  # the miss is traced as such


# -- scores --------------------------------------------------------------------------------------


@pytest.mark.parametrize("score", ["1.5", "-0.1", "nan", "inf", "good"])
def test_a_score_outside_0_to_1_is_exit_2(score: str, repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(["-C", str(repo), "feedback", "0190aaaa", "--score", score], capsys)
    assert code == 2 and out == ""
    assert "'--score'" in err and "from 0 to 1" in err


def test_score_type_accepts_the_range() -> None:
    from selfheal.cli.options import SCORE

    assert [SCORE.convert(v, None, None) for v in ("0", "1", "0.25", 1)] == [0.0, 1.0, 0.25, 1.0]


# -- confirmations off a terminal ----------------------------------------------------------------


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_command_prompts_except_through_the_shared_confirm() -> None:
    """click.confirm / click.prompt read EOF without a terminal (exit 130): options.confirm refuses instead."""
    offenders = []
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name == "options.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("confirm", "prompt") and \
                    isinstance(node.value, ast.Name) and node.value.id == "click":
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def _improvement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    from selfheal.gitops.changeset import ChangeSet, FileChange
    from selfheal.gitops.publish import publish_change

    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path, origin=False)
    path = "cheatsheet/heuristics/heur-vpc-before-memory.yaml"
    text = (repo.root / path).read_text().replace("status: active", "status: retired")
    change = ChangeSet(kind="curate", title="Retire the VPC heuristic", summary=["RETIRE"],
                       files=[FileChange(path=path, content=text)], trace_ids=["run-a"])
    published = publish_change(repo.settings(), change, today=date(2026, 3, 14), force=True)
    repo.git("merge", "-q", "--no-ff", "-m", "merge", published.branch)
    return repo, published.commit


def test_rollback_without_a_terminal_or_yes_refuses_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, commit = _improvement(tmp_path, monkeypatch)
    head = repo.head()
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))  # piped input is not a yes
    code, out, err = run_cli(["-C", str(repo.root), "rollback", commit[:10], "--no-pr"], capsys)
    assert code == 2 and out == "" and repo.head() == head
    assert err.count("\n") == 1 and err.startswith("error: this would roll back")
    assert "pass -y/--yes to confirm when not interactive" in err
    monkeypatch.setattr("sys.stdin", _Tty("n\n"))  # at a terminal the question is asked
    code, out, err = run_cli(["-C", str(repo.root), "rollback", commit[:10], "--no-pr"], capsys)
    assert code == 1 and "Nothing rolled back." in err and repo.head() == head
    monkeypatch.setattr("sys.stdin", _Tty("y\n"))
    code, out, err = run_cli(["-C", str(repo.root), "rollback", commit[:10], "--no-pr", "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["reverted"] == commit and repo.head() != head


def test_prune_without_a_terminal_or_yes_refuses_with_exit_2(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from helpers.trace_fixtures import build_dataset

    from selfheal.config import load_settings
    from selfheal.tracing.schema import utcnow
    from selfheal.tracing.store import LocalTraceStore

    settings = load_settings(repo, env={})
    with LocalTraceStore(settings.trace_store_path) as store:
        build_dataset(store, settings.tracing.project)  # one root is 30 days old
    ten_days_ago = (utcnow() - timedelta(days=10)).date().isoformat()
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, err = run_cli(["-C", str(repo), "traces", "prune", "--older-than", ten_days_ago, "--json"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "1 trace(s) would be deleted: pass -y/--yes to confirm when not interactive" in err
    code, out, err = run_cli(["-C", str(repo), "traces", "prune", "--older-than", ten_days_ago, "--json", "-y"],
                             capsys)
    assert code == 0, err
    assert json.loads(out)["removed"] == 1
