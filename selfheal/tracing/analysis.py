"""What the traces say: success, latency, tokens, errors, tools, cheatsheet entries, feedback.

:func:`analyze` reads one project's root runs in a time window from any
:class:`TraceSource` (the local store or a ``LangSmithTraceReader``) and
summarises them per ``task_type`` and overall. It never loads whole trees:
roots come in one query (outcome metadata lives there), tool runs in a
second one (``run_type="tool"``, same project and window), errored child runs
in a third, and model runs only when roots lack rolled-up token counts
(LangSmith computes those server side; a stub or an old store may not). All
three queries are bounded to the roots' time span and matched to the roots
by ``trace_id``, so the cost grows with the runs analysed, not with the store.

Success comes from the root's ``extra.metadata["success"]`` (stamped by the
runner from evidence, never from the model's claim); a root without it counts
as failed when it errored and as "unknown" otherwise, and unknown runs are left
out of every rate. Error messages are clustered by a normalised signature in
which numbers, ids, hex, quoted names, ARNs and timestamps become placeholders,
so "timeout after 3.00 seconds" and "timeout after 6.02 seconds" are one cluster.
Feedback is read for the root runs (where ``selfheal feedback`` puts it when
given the id ``traces list`` shows); feedback on child runs is not counted.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from selfheal.tracing.schema import FeedbackRecord, RunRecord, utcnow

__all__ = [
    "Analysis",
    "EntryStats",
    "ErrorCluster",
    "FeedbackStats",
    "GroupStats",
    "LatencyStats",
    "TokenStats",
    "ToolSequence",
    "ToolStats",
    "TraceSource",
    "analyze",
    "error_signature",
    "run_tokens",
    "tool_failure",
]

#: How many example run ids an error cluster keeps.
MAX_CLUSTER_RUN_IDS = 20
#: Tool-name n-gram lengths counted as sequences.
SEQUENCE_LENGTHS = (2, 3)
#: Feedback is fetched for this many runs per request (SQLite variables, URL length).
_FEEDBACK_CHUNK = 200
#: Length of a signature / example message kept.
_MAX_MESSAGE = 240


class TraceSource(Protocol):
    """The reads :func:`analyze` needs: ``LocalTraceStore`` and ``LangSmithTraceReader`` both fit.

    ``list_feedback`` is optional: a source without it (a LangSmith reader)
    is asked through its ``client`` instead, see :func:`feedback_for`.
    """

    def list_runs(
        self,
        project: str | UUID | None = None,
        *,
        run_type: str | None = None,
        is_root: bool | None = None,
        limit: int | None = 100,
        since: datetime | timedelta | None = None,
        until: datetime | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[RunRecord]: ...

    def get_trace(self, trace_id: UUID | str) -> list[RunRecord]: ...


# -- result models ---------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LatencyStats(_Model):
    """Seconds per run (root wall clock); None when no run finished."""

    count: int = 0
    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    max: float | None = None


class TokenStats(_Model):
    """Tokens of the runs that reported any (model calls rolled up to the root)."""

    total: int = 0
    prompt: int = 0
    completion: int = 0
    runs_counted: int = 0
    per_run: float | None = None


class ErrorCluster(_Model):
    """Error messages that differ only in numbers, ids, names and the like."""

    signature: str
    count: int
    example: str
    run_ids: list[UUID] = Field(default_factory=list, description="root run ids, newest first")
    sources: dict[str, int] = Field(default_factory=dict, description="run name -> occurrences")


class ToolStats(_Model):
    name: str
    calls: int
    errors: int
    error_rate: float
    runs: int = Field(description="root runs that called the tool")


class ToolSequence(_Model):
    """Consecutive tool calls; ``runs`` counts root runs containing them at least once."""

    tools: list[str]
    runs: int


class EntryStats(_Model):
    """How one cheatsheet entry fared: retrieved vs used, and outcomes with and without it."""

    entry_id: str
    retrieved: int
    used: int
    runs_used: int = Field(description="runs with a known outcome that used the entry")
    success_rate_used: float | None
    runs_not_used: int = Field(description="runs with a known outcome that did not use it")
    success_rate_not_used: float | None
    lift: float | None = Field(description="success_rate_used - success_rate_not_used")


class FeedbackStats(_Model):
    key: str
    count: int
    scored: int
    mean: float | None
    min: float | None
    max: float | None


class GroupStats(_Model):
    """Everything about the root runs of one task type (or of all of them)."""

    task_type: str | None = Field(description="None for the overall group")
    runs: int
    with_outcome: int
    successes: int
    success_rate: float | None
    latency: LatencyStats
    tokens: TokenStats
    error_types: dict[str, int] = Field(default_factory=dict)
    errors: list[ErrorCluster] = Field(default_factory=list)
    tools: list[ToolStats] = Field(default_factory=list)
    sequences: list[ToolSequence] = Field(default_factory=list)
    entries: list[EntryStats] = Field(default_factory=list)
    feedback: list[FeedbackStats] = Field(default_factory=list)


class Analysis(_Model):
    project: str
    since: datetime | None
    until: datetime | None
    task_type: str | None
    generated_at: datetime
    overall: GroupStats
    by_task_type: dict[str, GroupStats] = Field(default_factory=dict)


# -- error signatures --------------------------------------------------------------
_NORMALISERS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\barn:aws[\w-]*:[^\s'\"`,;)}]*"), "<arn>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?"), "<time>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"(?<!\w)(?:'[^'\n]{1,200}'|\"[^\"\n]{1,200}\"|`[^`\n]{1,200}`)(?!\w)"), "<name>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    # Identifier-like tokens mixing letters and digits (request ids, instance ids).
    (re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]{7,}\b"), "<id>"),
    (re.compile(r"(?<![\w<])[-+]?\d+(?:[.,]\d+)*(?:e[-+]?\d+)?"), "<n>"),
]
_WRAPPED = re.compile(r"^([A-Z]\w*(?:Error|Exception|Timeout|Exit|Interrupt)?)\((['\"])(.*)\2\)$", re.S)


def error_message(text: str) -> str:
    """The first meaningful line of a stored error (LangChain appends the traceback)."""
    head = text.split("\n\nTraceback", 1)[0].strip()
    line = next((ln.strip() for ln in head.splitlines() if ln.strip()), "")
    m = _WRAPPED.match(line)
    if m:  # ValueError('boom') -> ValueError: boom
        line = f"{m.group(1)}: {m.group(3)}"
    return line[:_MAX_MESSAGE]


def error_signature(text: str) -> str:
    """``text`` with the parts that vary between occurrences replaced by placeholders."""
    sig = error_message(text)
    for pattern, placeholder in _NORMALISERS:
        sig = pattern.sub(placeholder, sig)
    return re.sub(r"\s+", " ", sig).strip()


def tool_failure(run: RunRecord) -> str | None:
    """Why a tool run failed, or None: its error, or the content of a ToolMessage with status error.

    The agent's tool node turns tool exceptions into ``ToolMessage(status="error")``
    so the model can react; the run itself then ends "successfully".
    """
    if run.error:
        return run.error
    if run.status == "error":
        return "error"
    out = run.outputs or {}
    msg = out.get("output", out) if isinstance(out, Mapping) else None
    if isinstance(msg, Mapping) and msg.get("status") == "error":
        content = msg.get("content")
        return content if isinstance(content, str) and content else "tool returned an error"
    return None


# -- token counts --------------------------------------------------------------------
def _usage_from_outputs(outputs: Mapping[str, Any] | None) -> tuple[int, int, int] | None:
    """(prompt, completion, total) from an llm run's outputs, as LangChain records them."""
    if not isinstance(outputs, Mapping):
        return None
    found: list[tuple[int, int, int]] = []
    for gens in outputs.get("generations") or ():
        for gen in gens if isinstance(gens, list) else [gens]:
            msg = gen.get("message") if isinstance(gen, Mapping) else None
            if isinstance(msg, Mapping) and "kwargs" in msg and isinstance(msg["kwargs"], Mapping):
                msg = msg["kwargs"]  # dumpd() form
            usage = msg.get("usage_metadata") if isinstance(msg, Mapping) else None
            if isinstance(usage, Mapping):
                p, c = int(usage.get("input_tokens") or 0), int(usage.get("output_tokens") or 0)
                found.append((p, c, int(usage.get("total_tokens") or p + c)))
    if found:
        return tuple(sum(x[i] for x in found) for i in range(3))  # type: ignore[return-value]
    llm_output = outputs.get("llm_output")
    usage = llm_output.get("token_usage") if isinstance(llm_output, Mapping) else None
    if isinstance(usage, Mapping):
        p = int(usage.get("prompt_tokens", usage.get("input_tokens")) or 0)
        c = int(usage.get("completion_tokens", usage.get("output_tokens")) or 0)
        return p, c, int(usage.get("total_tokens") or p + c)
    return None


def run_tokens(run: RunRecord) -> tuple[int, int, int] | None:
    """(prompt, completion, total) tokens of a run: its own fields, else an ``llm`` run's output usage."""
    if run.total_tokens is not None:
        return run.prompt_tokens or 0, run.completion_tokens or 0, run.total_tokens
    if run.run_type == "llm":
        return _usage_from_outputs(run.outputs)
    return None


# -- feedback --------------------------------------------------------------------
def feedback_for(source: Any, run_ids: Sequence[UUID]) -> list[FeedbackRecord]:
    """Feedback on these runs, from a store's ``list_feedback`` or a LangSmith reader's client."""
    out: list[FeedbackRecord] = []
    chunks = [run_ids[i : i + _FEEDBACK_CHUNK] for i in range(0, len(run_ids), _FEEDBACK_CHUNK)]
    if hasattr(source, "list_feedback"):
        for chunk in chunks:
            out.extend(source.list_feedback(run_ids=list(chunk)))
        return out
    client = getattr(source, "client", None)
    if client is None:
        return out
    for chunk in chunks:
        for fb in client.list_feedback(run_ids=list(chunk)):
            out.append(FeedbackRecord.model_validate(fb.model_dump()))
    return out


# -- the analysis -----------------------------------------------------------------
class _Trace:
    """What the analysis keeps of one root run and its relevant children."""

    __slots__ = ("errors", "root", "success", "task_type", "tokens", "tools")

    def __init__(self, root: RunRecord) -> None:
        self.root = root
        md = root.metadata
        flag = md.get("success")
        self.success: bool | None = flag if isinstance(flag, bool) else (
            False if root.status == "error" else None
        )
        self.task_type = str(md.get("task_type") or "unknown")
        self.tokens = run_tokens(root)
        self.tools: list[RunRecord] = []
        self.errors: list[tuple[str, str]] = []  # (run name, raw message)


def _window_end(roots: Sequence[RunRecord]) -> datetime | None:
    """A start-time bound that every child of these roots starts before (None if one is open)."""
    ends = [r.end_time for r in roots]
    if any(e is None for e in ends):
        return None
    return max(e for e in ends if e is not None) + timedelta(microseconds=1)


def analyze(
    source: TraceSource,
    *,
    project: str,
    since: datetime | timedelta | None,
    until: datetime | None = None,
    task_type: str | None = None,
    top: int = 10,
) -> Analysis:
    """Summarise the root runs of ``project`` started in ``[since, until)``, per task type and overall.

    ``top`` bounds the error clusters and tool sequences listed per group.
    """
    start = utcnow() - since if isinstance(since, timedelta) else since
    roots = source.list_runs(
        project,
        is_root=True,
        since=start,
        until=until,
        metadata={"task_type": task_type} if task_type else None,
        limit=None,
    )
    traces = {r.trace_id: _Trace(r) for r in roots}
    if traces:
        lo = min(r.start_time for r in roots)
        hi = _window_end(roots)
        for run in source.list_runs(project, run_type="tool", is_root=False, since=lo, until=hi, limit=None):
            t = traces.get(run.trace_id)
            if t is not None:
                t.tools.append(run)
        for run in source.list_runs(project, is_root=False, status="error", since=lo, until=hi, limit=None):
            t = traces.get(run.trace_id)
            if t is not None and run.run_type not in ("tool", "chain") and run.error:
                t.errors.append((run.name, run.error))
        if any(t.tokens is None for t in traces.values()):
            summed: dict[UUID, list[int]] = defaultdict(lambda: [0, 0, 0])
            for run in source.list_runs(project, run_type="llm", is_root=False, since=lo, until=hi, limit=None):
                t = traces.get(run.trace_id)
                usage = run_tokens(run)
                if t is not None and t.tokens is None and usage is not None:
                    acc = summed[run.trace_id]
                    for i in range(3):
                        acc[i] += usage[i]
            for trace_id, acc in summed.items():
                traces[trace_id].tokens = (acc[0], acc[1], acc[2])
        for t in traces.values():
            t.tools.sort(key=lambda r: r.dotted_order)
            for tool in t.tools:
                why = tool_failure(tool)
                if why is not None:
                    t.errors.append((tool.name, why))
            if t.root.error:
                sig = error_signature(t.root.error)
                if all(error_signature(m) != sig for _, m in t.errors):
                    t.errors.append((t.root.name, t.root.error))

    feedback = feedback_for(source, [t.root.id for t in traces.values()]) if traces else []
    by_root: dict[UUID, list[FeedbackRecord]] = defaultdict(list)
    for fb in feedback:
        if fb.run_id is not None:
            by_root[fb.run_id].append(fb)

    ordered = sorted(traces.values(), key=lambda t: t.root.start_time, reverse=True)
    groups: dict[str, list[_Trace]] = defaultdict(list)
    for t in ordered:
        groups[t.task_type].append(t)
    return Analysis(
        project=project,
        since=start,
        until=until,
        task_type=task_type,
        generated_at=utcnow(),
        overall=_group(None, ordered, by_root, top),
        by_task_type={k: _group(k, v, by_root, top) for k, v in sorted(groups.items())},
    )


def _rate(hits: int, total: int) -> float | None:
    return hits / total if total else None


def _latency(traces: Iterable[_Trace]) -> LatencyStats:
    values = []
    for t in traces:
        lat = t.root.latency
        if lat is None:
            md_lat = t.root.metadata.get("latency")
            lat = float(md_lat) if isinstance(md_lat, int | float) and not isinstance(md_lat, bool) else None
        if lat is not None and math.isfinite(lat):
            values.append(lat)
    if not values:
        return LatencyStats()
    import numpy as np  # here, so `traces list/show` (which use this module's helpers) skip it

    arr = np.asarray(values, dtype=float)
    return LatencyStats(
        count=len(values),
        mean=float(arr.mean()),
        p50=float(np.percentile(arr, 50)),
        p95=float(np.percentile(arr, 95)),
        max=float(arr.max()),
    )


def _tokens(traces: Sequence[_Trace]) -> TokenStats:
    counted = [t.tokens for t in traces if t.tokens is not None]
    if not counted:
        return TokenStats()
    total = sum(c[2] for c in counted)
    return TokenStats(
        total=total,
        prompt=sum(c[0] for c in counted),
        completion=sum(c[1] for c in counted),
        runs_counted=len(counted),
        per_run=total / len(counted),
    )


def _errors(traces: Sequence[_Trace], top: int) -> list[ErrorCluster]:
    clusters: dict[str, dict[str, Any]] = {}
    for t in traces:  # newest first, so the example and the run ids are the latest
        for name, message in t.errors:
            sig = error_signature(message)
            c = clusters.setdefault(
                sig, {"count": 0, "example": error_message(message), "runs": [], "sources": Counter()}
            )
            c["count"] += 1
            c["sources"][name] += 1
            if t.root.id not in c["runs"] and len(c["runs"]) < MAX_CLUSTER_RUN_IDS:
                c["runs"].append(t.root.id)
    ranked = sorted(clusters.items(), key=lambda kv: (-kv[1]["count"], kv[0]))[:top]
    return [
        ErrorCluster(
            signature=sig,
            count=c["count"],
            example=c["example"],
            run_ids=c["runs"],
            sources=dict(c["sources"].most_common()),
        )
        for sig, c in ranked
    ]


def _tools(traces: Sequence[_Trace]) -> list[ToolStats]:
    calls: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    for t in traces:
        for tool in t.tools:
            calls[tool.name] += 1
            if tool_failure(tool) is not None:
                errors[tool.name] += 1
        runs.update({tool.name for tool in t.tools})
    return [
        ToolStats(name=n, calls=c, errors=errors[n], error_rate=errors[n] / c, runs=runs[n])
        for n, c in sorted(calls.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def _sequences(traces: Sequence[_Trace], top: int) -> list[ToolSequence]:
    counts: Counter[tuple[str, ...]] = Counter()
    for t in traces:
        names = [tool.name for tool in t.tools]
        grams = {
            tuple(names[i : i + n]) for n in SEQUENCE_LENGTHS for i in range(len(names) - n + 1)
        }
        counts.update(grams)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], -len(kv[0]), kv[0]))
    return [ToolSequence(tools=list(k), runs=v) for k, v in ranked if v >= 2][:top]


def _ids(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(dict.fromkeys(str(v) for v in value if v))
    return []


def _entries(traces: Sequence[_Trace]) -> list[EntryStats]:
    retrieved: Counter[str] = Counter()
    used: Counter[str] = Counter()
    used_by: list[tuple[set[str], bool | None]] = []
    for t in traces:
        md = t.root.metadata
        r_ids, u_ids = _ids(md.get("retrieved_entries")), _ids(md.get("used_entries"))
        retrieved.update(r_ids)
        used.update(u_ids)
        used_by.append((set(u_ids), t.success))
    known = [(u, s) for u, s in used_by if s is not None]
    out = []
    for entry in sorted(set(retrieved) | set(used)):
        with_it = [s for u, s in known if entry in u]
        without = [s for u, s in known if entry not in u]
        rate_with = _rate(sum(with_it), len(with_it))
        rate_without = _rate(sum(without), len(without))
        out.append(
            EntryStats(
                entry_id=entry,
                retrieved=retrieved[entry],
                used=used[entry],
                runs_used=len(with_it),
                success_rate_used=rate_with,
                runs_not_used=len(without),
                success_rate_not_used=rate_without,
                lift=None if rate_with is None or rate_without is None else rate_with - rate_without,
            )
        )
    out.sort(key=lambda e: (-e.used, -e.retrieved, e.entry_id))
    return out


def _feedback(traces: Sequence[_Trace], by_root: Mapping[UUID, list[FeedbackRecord]]) -> list[FeedbackStats]:
    scores: dict[str, list[float]] = defaultdict(list)
    counts: Counter[str] = Counter()
    for t in traces:
        for fb in by_root.get(t.root.id, ()):
            counts[fb.key] += 1
            if fb.score is not None:
                scores[fb.key].append(float(fb.score))
    out = []
    for key in sorted(counts):
        vals = scores.get(key, [])
        out.append(
            FeedbackStats(
                key=key,
                count=counts[key],
                scored=len(vals),
                mean=sum(vals) / len(vals) if vals else None,
                min=min(vals) if vals else None,
                max=max(vals) if vals else None,
            )
        )
    return out


def _group(
    task_type: str | None,
    traces: Sequence[_Trace],
    by_root: Mapping[UUID, list[FeedbackRecord]],
    top: int,
) -> GroupStats:
    known = [t.success for t in traces if t.success is not None]
    error_types: Counter[str] = Counter()
    for t in traces:
        et = t.root.metadata.get("error_type")
        if et and t.success is False:
            error_types[str(et)] += 1
    return GroupStats(
        task_type=task_type,
        runs=len(traces),
        with_outcome=len(known),
        successes=sum(known),
        success_rate=_rate(sum(known), len(known)),
        latency=_latency(traces),
        tokens=_tokens(traces),
        error_types=dict(error_types.most_common()),
        errors=_errors(traces, top),
        tools=_tools(traces),
        sequences=_sequences(traces, top),
        entries=_entries(traces),
        feedback=_feedback(traces, by_root),
    )
