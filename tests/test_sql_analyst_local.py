"""sql_analyst on the embedded model, end to end (marked: needs llama-cpp-python and the weights).

The real model in its own process answers one question with the real tools on
the generated database; the verdict comes from the query's result, whatever
the model claims. Which verdict it is depends on the model, so the test
asserts what must hold either way.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from selfheal.agent.runner import run_task
from selfheal.config import load_settings
from selfheal.models import local_process

REPO = Path(__file__).resolve().parents[1]


def _available() -> bool:
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sql_analyst") is None:
        return False
    from selfheal.models.local_weights import local_weights_available

    return local_weights_available()


@pytest.mark.local_model
@pytest.mark.skipif(not _available(), reason="llama-cpp-python, the weights or sql_analyst not installed")
@pytest.mark.timeout(600)
def test_the_embedded_model_answers_a_question_verified_by_its_result(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SQL_ANALYST_CACHE_DIR", str(tmp_path / "db"))
    for name in ("prompts", "cheatsheet"):
        shutil.copytree(REPO / name / "sql_analyst", tmp_path / name / "sql_analyst")
    shutil.copytree(REPO / "evals" / "sql_analyst", tmp_path / "evals" / "sql_analyst",
                    ignore=shutil.ignore_patterns("replay*", "experiments"))
    (tmp_path / "selfheal.yaml").write_text(
        "agent: sql_analyst\nmodel: {provider: local, max_tokens: 256}\nthresholds: {max_steps: 4}\n"
        "embeddings: {provider: none}\n"
    )
    settings = load_settings(tmp_path, env={})
    try:
        out = run_task(settings, scenario="orders_count_fy2024", learn=False)
    finally:
        local_process.close_all()
    assert out.verified and out.model.startswith("local:")
    assert out.tool_calls and {c["name"] for c in out.tool_calls} <= {"list_tables", "describe_table", "run_sql"}
    assert out.checks and out.checks[0]["description"] == "result matches gold"
    assert out.usage["input_tokens"] > 500
