"""The callbacks a traced graph run gets: the local tracer, and LangSmith delivery when configured.

``tracing_callbacks(settings, store)`` returns a :class:`TracingHandle`; pass
``handle.callbacks`` in the graph's config, run it inside ``handle.context()``,
and call ``handle.finish()`` when done (or use the handle as a context manager)::

    handle = tracing_callbacks(settings, store)
    with handle, handle.context():
        graph.invoke(state, config={"callbacks": handle.callbacks, "run_id": run_id})
        handle.merge_metadata(run_id, {"success": True})

The local tracer always records the run. When LangSmith is configured
(``tracing.langsmith`` and an API key), each finished trace is also marked
pending in the store's outbox and handed to a :class:`LangSmithUploader`,
a daemon thread that copies the stored records to LangSmith (same run ids,
trace ids, dotted orders, parent ids) and clears the mark only once LangSmith
confirmed them. See :mod:`selfheal.tracing.sync` for why this beats adding
LangChain's ``LangChainTracer``: its uploads cannot be verified and it can hold
the process for minutes at exit.

LangChain and the LangSmith SDK must never trace behind our back (e.g. with
``LANGSMITH_TRACING=true`` in the environment but no key, or under
``tracing_v2_enabled()``): LangChain adds its own tracer only when the
callbacks hold no ``LangChainTracer``, so the callbacks always include
:class:`LangSmithGuard`, a ``LangChainTracer`` that takes no events. That
holds in every thread, because it travels in the config; ``handle.context()``
additionally switches off ``@traceable`` code run inside the graph.

Exit is bounded: ``finish(timeout_s)`` waits at most ``timeout_s`` (default
``tracing.langsmith_exit_timeout_s``) for LangSmith, an ``atexit`` hook does
the same for handles never finished, and the uploader is a daemon thread that
never delays exit; whatever it had not delivered stays pending for
``selfheal traces sync``.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID

from langchain_core.tracers.langchain import LangChainTracer

from selfheal.tracing.langsmith_backend import close_client, langsmith_configured, make_client
from selfheal.tracing.schema import FeedbackRecord, RunRecord
from selfheal.tracing.store import LocalTraceStore
from selfheal.tracing.sync import LangSmithOutbox, deliver_items
from selfheal.tracing.tracer import LocalTracer

if TYPE_CHECKING:
    from langchain_core.callbacks import BaseCallbackHandler
    from langsmith import Client

    from selfheal.config import Settings

logger = logging.getLogger(__name__)

#: After a failed upload, new traces are not tried for this long (they stay pending).
RETRY_AFTER_S = 30.0
_IDLE_EXIT_S = 1.0
_LINGER_S = 0.05
_MAX_ITEMS = 50


class _NoClient:
    """Stands in for the guard's LangSmith client, which must never be used."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("selfheal's LangSmithGuard never talks to LangSmith")

    def __bool__(self) -> bool:
        return True


class LangSmithGuard(LangChainTracer):
    """Occupies LangChain's LangSmith-tracer slot so env-based auto tracing cannot add one.

    LangChain's callback manager adds a ``LangChainTracer`` built from the
    environment unless the handlers already hold one; this one holds the
    place and ignores every event (no run objects are built, nothing is sent).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("client"):
            kwargs["client"] = cast(Any, _NoClient())
        super().__init__(*args, **kwargs)

    ignore_llm = True  # type: ignore[assignment]
    ignore_chat_model = True  # type: ignore[assignment]
    ignore_chain = True  # type: ignore[assignment]
    ignore_agent = True  # type: ignore[assignment]
    ignore_retriever = True  # type: ignore[assignment]
    ignore_retry = True  # type: ignore[assignment]
    ignore_custom_event = True  # type: ignore[assignment]


# -- the uploader --------------------------------------------------------------
_Key = tuple[str, str]  # (kind, id) of an outbox row
_Job = tuple[LocalTraceStore, _Key] | threading.Event


class LangSmithUploader:
    """Delivers outbox rows to LangSmith on a daemon thread, in submission order.

    One uploader serves every handle of a process that writes the same store
    file to the same LangSmith endpoint, so concurrent runs share batches and
    connections. The thread exits when idle and restarts on demand.
    """

    def __init__(self, settings: Settings, path: Path, client: Client | None = None) -> None:
        self.settings = settings
        self.path = path
        self.outbox = LangSmithOutbox(path)
        self._client = client
        self._own_client = client is None
        self._reader: LocalTraceStore | None = None
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._down_until = 0.0
        #: Set at exit once the wait is over: the thread starts no new request.
        self.stopping = threading.Event()
        #: Messages of failed uploads (latest last).
        self.errors: list[str] = []
        #: When a bounded wait began that LangSmith has not answered since (None: not stalled).
        self._stalled_since: float | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = make_client(self.settings)
        return self._client

    def submit(self, source: LocalTraceStore, keys: Sequence[_Key]) -> None:
        """Deliver these outbox rows once ``source`` has written the traces they name."""
        for key in keys:
            self._put((source, key))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far was tried; False if ``timeout`` ran out.

        Waits do not add up while LangSmith stays stalled: once a bounded wait ran
        out, later ones end ``timeout`` after *that* wait began, until a delivery
        completes. So ``run_task``'s ``finish`` and the exit hook together delay exit
        by at most ``tracing.langsmith_exit_timeout_s`` (they used to wait twice: 4 s).
        """
        started = time.monotonic()
        with self._lock:
            if self._thread is None and self._queue.empty():
                return True
            if timeout is not None and self._stalled_since is not None:
                timeout = max(0.0, min(timeout, self._stalled_since + timeout - started))
        done = threading.Event()
        self._put(done)
        if done.wait(timeout):
            return True
        with self._lock:
            if self._stalled_since is None:
                self._stalled_since = started
        return False

    def _put(self, job: _Job) -> None:
        with self._lock:
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="selfheal-langsmith-upload", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=_IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            jobs = [first]
            deadline = time.monotonic() + _LINGER_S
            while len(jobs) < _MAX_ITEMS and not isinstance(jobs[-1], threading.Event):
                left = deadline - time.monotonic()
                try:
                    jobs.append(self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait())
                except queue.Empty:
                    break
            work = [j for j in jobs if not isinstance(j, threading.Event)]
            try:
                self._deliver(work)
            except Exception as exc:  # the uploader must survive anything
                logger.warning("LangSmith upload failed: %s", exc)
                self.errors.append(str(exc))
            with self._lock:
                self._stalled_since = None
            for job in jobs:
                if isinstance(job, threading.Event):
                    job.set()

    def _deliver(self, work: list[tuple[LocalTraceStore, _Key]]) -> None:
        if not work or self.stopping.is_set():
            return
        if time.monotonic() < self._down_until:
            return  # LangSmith failed recently: leave these pending for `traces sync`
        for source in {id(s): s for s, _ in work}.values():
            source.flush()
        items = []
        for key in dict.fromkeys(k for _, k in work):
            item = self.outbox.get(*key)
            if item is not None:
                items.append(item)
        if not items:
            return
        if self._reader is None:
            self._reader = LocalTraceStore(self.path)
        result = deliver_items(
            items,
            client=self.client,
            store=self._reader,
            outbox=self.outbox,
            stop=self.stopping,
        )
        if result.failed:
            self._down_until = time.monotonic() + RETRY_AFTER_S
            self.errors.extend(result.errors)
            logger.warning(
                "LangSmith upload failed (%s); %d item(s) stay pending for `selfheal traces sync`",
                result.errors[-1] if result.errors else "unknown error",
                len(result.failed) + len(result.skipped),
            )

    def close(self) -> None:
        """Stop starting requests and release the client (never waits for the network)."""
        self.stopping.set()
        if self._own_client and self._client is not None:
            close_client(self._client)


_UPLOADERS: dict[tuple[str, ...], LangSmithUploader] = {}
_UPLOADERS_LOCK = threading.Lock()


def _uploader_for(settings: Settings, path: Path, client: Client | None) -> LangSmithUploader:
    key_secret = settings.tracing.langsmith_api_key
    digest = hashlib.sha256(
        (key_secret.get_secret_value() if key_secret else "").encode()
    ).hexdigest()
    key = (
        str(path.resolve()),
        settings.tracing.langsmith_endpoint or "",
        digest,
        "" if client is None else str(id(client)),
    )
    with _UPLOADERS_LOCK:
        uploader = _UPLOADERS.get(key)
        if uploader is None or uploader.stopping.is_set():
            uploader = LangSmithUploader(settings, path, client)
            _UPLOADERS[key] = uploader
        return uploader


@atexit.register
def _flush_uploaders_at_exit() -> None:
    """Give LangSmith a bounded chance at exit; what is left stays pending."""
    with _UPLOADERS_LOCK:
        uploaders = [u for u in _UPLOADERS.values() if not u.stopping.is_set()]
    if not uploaders:
        return
    budget = max(u.settings.tracing.langsmith_exit_timeout_s for u in uploaders)
    deadline = time.monotonic() + budget
    for uploader in uploaders:
        uploader.flush(max(0.0, deadline - time.monotonic()))
    for uploader in uploaders:
        uploader.close()


# -- the handle ----------------------------------------------------------------
class _UploadingTracer(LocalTracer):
    """A :class:`LocalTracer` that marks each saved trace pending for LangSmith and submits it."""

    def __init__(self, store: LocalTraceStore, uploader: LangSmithUploader, **kwargs: Any) -> None:
        super().__init__(store, **kwargs)
        self.uploader = uploader

    def _persist_run(self, run: Any) -> None:
        saved = len(self.root_run_ids)
        super()._persist_run(run)
        if len(self.root_run_ids) == saved:
            return  # not saved locally: nothing to deliver either
        try:
            # Pending *before* any upload is tried: a crash from here on loses nothing.
            self.uploader.outbox.add_trace(run.trace_id)
            self.uploader.submit(cast(LocalTraceStore, self.store), [("trace", str(run.trace_id))])
        except Exception as exc:  # tracing must never break the traced run
            logger.warning("trace %s not queued for LangSmith: %s", run.trace_id, exc)
            self.errors.append(exc)


class TracingHandle:
    """The callbacks of traced runs, and what to do with their traces afterwards."""

    def __init__(
        self,
        store: LocalTraceStore,
        tracer: LocalTracer,
        uploader: LangSmithUploader | None,
        *,
        exit_timeout_s: float,
    ) -> None:
        self.store = store
        self.tracer = tracer
        self.uploader = uploader
        self.exit_timeout_s = exit_timeout_s
        #: Put these in the graph config: ``{"callbacks": handle.callbacks}``.
        self.callbacks: list[BaseCallbackHandler] = [tracer, LangSmithGuard()]
        self._feedback_ids: list[UUID] = []
        self._changed: set[UUID] = set()

    @property
    def langsmith(self) -> bool:
        """Whether traces also go to LangSmith."""
        return self.uploader is not None

    @property
    def root_run_ids(self) -> list[UUID]:
        return self.tracer.root_run_ids

    def context(self) -> AbstractContextManager[None]:
        """Run graphs inside this: LangSmith's own ``@traceable`` tracing stays off."""
        from langsmith.run_helpers import tracing_context

        return cast(AbstractContextManager[None], tracing_context(enabled=False))

    def config(self, **config: Any) -> dict[str, Any]:
        """A graph config with these callbacks added to any given ones."""
        given = config.pop("callbacks", None) or []
        return {**config, "callbacks": [*given, *self.callbacks]}

    def merge_metadata(self, run_id: UUID | str, metadata: Mapping[str, Any]) -> RunRecord:
        """Merge keys into a stored run's metadata, and into LangSmith's copy when configured."""
        run = self.store.merge_metadata(run_id, metadata)
        if self.uploader is not None:
            try:
                self.uploader.outbox.trace_changed(run.trace_id)
                self._changed.add(run.trace_id)
                self.uploader.submit(self.store, [("trace", str(run.trace_id))])
            except Exception as exc:
                logger.warning("metadata of %s not queued for LangSmith: %s", run_id, exc)
        return run

    def add_feedback(self, feedback: FeedbackRecord) -> FeedbackRecord:
        """Store feedback locally, and deliver it to LangSmith when configured."""
        stored = self.store.add_feedback(feedback)
        if self.uploader is not None:
            try:
                self.uploader.outbox.add_feedback(stored.id, stored.run_id)
                self._feedback_ids.append(stored.id)
                self.uploader.submit(self.store, [("feedback", str(stored.id))])
            except Exception as exc:
                logger.warning("feedback %s not queued for LangSmith: %s", stored.id, exc)
        return stored

    def pending(self) -> int:
        """Items of this handle LangSmith has not confirmed yet (0 without LangSmith)."""
        if self.uploader is None:
            return 0
        outbox = self.uploader.outbox
        traces = {*self.tracer.root_run_ids, *self._changed}
        return sum(outbox.get("trace", t) is not None for t in traces) + sum(
            outbox.get("feedback", f) is not None for f in self._feedback_ids
        )

    def finish(self, timeout_s: float | None = None) -> bool:
        """Write local traces, then wait at most ``timeout_s`` for LangSmith.

        True when every trace and feedback of this handle is stored locally
        and (if configured) confirmed by LangSmith; False leaves the rest
        pending for ``selfheal traces sync``. Never waits longer than asked.
        """
        local_ok = self.tracer.flush() and not self.tracer.errors
        if self.uploader is None:
            return local_ok
        timeout = self.exit_timeout_s if timeout_s is None else timeout_s
        self.uploader.flush(timeout)
        return local_ok and self.pending() == 0

    def __enter__(self) -> TracingHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()


_warned_once = threading.Event()


def tracing_callbacks(
    settings: Settings,
    store: LocalTraceStore,
    *,
    project: str | None = None,
    metadata: Mapping[str, Any] | None = None,
    tags: Sequence[str] | None = None,
    reference_example_id: UUID | None = None,
    client: Client | None = None,
) -> TracingHandle:
    """The tracing of one or more graph runs: local always, LangSmith when configured.

    ``project`` defaults to ``tracing.project``; ``metadata``/``tags`` are added
    to every root run; ``client`` replaces the LangSmith client made from
    settings (it is used only when LangSmith is configured).
    """
    kwargs: dict[str, Any] = {
        "project_name": project or settings.tracing.project,
        "metadata": metadata,
        "tags": tags,
        "reference_example_id": reference_example_id,
    }
    uploader = None
    if langsmith_configured(settings):
        uploader = _uploader_for(settings, store.path, client)
        tracer: LocalTracer = _UploadingTracer(store, uploader, **kwargs)
    else:
        if settings.tracing.langsmith and not _warned_once.is_set():
            _warned_once.set()
            logger.warning("LangSmith tracing is on but no API key is set: traces stay local")
        tracer = LocalTracer(store, **kwargs)
    return TracingHandle(
        store, tracer, uploader, exit_timeout_s=settings.tracing.langsmith_exit_timeout_s
    )
