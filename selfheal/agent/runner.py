"""Run one task through the workflow: the library call behind ``selfheal run``.

Loads context and cheatsheet from the repository's files, opens the domain's
environment, invokes the graph with the local tracer and a SQLite
checkpointer, then stamps the root run with the outcome metadata.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings
    from selfheal.agent.learning import Learner
    from selfheal.agents.protocol import AgentPlugin, AgentSession


@dataclass
class RunOutcome:
    """What a user (or a test, or the eval runner) needs to know about one run."""

    run_id: str
    task: str
    task_type: str
    scenario: str | None
    success: bool
    reason: str
    error_type: str | None
    verified: bool
    steps: int
    stop_reason: str
    tool_calls: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    retrieved_entries: list[str]
    used_entries: list[str]
    final_answer: str
    route: str
    improvement_suggestions: list[str]
    usage: dict[str, int]
    latency_s: float
    model: str
    context_version: str
    cheatsheet_version: str
    trace_store: str
    efficiency_score: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    model_s: float | None = None  # the model's generation time, live or as recorded (ExecutionRecord.model_s)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def redacted(self, settings: Settings) -> RunOutcome:
        """A copy fit to print: secrets in the task, tool results and answer masked.

        The outcome holds tool outputs and model text verbatim (evaluators need
        them); whatever shows it to a user or a log goes through this first.
        Unchanged when ``tracing.redact`` is off.
        """
        if not settings.tracing.redact:
            return self
        from selfheal.redact import make_redactor

        return RunOutcome(**make_redactor(settings).redact(self.to_dict()))


def _recent_successes(store: Any, project: str, task_type: str, limit: int) -> list[bool]:
    """Success flags of the latest root runs of this task type, oldest first."""
    runs = store.list_runs(project, is_root=True, metadata={"task_type": task_type}, limit=limit)
    flags = [
        bool((r.extra or {}).get("metadata", {}).get("success"))
        for r in runs
        if "success" in (r.extra or {}).get("metadata", {})
    ]
    return list(reversed(flags))


def _learning_summary(learning: dict[str, Any]) -> dict[str, Any]:
    """What curation did in this run, for the root run's metadata (queryable, reviewable)."""
    return {k: learning.get(k) or [] for k in ("applied", "rejected", "errors")}


def run_task(
    settings: Settings,
    task: str | None = None,
    *,
    scenario: str | None = None,
    model: BaseChatModel | None = None,
    learn: bool | None = None,
    metadata: dict[str, Any] | None = None,
    tags: list[str] | None = None,
    session: AgentSession | None = None,
    project: str | None = None,
    reference_example_id: str | None = None,
    learner: Learner | None = None,
    agent: AgentPlugin | None = None,
) -> RunOutcome:
    """Run ``task`` (or the scenario's task) once, traced and checkpointed.

    ``model`` and ``session`` inject an already-built chat model or an already
    open environment (tests, benchmarks, the eval runner); the caller then owns
    the session and closes it. ``project`` traces into another project than
    ``tracing.project`` (an experiment), and ``reference_example_id`` links the
    root run to its dataset example, as LangSmith experiments do. ``learner``
    does the online learning of a learning run (default: the one
    ``settings.learner_factory`` builds). ``agent`` runs this plug-in instead
    of the one settings name (e.g. a team's graph from ``selfheal.wrap_graph``). A run that raises carries its root
    run id as ``exc.selfheal_run_id``.
    """
    from langsmith import uuid7

    from selfheal.agent.learning import make_learner
    from selfheal.agent.record import last_record
    from selfheal.agent.state import RunContext
    from selfheal.agent.workflow import checkpointed_workflow
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.context.loader import load_context
    from selfheal.agents.registry import get_agent
    from selfheal.errors import ModelError, SelfhealError
    from selfheal.models.providers import make_chat_model, model_identity
    from selfheal.redact import make_redactor
    from selfheal.tracing.callbacks import TracingHandle, tracing_callbacks
    from selfheal.tracing.store import LocalTraceStore
    from selfheal.versioning import content_version

    if not task and not scenario and session is None:
        raise SelfhealError("give a task, or --scenario NAME to run a scenario's task")

    agent_context = load_context(settings.prompts_dir)
    cheatsheet = load_cheatsheet(settings.cheatsheet_dir)
    context_version = content_version(settings.prompts_dir, settings.root)
    cheatsheet_version = content_version(settings.cheatsheet_dir, settings.root)
    identity = model_identity(settings)
    learning = settings.learning if learn is None else learn
    if learning and learner is None:
        learner = make_learner(settings)

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = LocalTraceStore.from_settings(settings)
    owns_session = session is None
    tracing: TracingHandle | None = None
    try:
        if session is None:
            session = (agent or get_agent(settings)).open(settings, task=task, scenario=scenario)
        chat_model = model if model is not None else make_chat_model(settings)
        recent = _recent_successes(
            store, settings.tracing.project, session.task_type, settings.thresholds.recent_runs
        )
        run_ctx = RunContext(
            settings=settings,
            model=chat_model,
            session=session,
            agent_context=agent_context,
            cheatsheet=cheatsheet,
            context_version=context_version,
            cheatsheet_version=cheatsheet_version,
            recent_successes=recent,
            learning=learning,
            model_identity=identity,
            learner=learner if learning else None,
        )
        run_id: uuid.UUID = uuid7()
        tracing = tracing_callbacks(
            settings,
            store,
            project=project,
            reference_example_id=uuid.UUID(str(reference_example_id)) if reference_example_id else None,
        )
        start_meta = {
            "task_type": session.task_type,
            "scenario": session.scenario,
            "agent": settings.agent,
            "model": identity,
            "context_version": context_version,
            "cheatsheet_version": cheatsheet_version,
            **(metadata or {}),
        }
        config = tracing.config(
            run_id=run_id,
            run_name=f"selfheal:{settings.agent}",
            tags=["selfheal", settings.agent, *(tags or [])],
            metadata=start_meta,
            configurable={"thread_id": str(run_id)},
        )
        graph = checkpointed_workflow(
            settings.checkpoint_path, make_redactor(settings) if settings.tracing.redact else None
        )
        initial = {
            "messages": [],
            "cheatsheet": {},
            "context": {},
            "task": session.task,
            "task_type": session.task_type,
            "execution_history": [],
            "improvement_suggestions": [],
            "needs_improvement": False,
            "route": "end",
        }
        started = time.perf_counter()
        try:
            with tracing.context():
                # One checkpoint write when the graph exits instead of one per step (9 per run).
                final = graph.invoke(initial, config=config, context=run_ctx, durability="exit")
        except Exception as exc:
            # The tracer has stored the errored tree; stamp the root so analysis sees it.
            error_type = "model_error" if isinstance(exc, ModelError) else type(exc).__name__
            tracing.merge_metadata(
                str(run_id),
                {"success": False, "error_type": error_type, "latency": round(time.perf_counter() - started, 4)},
            )
            try:
                exc.selfheal_run_id = str(run_id)  # type: ignore[attr-defined]
            except (AttributeError, TypeError):  # exceptions with __slots__
                pass
            raise
        latency = round(time.perf_counter() - started, 4)
        record = last_record(final)
        evaluation = record.judged
        learning_record = record.learning.model_dump(mode="json") if record.learning is not None else None
        tracing.merge_metadata(
            str(run_id),
            {
                "success": evaluation.success,
                "error_type": evaluation.error_type,
                "latency": latency,
                "steps": record.steps,
                "used_entries": record.used_entries,
                "retrieved_entries": record.retrieved_entries,
                "route": final.get("route", "end"),
                **({"learning": _learning_summary(learning_record)} if learning_record else {}),
            },
        )
        return RunOutcome(
            run_id=str(run_id),
            task=session.task,
            task_type=session.task_type,
            scenario=session.scenario,
            success=evaluation.success,
            reason=evaluation.reason,
            error_type=evaluation.error_type,
            verified=evaluation.verified,
            steps=record.steps,
            stop_reason=record.stop_reason,
            tool_calls=[c.model_dump(mode="json") for c in record.tool_calls],
            checks=[c.model_dump(mode="json") for c in evaluation.checks],
            retrieved_entries=record.retrieved_entries,
            used_entries=record.used_entries,
            final_answer=record.final_answer,
            route=final.get("route", "end"),
            improvement_suggestions=final.get("improvement_suggestions", []),
            usage=record.usage,
            latency_s=latency,
            model=identity,
            context_version=context_version,
            cheatsheet_version=cheatsheet_version,
            trace_store=str(settings.trace_store_path),
            efficiency_score=evaluation.efficiency_score,
            extra={"learning": learning_record} if learning_record else {},
            model_s=record.model_s,
        )
    finally:
        if owns_session and session is not None:
            session.close()
        if tracing is not None:
            tracing.finish()  # local write now; LangSmith bounded by tracing.langsmith_exit_timeout_s
        store.close()
