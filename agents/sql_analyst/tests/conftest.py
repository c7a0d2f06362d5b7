from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from sql_analyst.generate import database_path
from sql_analyst.plugin import make_agent
from sql_analyst.questions import load_questions

REPO = Path(__file__).resolve().parents[3]
SCENARIOS = REPO / "evals" / "sql_analyst" / "scenarios"
PROMPTS = REPO / "prompts" / "sql_analyst"


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sql-cache")


@pytest.fixture(scope="session")
def db_path(cache_dir: Path) -> Path:
    return database_path(cache_dir)


@pytest.fixture(scope="session")
def questions():
    return load_questions(SCENARIOS)


@pytest.fixture
def agent(cache_dir: Path, db_path: Path):
    return make_agent(cache_dir=cache_dir)


@pytest.fixture
def settings(tmp_path: Path):
    return SimpleNamespace(scenarios_dir=SCENARIOS, state_dir=tmp_path / "state")
