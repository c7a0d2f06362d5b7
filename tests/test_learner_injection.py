"""Online learning is handed to the graph: a Learner object, never an import of optimize/ by agent/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from selfheal.agent.learning import LearningOutcome
from selfheal.agent.runner import run_task
from selfheal.config import load_settings
from selfheal.errors import ConfigError
from selfheal.models.fakes import ScriptedChatModel
from helpers.curation import make_repo



@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path)


def _wrong_fix() -> ScriptedChatModel:
    call = AIMessage(content="", tool_calls=[{"name": "update_memory", "id": "c0",
                                              "args": {"function_name": "checkout-api", "memory_mb": 1024}}])
    return ScriptedChatModel([call, "Fixed it. USED: none"])


class RecordingLearner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def count_success(self, rc: Any, *, run_id: str, used_entries: list[str], verified: bool) -> list[str]:
        self.calls.append("count_success")
        return []

    def learn(self, state: Any, rc: Any, *, run_id: str, config: Any = None) -> LearningOutcome:
        self.calls.append(f"learn:{state['task_type']}")
        return LearningOutcome(record={"applied": ["ADD heur-x"], "counted": []}, suggestions=["learned: heur-x"])


def test_a_handed_in_learner_curates_the_failed_run(repo: Path) -> None:
    learner = RecordingLearner()
    out = run_task(load_settings(repo, env={}), scenario="lambda_timeout", model=_wrong_fix(), learn=True,
                   learner=learner)
    assert not out.success and out.route == "curate"
    assert learner.calls == ["learn:lambda_timeout"]
    assert "learned: heur-x" in out.improvement_suggestions
    assert out.extra["learning"]["applied"] == ["ADD heur-x"]


def test_no_learner_factory_means_no_online_learning(repo: Path) -> None:
    settings = load_settings(repo, env={"SELFHEAL_LEARNER_FACTORY": ""})
    assert settings.learner_factory in (None, "")
    out = run_task(settings, scenario="lambda_timeout", model=_wrong_fix(), learn=True)
    assert any("no learner" in s for s in out.improvement_suggestions)


def test_a_broken_learner_factory_is_a_config_error(repo: Path) -> None:
    settings = load_settings(repo, env={"SELFHEAL_LEARNER_FACTORY": "no_such_mod:make"})
    with pytest.raises(ConfigError, match="learner_factory no_such_mod:make: ModuleNotFoundError"):
        run_task(settings, scenario="lambda_timeout", model=_wrong_fix(), learn=True)
