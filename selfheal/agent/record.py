"""The typed record of one run: what the agent did, how it was judged, what learning did.

One model, defined once, read by the graph's nodes and edges, the runner
(``RunOutcome`` and the root run's metadata), and the learner's digest —
instead of dicts read by string keys in each of them. In the graph's state
(checkpoints) and in traces it travels as its JSON dump (``to_state``), so a
stored trace is still plain data; :meth:`ExecutionRecord.of` reads one back,
tolerating records written by older versions (missing keys take defaults).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ToolCallRecord(_Record):
    """One tool call: at which model turn, with what, and what came back (a preview)."""

    step: int = 0
    name: str = ""
    args: Any = None
    status: str = "success"   # success | error
    output: str = ""


class CheckRecord(_Record):
    description: str = ""
    passed: bool = False
    detail: str = ""


class Evaluation(_Record):
    """The evidence-based verdict of the evaluate node (never the model's claim)."""

    success: bool = False
    reason: str = ""
    error_type: str | None = None
    efficiency_score: float = 0.0
    tool_errors: int = 0
    checks: list[CheckRecord] = Field(default_factory=list)
    verified: bool = False
    improvement_opportunities: list[str] = Field(default_factory=list)


class LearningRecord(_Record):
    """What online learning did for this run."""

    applied: list[Any] = Field(default_factory=list)
    rejected: list[Any] = Field(default_factory=list)
    errors: list[Any] = Field(default_factory=list)
    counted: list[str] = Field(default_factory=list)
    reflection: Any = None
    triggers: list[str] = Field(default_factory=list)
    disabled: bool = False


class ExecutionRecord(_Record):
    """One execution of a task, then its evaluation and learning (filled in by later nodes)."""

    task: str = ""
    task_type: str = "general"
    steps: int = 0
    stop_reason: str = "answered"
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    final_answer: str = ""
    #: observations the loop gave back when the model tried to stop early (see agent/nudges.py)
    nudges: list[str] = Field(default_factory=list)
    #: replies that repeated the call just made (asked again with sampling, then refused; see agent/nudges.py)
    repeats: int = 0
    used_entries: list[str] = Field(default_factory=list)
    unknown_entries_claimed: list[str] = Field(default_factory=list)
    retrieved_entries: list[str] = Field(default_factory=list)
    usage: dict[str, int] = Field(default_factory=lambda: {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0})
    system_prompt_tokens: int = 0
    latency_s: float = 0.0
    #: the model's generation time over the run's replies, live or as recorded (None: unknown);
    #: a replayed run's latency is ~0, this is what it cost when its responses were generated
    model_s: float | None = None
    evaluation: Evaluation | None = None
    learning: LearningRecord | None = None

    @classmethod
    def of(cls, data: ExecutionRecord | Mapping[str, Any]) -> ExecutionRecord:
        """A record from the state / a stored trace (or the record itself)."""
        return data if isinstance(data, ExecutionRecord) else cls.model_validate(dict(data))

    def to_state(self) -> dict[str, Any]:
        """The JSON form kept in the graph's state, checkpoints and traces."""
        return self.model_dump(mode="json")

    @property
    def judged(self) -> Evaluation:
        """The evaluation (an unevaluated record reads as a failure with no reason)."""
        return self.evaluation or Evaluation()


def last_record(state: Mapping[str, Any]) -> ExecutionRecord:
    """The latest execution record of a graph state."""
    history = state.get("execution_history") or []
    if not history:
        raise ValueError("the run has no execution record (execute_task did not run)")
    return ExecutionRecord.of(history[-1])


def with_last(state: Mapping[str, Any], record: ExecutionRecord) -> list[dict[str, Any]]:
    """The state's execution history with its latest record replaced by ``record``."""
    history = list(state.get("execution_history") or [])
    history[-1] = record.to_state()
    return history
