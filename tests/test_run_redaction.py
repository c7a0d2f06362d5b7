"""Secrets planted in a run never reach the SQLite file or LangSmith (redaction before storage)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers.langsmith_stub import LangSmithStub
from helpers.secrets_corpus import AKID, AWS_SECRET, GHP, LS_PT, OPENAI_PROJ
from langchain_core.messages import AIMessage

from selfheal.agent.runner import run_task
from selfheal.config import load_settings
from selfheal.models.fakes import ScriptedChatModel

REPO = Path(__file__).resolve().parents[1]
EMAIL = "jane.doe@example.com"
IP = "203.0.113.77"
PLANTED = [AKID, AWS_SECRET, GHP, LS_PT, OPENAI_PROJ, EMAIL, IP]


def _repo(tmp_path: Path) -> Path:
    for name in ("prompts", "cheatsheet", "evals"):
        shutil.copytree(REPO / name, tmp_path / name)
    shutil.copy(REPO / "selfheal.yaml", tmp_path / "selfheal.yaml")
    return tmp_path


def _model() -> ScriptedChatModel:
    return ScriptedChatModel(
        [
            AIMessage(
                content="",
                tool_calls=[{
                    "name": "search_logs",
                    "args": {"function_name": "checkout-api", "pattern": AKID, "hours": 24},
                    "id": "c1",
                }],
            ),
            f"Done. Mail {EMAIL}; aws_secret_access_key={AWS_SECRET}; token {GHP}; from {IP}.\nUSED: none",
            # the loop nudges an answer that changed nothing once; the model says the same again
            f"Still done. Mail {EMAIL}; aws_secret_access_key={AWS_SECRET}.\nUSED: none",
        ]
    )


def _stored_bytes(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(state.glob("*.sqlite*")))


def test_no_planted_secret_survives_in_the_local_store_or_langsmith(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    task = f"checkout-api times out; ping {EMAIL}, key {AKID}, openai {OPENAI_PROJ}, langsmith {LS_PT}"
    with LangSmithStub() as stub:
        settings = load_settings(
            repo,
            env={},
            overrides={"tracing": {"langsmith": True, "langsmith_endpoint": stub.url,
                                   "langsmith_api_key": "ls-test-key"}},
        )
        out = run_task(settings, task, scenario="lambda_timeout", model=_model())
        assert stub.wait_for_runs([out.run_id], timeout=10)
        sent = json.dumps(stub.runs)
    stored = _stored_bytes(settings.state_dir)
    assert out.run_id.encode() in stored  # the trace is there...
    assert b"[REDACTED:" in stored  # ...redacted
    for secret in PLANTED:
        assert secret.encode() not in stored, secret
        assert secret not in sent, secret
    assert "[REDACTED:" in sent


def test_redaction_can_be_turned_off(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    settings = load_settings(repo, env={}, overrides={"tracing": {"redact": False}})
    run_task(settings, f"checkout-api times out; mail {EMAIL}", scenario="lambda_timeout", model=_model())
    assert EMAIL.encode() in _stored_bytes(settings.state_dir)
