"""The records an evaluation produces: one place that defines their schema.

An :class:`ExperimentResult` is what ``selfheal eval`` stores in the trace store
(as an experiment session), pairs against another experiment, and renders as a
report. Everything a reviewer needs to reproduce a number is on it: the model,
the dataset's content hash, and the context and cheatsheet versions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class EvaluatorScore(BaseModel):
    """One evaluator's verdict on one example."""

    model_config = ConfigDict(extra="forbid")

    key: str                      # e.g. "state_checks", "contains", "tool_calls", "limits.steps", "judge"
    score: float                  # 0.0 .. 1.0
    passed: bool
    weight: float = 1.0
    required: bool = False        # a failed required evaluator fails the example whatever the score
    comment: str = ""


class ExampleResult(BaseModel):
    """The outcome of one example in one experiment."""

    model_config = ConfigDict(extra="forbid")

    example_id: str               # stable id from the dataset file (kept across LangSmith push/pull)
    name: str                     # example (scenario) name
    split: Literal["train", "dev", "test"]
    task_type: str
    passed: bool                  # the weighted evaluators' pass/fail
    score: float                  # weighted score 0..1
    scores: list[EvaluatorScore] = Field(default_factory=list)
    run_id: str | None = None     # root run of the traced agent run (None if it never started)
    # "ok": evaluated; anything else produced no verdict (and never counts as a pass):
    # "error" (the run failed), "timeout", "cache_miss" (replay had no recorded response).
    status: Literal["ok", "error", "timeout", "cache_miss"] = "ok"
    error: str | None = None      # one line: why the example could not be evaluated
    attempts: int = 1
    latency_s: float = 0.0
    model_s: float | None = None  # the model's generation time, live or as recorded (None: not known)
    steps: int = 0
    total_tokens: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retrieved_entries: list[str] = Field(default_factory=list)
    used_entries: list[str] = Field(default_factory=list)
    final_answer: str = ""


class ExperimentResult(BaseModel):
    """One evaluation of one version of the context and cheatsheet on a dataset split."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: str            # the experiment's session id in the trace store
    name: str                     # e.g. "lambda_ops-test-3f2a1c0"
    dataset: str
    dataset_hash: str             # sha256 over the dataset's files (content, not mtime)
    split: str                    # "train" | "dev" | "test" | "all"
    model: str                    # model identity (provider:name@endpoint)
    context_version: str
    cheatsheet_version: str
    git_ref: str | None = None    # the ref evaluated ("working tree" when None)
    cache_mode: str = "off"
    jobs: int = 1
    started_at: datetime
    finished_at: datetime
    results: list[ExampleResult] = Field(default_factory=list)
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def success_rate(self) -> float:
        return self.passed / self.n if self.results else 0.0
