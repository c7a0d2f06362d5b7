"""A LangChain tracer that records whole runs into a :class:`TraceStore`.

Pass it in a LangGraph config (``config={"callbacks": [tracer]}``): the graph,
each node, each model call (run_type ``llm``, with token counts) and each tool
call become runs with LangChain's own run ids, so a ``LangChainTracer`` in the
same callbacks (LangSmith) records identical ids, and ``config["run_id"]``
becomes the root id. Nothing is written while the graph runs: the tree is
kept in memory and persisted as one batch when the root run ends, whether it
succeeded or raised (``BaseTracer._end_trace`` calls ``_persist_run`` for roots).
Only the root is also written when it starts, as an open (``pending``) row
naming this process (see :mod:`selfheal.tracing.liveness`): a run killed
before its end then shows as interrupted instead of missing.

With a :class:`LocalTraceStore` and ``background=True`` (the default) the
payloads are encoded when the root ends, in the caller's thread (so the
caller may mutate the returned state), and written by the store's background
writer; reads and merges through the same store wait for it, and
:meth:`LocalTracer.flush` waits explicitly (e.g. before another process reads).

Speed: tracing must not slow a zero-latency-model graph noticeably, so a
run in flight is a slotted ``_Span`` instead of LangChain's validated
``RunTree``, and payloads (messages, generations) are kept as objects and
encoded once, by pydantic-core, when the root ends, instead of through
``dumpd`` on every call. The cost of that deferral is that a node mutating
its input state in place is recorded with the mutated value.

A trace that cannot be saved never fails the traced run: the error is
logged and kept in :attr:`LocalTracer.errors` (or, for a background write,
in ``LocalTraceStore.write_errors``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from langchain_core.tracers.base import BaseTracer

from selfheal.owner import current_owner
from selfheal.tracing.liveness import OWNER_KEY
from selfheal.tracing.schema import RunRecord
from selfheal.tracing.store import LocalTraceStore, TraceStore, encode_run

logger = logging.getLogger(__name__)


class _Span:
    """A run while it is traced: the attributes ``BaseTracer`` reads and writes, nothing more.

    LangChain builds a validated ``RunTree`` per run; building this instead
    costs a tenth of that, which is most of the tracer's share of a fast run.
    It doubles as the ``RunLike`` that :func:`encode_run` turns into a row.
    """

    __slots__ = (
        "child_runs",
        "completion_tokens",
        "dotted_order",
        "end_time",
        "error",
        "events",
        "extra",
        "id",
        "inputs",
        "name",
        "outputs",
        "parent_run_id",
        "prompt_tokens",
        "reference_example_id",
        "run_type",
        "session_id",
        "start_time",
        "status",
        "tags",
        "total_tokens",
        "trace_id",
    )  # fmt: skip

    def __init__(
        self,
        run_id: UUID,
        name: str,
        run_type: str,
        parent_run_id: UUID | None,
        inputs: dict[str, Any],
        extra: dict[str, Any],
        tags: list[str],
    ) -> None:
        self.id = run_id
        self.name = name
        self.run_type = run_type
        self.start_time = datetime.now(UTC)
        self.end_time: datetime | None = None
        self.inputs = inputs
        self.outputs: dict[str, Any] | None = None
        self.error: str | None = None
        self.extra = extra
        self.tags = tags
        self.events: list[dict[str, Any]] = [{"name": "start", "time": self.start_time}]
        self.parent_run_id = parent_run_id
        self.trace_id: UUID = run_id  # BaseTracer._start_trace sets the real one
        self.dotted_order = ""
        self.child_runs: list[_Span] = []
        self.reference_example_id: UUID | None = None
        self.session_id: UUID | None = None
        self.status = "pending"
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.total_tokens: int | None = None

    def to_record(self) -> RunRecord:
        return RunRecord.model_validate(
            {name: getattr(self, name) for name in self.__slots__ if name != "child_runs"}
        )


def _run_name(name: str | None, serialized: Mapping[str, Any] | None) -> str:
    if name:
        return name
    if serialized:
        if serialized.get("name"):
            return str(serialized["name"])
        ids = serialized.get("id")
        if ids:
            return str(ids[-1])
    return "Unnamed"


def _usage_from_result(response: LLMResult) -> dict[str, int] | None:
    """Token usage of a model call: messages' ``usage_metadata``, else ``llm_output``."""
    total: dict[str, int] | None = None
    for batch in response.generations:
        for gen in batch:
            usage = getattr(getattr(gen, "message", None), "usage_metadata", None)
            if usage:
                total = total or {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
                for key in total:
                    total[key] += int(usage.get(key) or 0)
    if total is not None:
        return total
    llm_output = response.llm_output or {}
    usage = llm_output.get("token_usage") or llm_output.get("usage")
    if isinstance(usage, Mapping):
        prompt = int(usage.get("prompt_tokens", usage.get("input_tokens")) or 0)
        completion = int(usage.get("completion_tokens", usage.get("output_tokens")) or 0)
        return {
            "input_tokens": prompt,
            "output_tokens": completion,
            "total_tokens": int(usage.get("total_tokens") or prompt + completion),
        }
    return None


class LocalTracer(BaseTracer):
    """Records every run of a LangChain/LangGraph invocation into a trace store."""

    # Called in the caller's thread/loop, in order: the tree must be complete at root end.
    run_inline = True

    def __init__(
        self,
        store: TraceStore,
        project_name: str = "selfheal",
        *,
        metadata: Mapping[str, Any] | None = None,
        tags: Sequence[str] | None = None,
        reference_example_id: UUID | None = None,
        background: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store = store
        self.project_name = project_name
        #: Added to every root run's metadata (run metadata wins on conflicts).
        self.metadata = dict(metadata or {})
        #: Added to every root run's tags.
        self.tags = list(tags or [])
        #: Dataset example the root runs answer (LangSmith's ``reference_example_id``).
        self.reference_example_id = reference_example_id
        #: Ids of the root runs saved (or queued for the writer) by this tracer, oldest first.
        self.root_run_ids: list[UUID] = []
        #: Hand traces to the store's background writer instead of writing them inline.
        self.background = background
        #: Exceptions raised while persisting (the traced runs themselves went on).
        self.errors: list[Exception] = []
        self._session_id: UUID | None = None
        self._session_lock = threading.Lock()
        self._owner: dict[str, Any] | None = None

    @property
    def last_root_id(self) -> UUID | None:
        return self.root_run_ids[-1] if self.root_run_ids else None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every finished trace is in the store; False if ``timeout`` ran out."""
        return self.store.flush(timeout)

    def __enter__(self) -> LocalTracer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()

    # -- building runs cheaply -----------------------------------------------
    @staticmethod
    def _new_run(
        *,
        run_id: UUID,
        parent_run_id: UUID | None,
        name: str | None,
        serialized: Mapping[str, Any] | None,
        run_type: str,
        inputs: dict[str, Any],
        tags: list[str] | None,
        extra: dict[str, Any],
    ) -> Any:
        return _Span(
            run_id,
            _run_name(name, serialized),
            run_type,
            parent_run_id,
            inputs,
            extra,
            list(tags) if tags else [],
        )

    @staticmethod
    def _extra(metadata: dict[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        extra = dict(kwargs)
        if metadata:
            extra["metadata"] = metadata
        return extra

    def _create_chain_run(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        run_id: UUID,
        tags: list[str] | None = None,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        run_type: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        return self._new_run(
            run_id=run_id,
            parent_run_id=parent_run_id,
            name=name,
            serialized=serialized,
            run_type=run_type or "chain",
            inputs=self._get_chain_inputs(inputs),
            tags=tags,
            extra=self._extra(metadata, kwargs),
        )

    def _create_tool_run(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        run_id: UUID,
        tags: list[str] | None = None,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        return self._new_run(
            run_id=run_id,
            parent_run_id=parent_run_id,
            name=name,
            serialized=serialized,
            run_type="tool",
            inputs=inputs if isinstance(inputs, dict) else {"input": input_str},
            tags=tags,
            extra=self._extra(metadata, kwargs),
        )

    def _create_llm_run(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        run_id: UUID,
        tags: list[str] | None = None,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        return self._new_run(
            run_id=run_id,
            parent_run_id=parent_run_id,
            name=name,
            serialized=serialized,
            run_type="llm",
            inputs={"prompts": prompts},
            tags=tags,
            extra=self._extra(metadata, kwargs),
        )

    def _create_retrieval_run(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        return self._new_run(
            run_id=run_id,
            parent_run_id=parent_run_id,
            name=name or "Retriever",
            serialized=serialized,
            run_type="retriever",
            inputs={"query": query},
            tags=tags,
            extra=self._extra(metadata, kwargs),
        )

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Chat model calls are ``llm`` runs with the message lists as inputs (as in LangSmith)."""
        run = self._new_run(
            run_id=run_id,
            parent_run_id=parent_run_id,
            name=name,
            serialized=serialized,
            run_type="llm",
            inputs={"messages": [list(batch) for batch in messages]},
            tags=tags,
            extra=self._extra(metadata, kwargs),
        )
        self._start_trace(run)
        self._on_chat_model_start(run)
        return run

    def _complete_llm_run(self, response: LLMResult, run_id: UUID) -> Any:
        run = self._get_run(run_id, run_type={"llm", "chat_model"})
        if run.outputs is None:
            run.outputs = {}
        if not run.extra.get("__omit_auto_outputs", False):
            run.outputs.update(
                {"generations": response.generations, "llm_output": response.llm_output}
            )
        run.end_time = datetime.now(UTC)
        run.events.append({"name": "end", "time": run.end_time})
        tool_calls = sum(
            len(getattr(getattr(gen, "message", None), "tool_calls", None) or ())
            for batch in response.generations
            for gen in batch
        )
        if tool_calls:
            run.extra["tool_call_count"] = tool_calls
        usage = _usage_from_result(response)
        if usage is not None:
            # The metadata dict is shared with sibling runs: copy before adding.
            run.extra["metadata"] = {**run.extra.get("metadata", {}), "usage_metadata": usage}
        return run

    def _llm_run_with_token_event(
        self,
        token: Any,
        run_id: UUID,
        chunk: Any = None,
        parent_run_id: UUID | None = None,
    ) -> Any:
        """Keep only the first token event (time to first token), not one per token."""
        run = self._get_run(run_id, run_type={"llm", "chat_model"})
        if not any(e.get("name") == "new_token" for e in run.events):
            run.events.append({"name": "new_token", "time": datetime.now(UTC)})
        return run

    # -- persisting --------------------------------------------------------
    def _start_trace(self, run: Any) -> None:
        super()._start_trace(run)
        if run.parent_run_id is None and isinstance(self.store, LocalTraceStore):
            self._persist_open(run, self.store)

    def _persist_open(self, run: _Span, store: LocalTraceStore) -> None:
        """Write the root as an open run now, so a killed process leaves it (as interrupted).

        Local store only: other backends (LangSmith) get each trace once, finished.
        """
        try:
            if self._owner is None:
                self._owner = current_owner().model_dump()
            tags = sorted(set(run.tags) | set(self.tags))
            opening = _Span(run.id, run.name, run.run_type, None, run.inputs, {}, tags)
            opening.start_time = run.start_time
            opening.events = [{"name": "start", "time": run.start_time}]
            opening.trace_id = run.trace_id
            opening.dotted_order = run.dotted_order
            opening.session_id = self._project_id()
            opening.reference_example_id = run.reference_example_id or self.reference_example_id
            opening.extra = {
                **run.extra,
                "metadata": {**self.metadata, **(run.extra.get("metadata") or {})},
                OWNER_KEY: self._owner,
            }
            row = [encode_run(opening, store.max_payload_chars, store.redactor)]
            if self.background:
                store.submit_encoded(row)
            else:
                store.write_encoded(row)
        except Exception as exc:  # tracing must never break the traced run
            logger.warning("open trace %s not saved to %s: %s", run.id, self.store, exc)

    def _project_id(self) -> UUID:
        if self._session_id is None:
            with self._session_lock:
                if self._session_id is None:
                    self._session_id = self.store.ensure_project(self.project_name).id
        return self._session_id

    def _persist_run(self, run: Any) -> None:
        try:
            spans = self._finish(run)
            store = self.store
            if isinstance(store, LocalTraceStore):
                # Encode now: the caller may mutate the returned state before the write.
                rows = [encode_run(span, store.max_payload_chars, store.redactor) for span in spans]
                if self.background:
                    store.submit_encoded(rows)
                else:
                    store.write_encoded(rows)
            else:
                store.write_runs([span.to_record() for span in spans])
            self.root_run_ids.append(run.id)
        except Exception as exc:  # tracing must never break the traced run
            logger.warning("trace %s not saved to %s: %s", run.id, self.store, exc)
            self.errors.append(exc)

    def _finish(self, root: _Span) -> list[_Span]:
        """The finished tree, parents first, with status, project and rolled-up tokens set."""
        session_id = self._project_id()
        order: list[_Span] = []
        stack = [root]
        while stack:
            run = stack.pop()
            order.append(run)
            stack.extend(reversed(run.child_runs))
            # Free what the base class keeps per run once a trace is done.
            self.order_map.pop(run.id, None)
            if run is not root:
                self.run_map.pop(str(run.id), None)

        for run in reversed(order):  # children before parents
            run.session_id = session_id
            if run.run_type == "chat_model":
                run.run_type = "llm"
            run.status = (
                "error" if run.error else ("pending" if run.end_time is None else "success")
            )
            usage = (run.extra.get("metadata") or {}).get("usage_metadata")
            if run.run_type == "llm" and isinstance(usage, Mapping):
                run.prompt_tokens = int(usage.get("input_tokens") or 0)
                run.completion_tokens = int(usage.get("output_tokens") or 0)
                run.total_tokens = int(usage.get("total_tokens") or 0)
            else:
                counted = [c for c in run.child_runs if c.total_tokens is not None]
                if counted:
                    run.prompt_tokens = sum(c.prompt_tokens or 0 for c in counted)
                    run.completion_tokens = sum(c.completion_tokens or 0 for c in counted)
                    run.total_tokens = sum(c.total_tokens or 0 for c in counted)

        if self.metadata:
            root.extra = {
                **root.extra,
                "metadata": {**self.metadata, **(root.extra.get("metadata") or {})},
            }
        if self.tags:
            root.tags = sorted(set(root.tags) | set(self.tags))
        if root.reference_example_id is None:
            root.reference_example_id = self.reference_example_id
        return order
