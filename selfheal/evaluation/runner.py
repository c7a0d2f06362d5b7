"""Run a dataset split through the agent, concurrently, and evaluate every run.

Each example is one ``run_task`` with learning off (an evaluation must never
change the cheatsheet), traced into the experiment's session with its
``reference_example_id``. Examples run on a pool of ``jobs`` workers; each
worker keeps its own chat model (``model_factory()`` once per worker thread).

Robustness, because one bad example must not cost the whole evaluation:

- a per-example ``timeout_s``: the attempt runs on its own daemon thread and
  the worker stops waiting at the deadline (``status="timeout"``); the stuck
  thread may finish later, its result is discarded and its model is never
  handed to another example;
- transient model failures (connection, timeout, HTTP 5xx/429) are retried up
  to ``retries`` times with backoff (tenacity); anything else, or a transient
  failure that persists, is recorded as ``status="error"`` with one line;
- Ctrl-C cancels what has not started and raises :class:`EvalInterrupted`
  carrying the finished part.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from selfheal.errors import CacheMissError, ConfigError, FileFormatError, ModelError, SelfhealError
from selfheal.evaluation.dataset import Dataset, Example
from selfheal.evaluation.custom import load_evaluator
from selfheal.evaluation.evaluators import evaluate_outcome
from selfheal.evaluation.results import ExampleResult, ExperimentResult
from selfheal.tracing.schema import utcnow

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.agent.runner import RunOutcome
    from selfheal.config import Settings

#: Backoff between retries: RETRY_BASE_S, 2x, 4x ... capped at RETRY_MAX_S.
RETRY_BASE_S = 0.5
RETRY_MAX_S = 8.0
_POLL_S = 0.05

_TRANSIENT_MARKERS = (
    "timed out",
    "timeout",
    "cannot reach",
    "connection",
    "rate limit",
    "http 429",
    "http 500",
    "http 502",
    "http 503",
    "http 504",
    "temporarily",
    "overloaded",
)


class _Cancelled(Exception):
    """The experiment was interrupted before this example's attempt began."""


class EvalInterrupted(SelfhealError):
    """Ctrl-C during an evaluation: pending examples were cancelled; ``partial`` holds the rest."""

    exit_code = 130

    def __init__(self, message: str, partial: ExperimentResult) -> None:
        super().__init__(message)
        self.partial = partial


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a model failure of the network or the server, not of the request.

    An explicit ``transient`` attribute wins; otherwise the ModelError's message
    (selfheal.models.openai_chat words them: "timed out", "cannot reach",
    "HTTP 5xx", "rate limiting (HTTP 429)") and its cause chain decide.
    """
    flag = getattr(exc, "transient", None)
    if isinstance(flag, bool):
        return flag
    if not isinstance(exc, ModelError):
        return False
    if "cache" in type(exc).__name__.lower():  # CacheMissError: replaying cannot succeed later
        return False
    text = str(exc).lower()
    if any(m in text for m in _TRANSIENT_MARKERS):
        return True
    cause = exc.__cause__ or exc.__context__
    while cause is not None:
        name = type(cause).__name__.lower()
        if "timeout" in name or "connection" in name or "ratelimit" in name:
            return True
        status = getattr(cause, "status_code", None)
        if isinstance(status, int) and (status == 429 or status >= 500):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """``exc`` or the first exception in its cause chain that is one of ``kinds``."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, kinds):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


def is_configuration_error(exc: BaseException) -> bool:
    """A bad setting or file, not a bad example: the whole evaluation stops with it (exit 2).

    Reporting it as one errored example per row would let a misconfigured
    eval look like an agent that fails, or, without ``--gate``, exit 0.
    """
    return _caused_by(exc, (ConfigError, FileFormatError)) is not None


class EvalConfigurationError(SelfhealError):
    """An example hit a configuration error; the evaluation was stopped."""


def _one_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    label = type(exc).__name__
    return (f"{label}: {text}" if text else label)[:300]


@dataclass
class _Job:
    index: int
    example: Example
    repetition: int


class _Workers:
    """Per-thread chat models; a model whose run timed out is never reused."""

    def __init__(self, factory: Callable[[], BaseChatModel]) -> None:
        self.factory = factory
        self._local = threading.local()

    def model(self) -> BaseChatModel:
        model = getattr(self._local, "model", None)
        if model is None:
            model = self._local.model = self.factory()
        return model

    def discard(self) -> None:
        self._local.model = None


class _Run:
    """Everything the worker threads share for one experiment."""

    def __init__(
        self,
        settings: Settings,
        dataset: Dataset,
        name: str,
        workers: _Workers,
        timeout_s: float | None,
        retries: int,
        judge_model: BaseChatModel | None,
        metadata: dict[str, Any],
    ) -> None:
        self.settings = settings
        self.dataset = dataset
        self.name = name
        self.workers = workers
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.judge_model = judge_model
        self.metadata = metadata
        self.cancel = threading.Event()
        self.fatal: BaseException | None = None  # a configuration error: stops the experiment
        self._judge_lock = threading.Lock()
        # A team's own evaluators, imported once before any example runs (a bad one is a ConfigError).
        self.custom = [(spec, load_evaluator(spec.function, settings.root)) for spec in dataset.spec.evaluators.custom]

    # -- one example ---------------------------------------------------------
    def work(self, job: _Job) -> ExampleResult | None:
        """Run one example on this worker; None if cancelled before it finished."""
        if self.cancel.is_set():
            return None
        try:
            model = self.workers.model()
        except Exception as exc:  # no model, no example can run: a configuration error, not N failures
            self.fatal = self.fatal or exc
            self.cancel.set()
            return None
        done = threading.Event()
        box: dict[str, Any] = {"attempts": 0}

        def attempt() -> None:
            try:
                box["outcome"] = self._run_with_retries(job.example, model, box)
            except BaseException as exc:  # recorded, never raised into the pool
                box["error"] = exc
            finally:
                done.set()

        started = time.perf_counter()
        thread = threading.Thread(target=attempt, name=f"eval:{job.example.name}", daemon=True)
        thread.start()
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while not done.wait(_POLL_S):
            if self.cancel.is_set():
                self.workers.discard()
                return None
            if deadline is not None and time.monotonic() >= deadline:
                self.workers.discard()  # the stuck thread still holds it
                return self._failed(
                    job, "timeout", f"no result within {self.timeout_s:g}s", box, time.perf_counter() - started
                )
        if isinstance(box.get("error"), _Cancelled):
            return None
        if "error" in box:
            exc = box["error"]
            if is_configuration_error(exc):
                self.fatal = self.fatal or exc
                self.cancel.set()
                return None
            status = "cache_miss" if _caused_by(exc, (CacheMissError,)) is not None else "error"
            return self._failed(job, status, _one_line(exc), box, time.perf_counter() - started,
                                run_id=getattr(exc, "selfheal_run_id", None))  # fmt: skip
        return self._evaluated(job, box["outcome"], box["attempts"])

    def _run_with_retries(self, ex: Example, model: BaseChatModel, box: dict[str, Any]) -> RunOutcome:
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

        from selfheal.agent.runner import run_task

        retrying = Retrying(
            stop=stop_after_attempt(self.retries + 1),
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=RETRY_BASE_S, max=RETRY_MAX_S),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                if self.cancel.is_set():
                    raise _Cancelled()
                box["attempts"] += 1
                return run_task(
                    self.settings,
                    ex.task,
                    scenario=ex.scenario or None,
                    model=model,
                    learn=False,
                    metadata={**self.metadata, "example_id": ex.id, "split": ex.split},
                    tags=["eval"],
                    project=self.name,
                    reference_example_id=ex.id,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _evaluated(self, job: _Job, outcome: RunOutcome, attempts: int) -> ExampleResult:
        ex = job.example
        judge = self.judge_model
        if judge is not None:
            with self._judge_lock:  # one judge model shared by all workers
                passed, score, scores = evaluate_outcome(ex, outcome, self.dataset.spec.evaluators, judge_model=judge,
                                                         custom=self.custom)
        else:
            passed, score, scores = evaluate_outcome(ex, outcome, self.dataset.spec.evaluators, custom=self.custom)
        usage = outcome.usage or {}
        return ExampleResult(
            example_id=ex.id,
            name=ex.name,
            split=ex.split,
            task_type=ex.task_type,
            passed=passed,
            score=score,
            scores=scores,
            run_id=outcome.run_id,
            status="ok",
            attempts=max(1, attempts),
            latency_s=outcome.latency_s,
            model_s=outcome.model_s,
            steps=outcome.steps,
            total_tokens=int(usage.get("total_tokens", 0) or 0),
            prompt_tokens=int(usage.get("input_tokens", 0) or 0),
            completion_tokens=int(usage.get("output_tokens", 0) or 0),
            retrieved_entries=list(outcome.retrieved_entries),
            used_entries=list(outcome.used_entries),
            final_answer=outcome.final_answer,
        )

    def _failed(
        self, job: _Job, status: str, error: str, box: dict[str, Any], elapsed: float, run_id: str | None = None
    ) -> ExampleResult:
        ex = job.example
        return ExampleResult(
            example_id=ex.id, name=ex.name, split=ex.split, task_type=ex.task_type,
            passed=False, score=0.0, run_id=run_id, status=status,  # type: ignore[arg-type]
            error=error, attempts=max(1, int(box.get("attempts", 1))), latency_s=round(elapsed, 4),
        )  # fmt: skip


def _default_factory(settings: Settings) -> Callable[[], BaseChatModel]:
    from selfheal.models.providers import make_chat_model

    return lambda: make_chat_model(settings)


def jobs_for_model(settings: Settings, jobs: int, *, custom_model: bool = False) -> int:
    """``jobs``, capped at ``model.processes`` when the embedded model generates.

    One model process holds one conversation's KV cache: N conversations
    interleaved in it re-read each other's prompts on every turn (measured:
    ``-j 2`` on one process took 2.5x the wall time of ``-j 1``).
    """
    if jobs > 1 and not custom_model and _local_model_live(settings) and jobs > settings.model.processes:
        _note(f"-j {jobs} with {settings.model.processes} local model process(es): running -j "
              f"{settings.model.processes} (set model.processes to run more at once)")
        return settings.model.processes
    return jobs


def _local_model_live(settings: Settings) -> bool:
    """The embedded model will generate (not replay) for this eval."""
    if settings.model.cache_mode == "replay":
        return False
    from selfheal.models.providers import resolve_provider

    return resolve_provider(settings) == "local"


def run_experiment(
    settings: Settings,
    dataset: Dataset,
    *,
    split: str = "test",
    names: list[str] | None = None,
    jobs: int = 1,
    model_factory: Callable[[], BaseChatModel] | None = None,
    timeout_s: float | None = None,
    retries: int = 2,
    experiment_name: str | None = None,
    git_ref: str | None = None,
    progress: bool = True,
    judge_model: BaseChatModel | None = None,
    repeat: int = 1,
) -> ExperimentResult:
    """Evaluate the working tree's context and cheatsheet on one split of ``dataset``; store and return it."""
    from selfheal.evaluation.experiments import (
        create_experiment_session,
        experiment_name as default_name,
        save_experiment,
        unique_experiment_name,
    )
    from selfheal.models.providers import model_identity
    from selfheal.tracing.store import LocalTraceStore
    from selfheal.versioning import content_version

    if jobs < 1:
        raise SelfhealError("--jobs must be at least 1")
    if repeat < 1:
        raise SelfhealError("--repeat must be at least 1")
    if timeout_s is not None and timeout_s <= 0:
        raise SelfhealError("--timeout must be positive")
    examples = dataset.select(split, names)
    if not examples:
        raise SelfhealError(f"dataset '{dataset.name}' has no examples in split '{split}'")
    _check_scenarios(settings, dataset, examples)
    jobs = jobs_for_model(settings, jobs, custom_model=model_factory is not None)

    identity = model_identity(settings)
    context_version = content_version(settings.prompts_dir, settings.root)
    cheatsheet_version = content_version(settings.cheatsheet_dir, settings.root)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    store = LocalTraceStore.from_settings(settings)
    try:
        name = experiment_name or unique_experiment_name(store, default_name(dataset, split))
        versions = {"context_version": context_version, "cheatsheet_version": cheatsheet_version}
        session_meta = {
            "dataset": dataset.name, "dataset_hash": dataset.hash, "split": split, "model": identity,
            "git_ref": git_ref, "jobs": jobs, "repeat": repeat, **versions,
        }  # fmt: skip
        project = create_experiment_session(store, dataset, name, session_meta)
        extra: dict[str, Any] = {"repeat": repeat, "timeout_s": timeout_s, "retries": retries}
        remote = _langsmith_experiment(settings, dataset, name, session_meta)
        if remote:
            extra["langsmith"] = remote

        run = _Run(
            settings, dataset, name, _Workers(model_factory or _default_factory(settings)), timeout_s, retries,
            judge_model, {"experiment": name, "dataset": dataset.name, "dataset_hash": dataset.hash},
        )  # fmt: skip
        jobs_list = [_Job(i, ex, r) for i, (r, ex) in enumerate((r, ex) for r in range(repeat) for ex in examples)]
        started_at = utcnow()

        def result(results: list[ExampleResult | None], finished: datetime) -> ExperimentResult:
            return ExperimentResult(
                experiment_id=str(project.id), name=name, dataset=dataset.name, dataset_hash=dataset.hash,
                split=split, model=identity, git_ref=git_ref, cache_mode=settings.model.cache_mode,
                jobs=jobs, started_at=started_at, finished_at=finished,
                results=[r for r in results if r is not None], extra=extra, **versions,
            )  # fmt: skip

        with _environment_kept_warm(settings):
            results = _execute(run, jobs_list, jobs, progress, lambda rs: result(rs, utcnow()))
        final = result(results, utcnow())
        _save(settings, store, final, save_experiment)
        return final
    finally:
        store.close()


def _execute(
    run: _Run,
    jobs_list: list[_Job],
    jobs: int,
    progress: bool,
    partial: Callable[[list[ExampleResult | None]], ExperimentResult],
) -> list[ExampleResult | None]:
    results: list[ExampleResult | None] = [None] * len(jobs_list)
    bar = _Progress(len(jobs_list), enabled=progress)
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="selfheal-eval")
    futures: dict[Future[ExampleResult | None], _Job] = {}
    try:
        with bar:
            futures = {pool.submit(run.work, job): job for job in jobs_list}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = futures[fut]
                    try:
                        results[job.index] = fut.result()
                    except Exception as exc:  # run.work records failures itself; belt and braces
                        if is_configuration_error(exc):
                            run.fatal = run.fatal or exc
                            run.cancel.set()
                        results[job.index] = ExampleResult(
                            example_id=job.example.id, name=job.example.name, split=job.example.split,
                            task_type=job.example.task_type, passed=False, score=0.0, status="error",
                            error=_one_line(exc),
                        )  # fmt: skip
                    item = results[job.index]
                    bar.advance(item is not None and item.passed)
    except KeyboardInterrupt:
        run.cancel.set()
        pool.shutdown(wait=True, cancel_futures=True)
        for fut, job in futures.items():
            if fut.done() and not fut.cancelled() and fut.exception() is None and results[job.index] is None:
                results[job.index] = fut.result()
        done_n = sum(r is not None for r in results)
        raise EvalInterrupted(
            f"interrupted: {done_n}/{len(jobs_list)} examples finished, the rest were cancelled",
            partial(results),
        ) from None
    pool.shutdown(wait=True)
    if run.fatal is not None:
        fatal = _caused_by(run.fatal, (ConfigError, FileFormatError)) or run.fatal
        raise EvalConfigurationError(_message(fatal)) from None
    return results


def _message(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, SelfhealError) else str(exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def _save(settings: Settings, store: Any, result: ExperimentResult, save: Callable[..., None]) -> None:
    """Store the experiment; with LangSmith on, feedback also goes there (same ids)."""
    from selfheal.tracing.langsmith_backend import langsmith_configured

    if not langsmith_configured(settings):
        save(store, result)
        return
    from selfheal.tracing.callbacks import tracing_callbacks

    handle = tracing_callbacks(settings, store, project=result.name)
    save(store, result, add_feedback=handle.add_feedback)
    if not handle.finish():
        _note("LangSmith has not confirmed every feedback yet: `selfheal traces sync` sends the rest")


def _langsmith_experiment(
    settings: Settings, dataset: Dataset, name: str, metadata: dict[str, Any]
) -> dict[str, str] | None:
    """Dataset, examples and the experiment project in LangSmith, when configured (never fatal)."""
    from selfheal.tracing.langsmith_backend import close_client, langsmith_configured, make_client

    if not langsmith_configured(settings):
        return None
    from selfheal.evaluation.experiments import create_langsmith_experiment

    client = make_client(settings)
    try:
        return create_langsmith_experiment(client, dataset, name, metadata)
    except Exception as exc:
        _note(f"LangSmith experiment not created ({_one_line(exc)}); traces stay queued locally")
        return None
    finally:
        close_client(client)


@contextmanager
def _environment_kept_warm(settings: Settings) -> Iterator[None]:
    """The agent's optional ``prewarm(settings)`` hook, held for the whole experiment.

    An agent whose environment is costly to start and stop per example (e.g. a
    process-wide mock) keeps it started here; agents without the hook run as is.
    """
    from selfheal.agents.registry import get_agent

    prewarm = getattr(get_agent(settings), "prewarm", None)
    if prewarm is None:
        yield
        return
    with prewarm(settings):
        yield


def _check_scenarios(settings: Settings, dataset: Dataset, examples: list[Example]) -> None:
    """The agent opens scenarios by name from the agent's scenarios dir: the files must be those."""
    if dataset.spec.agent != settings.agent:
        raise SelfhealError(
            f"dataset '{dataset.name}' is for agent '{dataset.spec.agent}', but selfheal.yaml runs '{settings.agent}'"
        )
    for ex in examples:
        if ex.scenario is None:
            continue
        expected = settings.scenarios_dir / f"{ex.scenario}.yaml"
        if ex.path.resolve() != expected.resolve():
            raise SelfhealError(
                f"{ex.path}: scenario examples must live in {settings.scenarios_dir} (the agent opens"
                f" scenarios by name); move it there or make it a plain example"
            )


def _note(text: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[yellow]note:[/] {text}", highlight=False)


class _Progress:
    """A rich progress bar on stderr: done/total, passed so far, ETA."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.passed = 0
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("eval"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("passed {task.fields[passed]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(file=sys.stderr),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("eval", total=self.total, passed=0)
        return self

    def advance(self, passed: bool) -> None:
        self.passed += int(passed)
        if self._progress is not None:
            self._progress.update(self._task, advance=1, passed=self.passed)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
