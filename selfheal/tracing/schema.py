"""Trace records shaped like LangSmith's own objects (``langsmith.schemas``).

The field names are LangSmith's (Run, TracerSession, Feedback, Dataset,
Example) so that records read from the local store and from LangSmith are
interchangeable, and a LangSmith object validates straight into a record
(``RunRecord.model_validate(ls_run.model_dump())``): unknown fields are
ignored rather than rejected, because the other side adds fields over time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    ValidationInfo,
    field_validator,
)

#: Values of ``RunRecord.status`` (LangSmith may add more; they are kept as given).
RunStatus = Literal["success", "error", "pending"]
ScoreType = StrictBool | StrictInt | StrictFloat | None
ValueType = dict[str, Any] | str | StrictBool | StrictInt | StrictFloat | None


def utcnow() -> datetime:
    """Aware UTC now: every stored timestamp is UTC so text order is time order."""
    return datetime.now(UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class RunRecord(_Record):
    """One span of a trace: a graph, node, model call or tool call (LangSmith ``Run``)."""

    id: UUID
    name: str
    run_type: str  # llm | chain | tool | retriever | embedding | prompt | parser
    start_time: datetime
    end_time: datetime | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    error: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    events: list[dict[str, Any]] = Field(default_factory=list)
    parent_run_id: UUID | None = None
    trace_id: UUID
    dotted_order: str
    session_id: UUID | None = None
    status: str = "success"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reference_example_id: UUID | None = None
    # Derived from parent links when a trace is read; never stored.
    child_run_ids: list[UUID] | None = Field(default=None, exclude=True)

    @field_validator("inputs", "extra", "tags", "events", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any, info: ValidationInfo) -> Any:
        """LangSmith sends null for empty collections."""
        if v is None:
            return [] if info.field_name in ("tags", "events") else {}
        return v

    @property
    def metadata(self) -> dict[str, Any]:
        """``extra["metadata"]``, where LangSmith keeps run metadata."""
        md = self.extra.get("metadata")
        return md if isinstance(md, dict) else {}

    @property
    def is_root(self) -> bool:
        return self.parent_run_id is None

    @property
    def latency(self) -> float | None:
        """Wall-clock seconds, or None while the run is pending."""
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()


class ProjectRecord(_Record):
    """A project (LangSmith ``TracerSession``); experiments are projects with a dataset."""

    id: UUID = Field(default_factory=uuid4)
    name: str
    start_time: datetime = Field(default_factory=utcnow)
    end_time: datetime | None = None
    description: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    reference_dataset_id: UUID | None = None


class FeedbackSource(_Record):
    """Who gave the feedback (LangSmith ``FeedbackSourceBase``): api, model or app/user."""

    type: str = "api"
    metadata: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = None


class FeedbackRecord(_Record):
    """A score or correction attached to a run (LangSmith ``Feedback``)."""

    id: UUID = Field(default_factory=uuid4)
    run_id: UUID | None = None
    trace_id: UUID | None = None
    key: str = Field(min_length=1)
    score: ScoreType = None
    value: ValueType = None
    comment: str | None = None
    correction: str | dict[str, Any] | None = None
    created_at: datetime = Field(default_factory=utcnow)
    # LangSmith calls it ``feedback_source``; both names are accepted.
    source: FeedbackSource | None = Field(default=None, alias="feedback_source")


class DatasetRecord(_Record):
    """A named collection of examples (LangSmith ``Dataset``)."""

    id: UUID = Field(default_factory=uuid4)
    name: str = Field(min_length=1)
    description: str | None = None
    data_type: str = "kv"
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExampleRecord(_Record):
    """One input/reference-output pair of a dataset (LangSmith ``Example``).

    Splits live where LangSmith keeps them: ``metadata["dataset_split"]``.
    """

    id: UUID = Field(default_factory=uuid4)
    dataset_id: UUID
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    modified_at: datetime | None = None
    source_run_id: UUID | None = None

    @property
    def splits(self) -> list[str]:
        split = self.metadata.get("dataset_split")
        if split is None:
            return []
        return [split] if isinstance(split, str) else [str(s) for s in split]


def link_children(runs: list[RunRecord]) -> list[RunRecord]:
    """Fill each run's ``child_run_ids`` from the others' parent ids (both backends' traces)."""
    children: dict[UUID, list[UUID]] = {r.id: [] for r in runs}
    for r in runs:
        if r.parent_run_id in children:
            children[r.parent_run_id].append(r.id)
    for r in runs:
        r.child_run_ids = children[r.id]
    return runs
