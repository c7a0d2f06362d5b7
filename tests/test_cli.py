"""The `selfheal` command as a user meets it: exit codes, one-line errors, real clients."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli import run_cli
from helpers.openai_stub import OpenAIStub

from selfheal.cli.main import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    return tmp_path


def test_help_is_fast_and_imports_nothing_heavy() -> None:
    code = (
        "import sys; from selfheal.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('langgraph', 'langchain_core', 'boto3', 'moto', 'llama_cpp', 'openai') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert "run " in proc.stdout and "lint " in proc.stdout
    assert "HEAVY []" in proc.stdout


def test_run_through_an_openai_compatible_endpoint(repo: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("get_function_configuration", {"function_name": "checkout-api"})])
        stub.reply_tool_calls([("update_timeout", {"function_name": "checkout-api", "timeout_s": 12})])
        stub.reply_text("Raised the timeout to 12 s.\nUSED: heur-timeout-low-memory")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        code, out, err = run_cli(["-C", str(repo), "run", "--scenario", "lambda_timeout", "--json"], capsys)
        assert code == 0, err
        result = json.loads(out)
        assert result["success"] is True and result["verified"] is True
        assert [c["name"] for c in result["tool_calls"]] == ["get_function_configuration", "update_timeout"]
        assert result["used_entries"] == ["heur-timeout-low-memory"]
        assert result["model"].startswith("openai:")
        # The real client sent the tools and the rendered context.
        first = stub.bodies[0]
        assert {t["function"]["name"] for t in first["tools"]} >= {"update_timeout", "search_logs"}
        assert first["messages"][0]["role"] == "system" and "USED:" in first["messages"][0]["content"]


def test_failed_task_exits_1_with_a_readable_report(repo: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with OpenAIStub() as stub:
        stub.reply_tool_calls([("update_memory", {"function_name": "checkout-api", "memory_mb": 2048})])
        stub.reply_text("Fixed it by doubling memory. USED: none")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        code, out, _ = run_cli(["-C", str(repo), "run", "--no-learn", "--scenario", "lambda_timeout"], capsys)
    assert code == 1
    assert "FAILED" in out and "update_memory" in out and "memory_mb=2048" in out
    assert "disabled by --no-learn" in out  # learning is not pretended
    assert "Run " in out and "traces.sqlite" in out


def test_usage_and_config_errors_exit_2_in_one_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(["-C", str(repo), "run"], capsys)
    assert code == 2 and "TASK" in err

    code, _, err = run_cli(["-C", str(repo), "run", "--scenario", "no-such-scenario"], capsys)
    assert code == 2 and "lambda_timeout" in err and err.count("\n") == 1

    (repo / "selfheal.yaml").write_text("agent: lambda_ops\nmodel:\n  provider: local\n  temprature: 1\n")
    code, _, err = run_cli(["-C", str(repo), "run", "--scenario", "lambda_timeout"], capsys)
    assert code == 2
    assert err.strip() == f"error: {repo / 'selfheal.yaml'}:4: unknown key 'model.temprature'"
    assert "Traceback" not in err


def test_bad_env_override_names_the_variable(repo: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELFHEAL_THRESHOLDS_MAX_STEPS", "many")
    code, _, err = run_cli(["-C", str(repo), "model", "info"], capsys)
    assert code == 2 and err.startswith("error: SELFHEAL_THRESHOLDS_MAX_STEPS:")


def test_lint_reports_file_line_and_exit_1(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(["-C", str(repo), "lint"], capsys)
    assert code == 0, out
    entry = repo / "cheatsheet" / "heuristics" / "heur-timeout-low-memory.yaml"
    entry.write_text(entry.read_text().replace("rule:", "rulez:"))
    code, out, _ = run_cli(["-C", str(repo), "lint"], capsys)
    assert code == 1
    assert "cheatsheet/heuristics/heur-timeout-low-memory.yaml:" in out and "rulez" in out


def test_scenarios_and_model_info(repo: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, _ = run_cli(["-C", str(repo), "scenarios", "--json"], capsys)
    names = {row["name"] for row in json.loads(out)}
    assert code == 0 and {"lambda_timeout", "lambda_memory", "lambda_errors"} <= names

    code, out, _ = run_cli(["-C", str(repo), "model", "info", "--json"], capsys)
    assert json.loads(out)["provider"] == "local"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-x")
    code, out, _ = run_cli(["-C", str(repo), "model", "info", "--json"], capsys)
    assert json.loads(out)["provider"] == "openai"


def test_console_script_exit_code_end_to_end(repo: Path) -> None:
    """The installed entry point, as a subprocess: one-line error, exit 2, no traceback."""
    exe = Path(sys.executable).with_name("selfheal")
    if not exe.exists():
        pytest.skip("console script not installed in this environment")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "SELFHEAL_"))}
    proc = subprocess.run([str(exe), "-C", str(repo), "run", "--scenario", "nope"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
