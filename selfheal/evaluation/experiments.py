"""Experiments stored LangSmith's way, in the local trace store (and in LangSmith when configured).

An experiment is a tracer session (project) named
``<dataset>-<split>-<short hash>-<timestamp>`` whose ``reference_dataset_id``
is the dataset, whose root runs carry their example's
``reference_example_id``, and whose evaluator scores are feedback on those
root runs (key = evaluator key). That is exactly what LangSmith's own
``evaluate()`` produces, so the same experiment reads the same in both places.
The whole :class:`ExperimentResult` (what reports and comparisons need) is
kept beside it in the store's ``experiments`` table.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from selfheal.errors import SelfhealError
from selfheal.evaluation.results import ExperimentResult
from selfheal.tracing.schema import (
    DatasetRecord,
    ExampleRecord,
    FeedbackRecord,
    FeedbackSource,
    ProjectRecord,
    utcnow,
)

if TYPE_CHECKING:
    from langsmith import Client

    from selfheal.evaluation.dataset import Dataset
    from selfheal.tracing.store import LocalTraceStore

logger = logging.getLogger(__name__)


def experiment_name(dataset: Dataset, split: str, when: datetime | None = None) -> str:
    """``<dataset>-<split>-<short hash>-<UTC timestamp>``: sortable, and names what was evaluated."""
    stamp = (when or utcnow()).strftime("%Y%m%dT%H%M%S")
    return f"{dataset.name}-{split}-{dataset.short_hash}-{stamp}"


def unique_experiment_name(store: LocalTraceStore, base: str) -> str:
    """``base``, or ``base-2``, ``base-3`` ... when a project of that name exists already."""
    name, n = base, 1
    while store.get_project(name) is not None:
        n += 1
        name = f"{base}-{n}"
    return name


def sync_dataset_to_store(store: LocalTraceStore, dataset: Dataset) -> DatasetRecord:
    """The dataset and its examples (same ids as in the files and in LangSmith) in the store."""
    from selfheal.evaluation.langsmith_sync import example_payload

    record = store.ensure_dataset(
        dataset.name,
        description=dataset.spec.description or None,
        metadata={"agent": dataset.spec.agent},
    )
    rows = []
    for ex in dataset.examples:
        payload = example_payload(dataset, ex)
        rows.append(
            ExampleRecord(
                id=UUID(ex.id),
                dataset_id=record.id,
                inputs=payload["inputs"],
                outputs=payload["outputs"],
                metadata={**payload["metadata"], "dataset_split": [ex.split]},
            )
        )
    store.upsert_examples(rows)
    return record


def create_experiment_session(
    store: LocalTraceStore, dataset: Dataset, name: str, metadata: dict[str, Any]
) -> ProjectRecord:
    """The experiment's tracer session, linked to the dataset (created before any run is traced)."""
    record = sync_dataset_to_store(store, dataset)
    return store.ensure_project(
        name,
        description=f"selfheal eval of {dataset.name}",
        metadata=metadata,
        reference_dataset_id=record.id,
    )


def create_langsmith_experiment(
    client: Client, dataset: Dataset, name: str, metadata: dict[str, Any]
) -> dict[str, str]:
    """Push the dataset and create the experiment project with ``reference_dataset_id`` in LangSmith."""
    from selfheal.evaluation.langsmith_sync import push_dataset

    pushed = push_dataset(client, dataset)
    project = client.create_project(
        name,
        description=f"selfheal eval of {dataset.name}",
        metadata=metadata,
        reference_dataset_id=pushed.dataset_id,
    )
    return {"dataset_id": str(pushed.dataset_id), "project_id": str(project.id)}


FeedbackSink = Callable[[FeedbackRecord], Any]


def save_experiment(
    store: LocalTraceStore, result: ExperimentResult, *, add_feedback: FeedbackSink | None = None
) -> None:
    """Store the result JSON, and each evaluator score as feedback on its example's root run.

    ``add_feedback`` replaces ``store.add_feedback`` (e.g. a tracing handle's,
    which also delivers to LangSmith). Saving again updates the JSON and adds
    no feedback twice.
    """
    first_time = store.get_experiment(result.experiment_id) is None
    if first_time:
        sink = add_feedback or store.add_feedback
        source = FeedbackSource(type="model", metadata={"experiment": result.name})
        for ex in result.results:
            if ex.run_id is None:
                continue
            records = [
                FeedbackRecord(run_id=UUID(ex.run_id), key=s.key, score=float(s.score), comment=s.comment, source=source)
                for s in ex.scores
            ]
            records.append(
                FeedbackRecord(
                    run_id=UUID(ex.run_id), key="passed", score=1.0 if ex.passed else 0.0,
                    comment=f"weighted score {ex.score:.2f}", source=source,
                )  # fmt: skip
            )
            for fb in records:
                try:
                    sink(fb)
                except Exception as exc:  # a missing run must not lose the experiment
                    logger.warning("feedback %s on run %s not stored: %s", fb.key, ex.run_id, exc)
    store.put_experiment(
        id=result.experiment_id,
        name=result.name,
        dataset=result.dataset,
        split=result.split,
        started_at=result.started_at.isoformat(),
        # Answers, errors and scorer comments quote tool output: stored redacted, like traces.
        result=(store.redactor.redact_deep(result) if store.redactor else result).model_dump_json(),
    )


def load_experiment(store: LocalTraceStore, name_or_id: str) -> ExperimentResult:
    """A stored experiment by name or session id; unknown names list the latest ones."""
    raw = store.get_experiment(name_or_id)
    if raw is None:
        known = [e.name for e in list_experiments(store)[:5]]
        listing = ", ".join(known) if known else "none stored yet: run `selfheal eval`"
        raise SelfhealError(f"unknown experiment '{name_or_id}' (latest: {listing})")
    return ExperimentResult.model_validate_json(raw)


def list_experiments(store: LocalTraceStore, dataset: str | None = None) -> list[ExperimentResult]:
    """Stored experiments (of one dataset), newest first."""
    return [ExperimentResult.model_validate_json(raw) for raw in store.list_experiment_results(dataset)]
