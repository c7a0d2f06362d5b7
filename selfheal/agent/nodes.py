"""The workflow's nodes, as the original design names them.

``retrieve_from_cheatsheet -> execute_task -> evaluate -> {curate_cheatsheet |
optimize_context | user_interaction | END}``. Each node returns a partial
state update; routing lives in edges.py.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from selfheal.agent.record import (
    CheckRecord,
    Evaluation,
    ExecutionRecord,
    LearningRecord,
    ToolCallRecord,
    last_record,
    with_last,
)
from selfheal.agent.nudges import call_key, premature_answer, repeated_call, same_result
from selfheal.agent.state import AgentState, RunContext
from selfheal.tokens import count_tokens

if TYPE_CHECKING:
    from selfheal.cheatsheet.model import Cheatsheet
    from selfheal.config import Settings
    from selfheal.context.model import AgentContext, Example

_log = logging.getLogger(__name__)

_USED_RE = re.compile(r"^\s*\**USED\**\s*:\s*(.*)$", re.IGNORECASE | re.MULTILINE)
_ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]*", re.IGNORECASE)
_PREVIEW = 300


def retrieve_from_cheatsheet(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Pick the top-k cheatsheet entries relevant to the task (DC-RS retrieval).

    Embedding ranking (``selfheal.cheatsheet.ranking``) when it is available and
    embeddings are not turned off, else lexical BM25; either way one slot may go
    to a ``candidate`` entry, which the prompt marks as unproven.
    """
    rc = runtime.context
    hits = _ranked_entries(rc, state["task"], state.get("task_type"), rc.settings.thresholds.top_k)
    entries = [
        {
            "id": h["entry"].id,
            "section": h["entry"].section,
            "status": h["entry"].status,
            "candidate": h["candidate"],
            "score": round(float(h["score"]), 4),
            "text": h["entry"].text(),
        }
        for h in hits
    ]
    context = dict(state.get("context") or {})
    context["cheatsheet_entries"] = entries
    context["version"] = rc.context_version
    examples = retrieve_task_examples(rc.settings, rc.agent_context, state["task"], state.get("task_type"),
                                      embedder=rc.embedder)
    # None: every example fits in the fixed part of the prompt; else the ids retrieved for this task.
    context["examples"] = None if examples is None else [e.id for e in examples]
    cheatsheet = {
        "version": rc.cheatsheet_version,
        "size": len(rc.cheatsheet.entries),
        "entries": entries,
    }
    return {"context": context, "cheatsheet": cheatsheet}


def retrieve_task_examples(
    settings: Settings, ctx: AgentContext, task: str, task_type: str | None, *, embedder: Any = None
) -> list[Example] | None:
    """The context's examples for this task when it holds more than ``context.max_examples``, else None.

    Ranked like entries: same task type first, then embedding similarity of
    the tasks (the injected embedder, else the configured one; word overlap
    when embeddings are off or unavailable).
    """
    from selfheal.context.examples import needs_retrieval, retrieve_examples

    limit = settings.context.max_examples
    if not needs_retrieval(ctx, limit):
        return None
    if embedder is None and settings.embeddings.provider != "none":
        from selfheal.errors import ModelError
        from selfheal.models.embeddings import make_embedder

        try:
            embedder = make_embedder(settings)
        except ModelError as exc:
            _log.warning("embedding retrieval of examples unavailable (%s); using word overlap", exc)
    return retrieve_examples(ctx, task, task_type, max_examples=limit, embedder=embedder)


def _ranked_entries(rc: RunContext, task: str, task_type: str | None, top_k: int) -> list[dict[str, Any]]:
    return rank_entries(rc.settings, rc.cheatsheet, task, task_type, top_k, embedder=rc.embedder,
                        counters=rc.counters)


def rank_entries(
    settings: Settings,
    cheatsheet: Cheatsheet,
    task: str,
    task_type: str | None,
    top_k: int,
    *,
    embedder: Any = None,
    counters: Any = None,
) -> list[dict[str, Any]]:
    """``[{"entry", "score", "candidate"}]`` from embedding ranking, or the BM25 fallback.

    BM25 when embeddings are off (``embeddings.provider: none``) or no embedder
    can be built here (a ModelError, logged); a configured endpoint failing
    mid-run is not hidden. ``embedder`` / ``counters``: injected ones, else
    built from settings.
    """
    if top_k <= 0:
        return []
    if getattr(getattr(settings, "embeddings", None), "provider", None) != "none":
        from selfheal.cheatsheet.counters import open_counters
        from selfheal.cheatsheet.ranking import embedding_cache_dir, retrieve_entries
        from selfheal.errors import ModelError
        from selfheal.models.embeddings import make_embedder

        if embedder is None:
            try:
                embedder = make_embedder(settings)
            except ModelError as exc:
                _log.warning("embedding retrieval unavailable (%s); using BM25", exc)
        if embedder is not None:
            with open_counters(settings, counters) as opened:
                hits = retrieve_entries(
                    cheatsheet, task, task_type=task_type, top_k=top_k, embedder=embedder,
                    counters=opened, candidate_slots=1, cache_dir=embedding_cache_dir(settings),
                )
            return [{"entry": h.entry, "score": h.score, "candidate": h.candidate} for h in hits]
    return _bm25_entries(cheatsheet, task, task_type, top_k)


def _bm25_entries(cheatsheet: Cheatsheet, task: str, task_type: str | None, top_k: int) -> list[dict[str, Any]]:
    """Lexical retrieval: top-k active entries plus one slot for the best-matching candidate."""
    from selfheal.cheatsheet.retrieval import BM25Retriever, retrieve

    active = retrieve(cheatsheet, task, task_type=task_type, top_k=top_k)
    out = [{"entry": h.entry, "score": h.score, "candidate": False} for h in active]
    candidates = [e for e in cheatsheet.entries if e.status == "candidate"]
    if candidates:
        # BM25Retriever indexes active entries only: index the candidates as if they were.
        by_id = {e.id: e for e in candidates}
        best = BM25Retriever([e.model_copy(update={"status": "active"}) for e in candidates]).retrieve(
            task, task_type=task_type, top_k=1
        )
        if best:
            out.append({"entry": by_id[best[0].entry.id], "score": best[0].score, "candidate": True})
    return out


def _tool_descriptions(rc: RunContext) -> list[tuple[str, str]]:
    return [(s["function"]["name"], s["function"]["description"]) for s in tool_schemas(rc)]


_SCHEMAS: dict[tuple[Any, ...], dict[str, Any]] = {}


def tool_schemas(rc: RunContext) -> list[dict[str, Any]]:
    """OpenAI tool schemas of the domain's tools, context.yaml's descriptions winning.

    Cached by (name, argument schema, description): a domain builds new tool
    objects per environment, and LangChain re-derives each schema (a pydantic
    model per tool, ~1.5 ms) for every new object.
    """
    from langchain_core.utils.function_calling import convert_to_openai_tool

    overrides = rc.agent_context.tools
    out = []
    for t in rc.session.tools:
        description = overrides.get(t.name) or t.description or ""
        key = (t.name, t.args_schema, description)
        schema = _SCHEMAS.get(key)
        if schema is None:
            schema = convert_to_openai_tool(t)
            schema["function"]["description"] = description
            _SCHEMAS[key] = schema
        out.append(schema)
    return out


def _bind_tools(rc: RunContext, schemas: list[dict[str, Any]], tool_choice: str) -> Any:
    """The model with the tools bound (tools run by name in :func:`_run_tool_call`)."""
    return rc.model.bind_tools(schemas, tool_choice=tool_choice) if schemas else rc.model


def parse_used_entries(text: str, known: set[str]) -> tuple[list[str], list[str]]:
    """The entry ids the agent says it used (its ``USED:`` line): (known, unknown)."""
    used: list[str] = []
    unknown: list[str] = []
    matches = _USED_RE.findall(text or "")
    if not matches:
        return used, unknown
    for token in _ID_RE.findall(matches[-1]):
        if token.lower() in {"none", "n", "a"}:
            continue
        target = used if token in known else unknown
        if token not in target:
            target.append(token)
    return used, unknown


def _preview(content: Any) -> str:
    text = content if isinstance(content, str) else json.dumps(content, default=str)
    return text if len(text) <= _PREVIEW else text[:_PREVIEW] + "…"


_ELIDED = "[... {n} characters elided to fit the model's context window; call the tool again if you need them]"


def fit_to_context(messages: list[BaseMessage], budget_tokens: int, fixed_tokens: int = 0) -> list[BaseMessage]:
    """The conversation, with the oldest tool results shortened until it fits ``budget_tokens``.

    A local model has a fixed context window: eight steps of log searches overflow
    it, and the run dies with a model error. Old tool results are what the model
    needs least (it has acted on them); the system prompt, the task, the replies
    and the latest step's results are never touched. Unchanged when it fits.
    """
    def size(msgs: list[BaseMessage]) -> int:
        return fixed_tokens + sum(count_tokens(str(m.content)) + 4 for m in msgs)

    total = size(messages)
    if total <= budget_tokens:
        return messages
    last_ai = max((i for i, m in enumerate(messages) if isinstance(m, AIMessage)), default=len(messages))
    out = list(messages)
    for i, m in enumerate(out):
        if total <= budget_tokens:
            break
        if not isinstance(m, ToolMessage) or i > last_ai:
            continue
        text = str(m.content)
        keep = 200
        if len(text) <= keep + len(_ELIDED) + 10:
            continue
        short = text[:keep] + " " + _ELIDED.format(n=len(text) - keep)
        total -= count_tokens(text) - count_tokens(short)
        out[i] = m.model_copy(update={"content": short})
    return out


def _context_budget(rc: RunContext, schemas: list[dict[str, Any]]) -> tuple[int, int] | None:
    """(budget, fixed tokens) for a local model's window; None where the window is the provider's business."""
    from selfheal.models.providers import resolve_provider

    m = rc.settings.model
    if resolve_provider(rc.settings) != "local":
        return None
    # count_tokens is an estimate: keep a fifth of the window as margin for its error.
    return int((m.n_ctx - m.max_tokens) * 0.8), count_tokens(json.dumps(schemas))


#: Sampling temperature of the replies asked again when the model repeats the call it just made.
RESAMPLE_TEMPERATURE = 0.7


def _add_usage(usage: dict[str, int], reply: AIMessage) -> None:
    for k in usage:
        usage[k] += int((reply.usage_metadata or {}).get(k, 0) or 0)


def _invoke_model(rc: RunContext, bound: Any, messages: list[BaseMessage], config: RunnableConfig,
                  **sampling: Any) -> AIMessage:
    """One model turn; ``sampling`` (temperature, seed) overrides the model's for this call only."""
    from selfheal.models.openai_chat import as_model_error

    started = time.perf_counter()
    try:
        reply = bound.invoke(messages, config=config, **sampling)
    except Exception as exc:
        err = as_model_error(exc)
        if err is None:
            raise
        raise err from None
    if not isinstance(reply, AIMessage):  # pragma: no cover - chat models return AIMessage
        reply = AIMessage(content=str(getattr(reply, "content", reply)))
    if "generation_s" not in reply.response_metadata and reply.response_metadata.get("cache") != "replay":
        # no cache wrapper timed it: the call's own time (a replay without a recorded time stays unknown)
        seconds = round(time.perf_counter() - started, 3)
        reply = reply.model_copy(update={"response_metadata": {**reply.response_metadata, "generation_s": seconds}})
    return reply


def generation_seconds(messages: Sequence[BaseMessage]) -> float | None:
    """Seconds the model spent on these messages' replies, live or as recorded; None unless every reply says.

    A replayed run takes no time; this is what it cost when its responses were
    generated, so a replayed learning column reports its live cost per example.
    A run mixing timed replies with a recording older than the times would give
    a partial sum that reads like a whole one: it is unknown instead.
    """
    times = [m.response_metadata.get("generation_s") for m in messages if isinstance(m, AIMessage)]
    if not times or any(t is None for t in times):
        return None
    return round(sum(float(t) for t in times), 3)


def _run_tool_call(rc: RunContext, call: dict[str, Any], config: RunnableConfig) -> ToolMessage:
    tools = {t.name: t for t in rc.session.tools}
    tool = tools.get(call["name"])
    if tool is None:
        return ToolMessage(
            content=f"Error: unknown tool '{call['name']}'. Available: {', '.join(sorted(tools))}.",
            tool_call_id=call["id"] or "",
            name=call["name"],
            status="error",
        )
    try:
        result = tool.invoke({**call, "type": "tool_call"}, config=config)
    except Exception as exc:  # a tool bug must not crash the run: it is evidence
        return ToolMessage(
            content=f"Error: {type(exc).__name__}: {exc}",
            tool_call_id=call["id"] or "",
            name=call["name"],
            status="error",
        )
    if isinstance(result, ToolMessage):
        return result
    return ToolMessage(content=str(result), tool_call_id=call["id"] or "", name=call["name"])


def _refused_tool_run(call: dict[str, Any], content: str, config: RunnableConfig) -> ToolMessage:
    """The refusal of a repeated call, as a tool run of its own in the trace tree (tagged ``refused``).

    The call is not run, but a reader of the trace should see it where the
    model made it, with what the model was told, not only in the run record.
    """
    from langchain_core.runnables.config import get_callback_manager_for_config

    args = call.get("args") or {}
    manager = get_callback_manager_for_config(config)  # a new manager: its tags are this run's only
    manager.add_tags(["refused"], inherit=False)
    manager.add_metadata({"refused": True}, inherit=False)
    run = manager.on_tool_start({"name": call["name"], "description": "not run: a repeated call"},
                                json.dumps(args, ensure_ascii=False, default=str), name=call["name"],
                                inputs=dict(args))
    message = ToolMessage(content=content, tool_call_id=call["id"] or "", name=call["name"], status="error")
    run.on_tool_error(RepeatedCallRefused(content))
    return message


class RepeatedCallRefused(Exception):
    """Why a tool run in the trace did not run: the same call was just made (see :func:`repeated_call`)."""


def execute_task(
    state: AgentState, runtime: Runtime[RunContext], config: RunnableConfig
) -> dict[str, Any]:
    """A bounded tool-calling loop over the domain's tools, with the rendered context."""
    from selfheal.context.render import render_system_prompt

    rc = runtime.context
    started = time.perf_counter()
    entries = (state.get("context") or {}).get("cheatsheet_entries", [])
    entry_objs = [rc.cheatsheet.get(e["id"]) for e in entries]
    example_ids = (state.get("context") or {}).get("examples")
    by_id = {e.id: e for e in rc.agent_context.examples}
    system_prompt = render_system_prompt(
        rc.agent_context,
        task=state["task"],
        task_type=state.get("task_type", "general"),
        entries=[e for e in entry_objs if e is not None],
        tools=_tool_descriptions(rc),
        task_examples=None if example_ids is None else [by_id[i] for i in example_ids if i in by_id],
    )
    messages: list[BaseMessage] = [SystemMessage(content=system_prompt), HumanMessage(content=state["task"])]
    executor = getattr(rc.session, "executor", None)
    if executor is not None:  # the team's own graph does the work; selfheal keeps everything around it
        with reviewed_descriptions(rc.session.tools, rc.agent_context.tools):
            run = run_executor(executor, messages, config)
        return _record_execution(state, entries, system_prompt, started, run)
    schemas = tool_schemas(rc)
    bound = _bind_tools(rc, schemas, "auto")
    first_choice = rc.settings.model.first_turn_tool_choice
    first = bound if first_choice == "auto" else _bind_tools(rc, schemas, first_choice)
    max_steps = rc.settings.thresholds.max_steps
    window = _context_budget(rc, schemas)

    steps = 0
    tool_calls: list[dict[str, Any]] = []
    final_text = ""
    stop_reason = "answered"
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    nudges: list[str] = []
    repeats = 0
    discarded: list[AIMessage] = []  # resampled replies: not in the conversation, but paid for
    seen: dict[str, tuple[int, Any]] = {}  # call -> (step, result) of its first run, for same_result
    resamples = rc.settings.thresholds.resample_repeats if rc.settings.thresholds.refuse_repeats else 0
    while True:
        if steps >= max_steps:
            stop_reason = "step_limit"
            break
        steps += 1
        prompt = messages if window is None else fit_to_context(messages, *window)
        reply = _invoke_model(rc, first if steps == 1 else bound, prompt, config)
        for attempt in range(1, resamples + 1):
            if not any(repeated_call(tool_calls, c) for c in reply.tool_calls):
                break
            # the call just made, again: sample another reply (seeded, so a recording replays)
            repeats += 1
            _add_usage(usage, reply)
            discarded.append(reply)
            reply = _invoke_model(rc, bound, prompt, config, temperature=RESAMPLE_TEMPERATURE,
                                  seed=rc.settings.model.seed + attempt)
        messages.append(reply)
        _add_usage(usage, reply)
        calls = list(reply.tool_calls)
        bad_calls = list(getattr(reply, "invalid_tool_calls", []) or [])
        if not calls and not bad_calls:
            final_text = reply.text if hasattr(reply, "text") else str(reply.content)
            nudge = premature_answer(rc.session, messages, tool_calls) if len(nudges) < rc.settings.thresholds.nudges else None
            if nudge is None or steps >= max_steps:
                break
            nudges.append(nudge)  # visible in the trace: the message, and the record's ``nudges``
            messages.append(HumanMessage(content=nudge))
            continue
        for call in calls:
            repeat = repeated_call(tool_calls, call) if rc.settings.thresholds.refuse_repeats else None
            if repeat is not None:  # visible in the trace: the tool message, and the record's ``repeats``
                msg = _refused_tool_run(call, repeat, config)
                repeats += 1
            else:
                msg = _run_tool_call(rc, call, config)
                key = call_key(call)
                earlier = seen.get(key)
                if rc.settings.thresholds.refuse_repeats and earlier is not None and earlier[1] == msg.content:
                    msg = msg.model_copy(update={"content": same_result(earlier[0], msg.content)})
                    repeats += 1
                else:
                    seen[key] = (steps, msg.content)
            messages.append(msg)
            tool_calls.append(
                {
                    "step": steps,
                    "name": call["name"],
                    "args": call.get("args", {}),
                    "status": getattr(msg, "status", "success") or "success",
                    "output": _preview(msg.content),
                }
            )
        for bad in bad_calls:
            err = f"Error: could not parse arguments for tool '{bad.get('name')}': {bad.get('error') or 'invalid JSON'}"
            messages.append(
                ToolMessage(content=err, tool_call_id=bad.get("id") or "", name=bad.get("name") or "", status="error")
            )
            tool_calls.append(
                {
                    "step": steps,
                    "name": bad.get("name") or "?",
                    "args": bad.get("args"),
                    "status": "error",
                    "output": err,
                }
            )

    run = ExecutionResult(messages=messages, steps=steps, stop_reason=stop_reason, tool_calls=tool_calls,
                          final_answer=final_text, usage=usage, nudges=nudges, repeats=repeats,
                          model_s=generation_seconds([*discarded, *messages]))
    return _record_execution(state, entries, system_prompt, started, run)


@dataclass
class ExecutionResult:
    """What one execution of the task produced, whoever ran it (selfheal's loop or a team's graph)."""

    messages: list[BaseMessage]
    steps: int
    stop_reason: str
    tool_calls: list[dict[str, Any]]
    final_answer: str
    usage: dict[str, int]
    nudges: list[str] = field(default_factory=list)
    repeats: int = 0
    model_s: float | None = None  # see generation_seconds


def _record_execution(state: AgentState, entries: list[dict[str, Any]], system_prompt: str, started: float,
                      run: ExecutionResult) -> dict[str, Any]:
    known_ids = {e["id"] for e in entries}
    used, unknown = parse_used_entries(run.final_answer, known_ids)
    record = ExecutionRecord(
        task=state["task"],
        task_type=state.get("task_type", "general"),
        steps=run.steps,
        stop_reason=run.stop_reason,
        tool_calls=[ToolCallRecord.model_validate(c) for c in run.tool_calls],
        final_answer=run.final_answer,
        nudges=run.nudges,
        repeats=run.repeats,
        used_entries=used,
        unknown_entries_claimed=unknown,
        retrieved_entries=sorted(known_ids),
        usage=run.usage,
        system_prompt_tokens=count_tokens(system_prompt),
        latency_s=round(time.perf_counter() - started, 4),
        model_s=run.model_s,
    )
    history = list(state.get("execution_history") or [])
    history.append(record.to_state())
    return {"messages": run.messages, "execution_history": history}


@contextmanager
def reviewed_descriptions(tools: list[Any], overrides: dict[str, str]) -> Iterator[None]:
    """``context.yaml``'s tool descriptions on a team's tool objects while its graph runs.

    A graph that binds its tools per model call (``create_agent`` does) then
    shows the model the reviewed descriptions; the tools get their own back after.
    """
    restore = []
    for tool in tools:
        text = overrides.get(tool.name)
        if text and text != tool.description:
            restore.append((tool, tool.description))
            tool.description = text
    try:
        yield
    finally:
        for tool, description in restore:
            tool.description = description


def run_executor(executor: Any, messages: list[BaseMessage], config: RunnableConfig) -> ExecutionResult:
    """Invoke a team's messages-based runnable (a LangGraph graph, ``create_agent``'s agent) on the
    rendered system prompt and task, and read what it did from the messages it returns.

    The runnable runs under this node's config, so its own nodes, model and
    tool calls become child runs of selfheal's trace.
    """
    from selfheal.models.openai_chat import as_model_error

    try:
        out = executor.invoke({"messages": list(messages)}, config=config)
    except Exception as exc:
        err = as_model_error(exc)
        if err is None:
            raise
        raise err from None
    if isinstance(out, dict) and isinstance(out.get("messages"), list):
        produced = list(out["messages"])
    elif isinstance(out, BaseMessage):
        produced = [*messages, out]
    else:
        produced = [*messages, AIMessage(content=str(out))]
    # The graph returns the whole conversation: what it added starts after the task's message.
    start = next((i + 1 for i, m in enumerate(produced) if isinstance(m, HumanMessage)
                  and m.content == messages[-1].content), len(messages))
    new = produced[start:]
    results = {m.tool_call_id: m for m in new if isinstance(m, ToolMessage)}
    tool_calls: list[dict[str, Any]] = []
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    steps, final_text = 0, ""
    for m in new:
        if not isinstance(m, AIMessage):
            continue
        steps += 1
        for k in usage:
            usage[k] += int((m.usage_metadata or {}).get(k, 0) or 0)
        for call in m.tool_calls:
            res = results.get(call.get("id") or "")
            tool_calls.append({
                "step": steps, "name": call["name"], "args": call.get("args", {}),
                "status": (getattr(res, "status", "success") or "success") if res is not None else "error",
                "output": _preview(res.content) if res is not None else "no result",
            })  # fmt: skip
        if not m.tool_calls:
            final_text = m.text if hasattr(m, "text") else str(m.content)
    stop_reason = "answered" if final_text or not new or not isinstance(new[-1], ToolMessage) else "no_answer"
    return ExecutionResult(messages=[*messages, *new], steps=steps, stop_reason=stop_reason, tool_calls=tool_calls,
                           final_answer=final_text, usage=usage, model_s=generation_seconds(new))


def _efficiency(record: ExecutionRecord, max_steps: int) -> float:
    """1.0 for a short clean run; falls with tool errors and with steps used."""
    calls = record.tool_calls
    errors = sum(1 for c in calls if c.status == "error")
    error_part = 1.0 - (errors / len(calls) if calls else 0.0)
    step_part = 1.0 - (max(record.steps - 1, 0) / max_steps)
    return round(max(0.0, min(1.0, 0.5 * error_part + 0.5 * step_part)), 3)


def evaluate(
    state: AgentState, runtime: Runtime[RunContext], config: RunnableConfig
) -> dict[str, Any]:
    """Decide success from evidence (state checks, tool errors), never the model's claim.

    With learning on, a successful run's used entries are counted here (the
    curate node counts failures, with the Reflector's tags).
    """
    rc = runtime.context
    record = last_record(state)
    verdict = rc.session.verify(record.final_answer)
    calls = record.tool_calls
    tool_errors = [c for c in calls if c.status == "error"]
    changed = [c for c in calls if c.status != "error"]

    error_type: str | None = None
    if record.stop_reason == "step_limit":
        error_type = "step_limit"
    if verdict.passed is not None:
        success = bool(verdict.passed)
        if not success:
            error_type = error_type or "check_failed"
        reason = verdict.summary or ("all state checks passed" if success else "state checks failed")
    else:
        # No environment checks available (real account, free-form task): the only
        # evidence is how the tools behaved. Success still needs user confirmation.
        if error_type is None and not changed:
            error_type = "no_action"
        elif error_type is None and tool_errors and len(tool_errors) >= len(changed):
            error_type = "tool_error"
        success = error_type is None
        reason = (
            "no state checks for this task; judged from tool results"
            + (f" ({len(tool_errors)} tool error(s))" if tool_errors else "")
        )

    efficiency = _efficiency(record, rc.settings.thresholds.max_steps)
    opportunities: list[str] = []
    if not success:
        opportunities.append("failure_pattern_detected")
    if efficiency < rc.settings.thresholds.efficiency:
        opportunities.append("low_efficiency")
    if success and verdict.passed is None:
        opportunities.append("needs_user_confirmation")

    record.evaluation = Evaluation(
        success=success,
        reason=reason,
        error_type=error_type,
        efficiency_score=efficiency,
        tool_errors=len(tool_errors),
        checks=[CheckRecord(description=c.description, passed=c.passed, detail=c.detail) for c in verdict.checks],
        verified=verdict.passed is not None,
        improvement_opportunities=opportunities,
    )
    if rc.learning and rc.learner is not None and success:
        # A success never reaches the Reflector: the learner counts its used entries here.
        counted = rc.learner.count_success(
            rc, run_id=_run_id(config), used_entries=record.used_entries, verified=verdict.passed is not None
        )
        record.learning = LearningRecord(counted=counted)
    return {"execution_history": with_last(state, record), "needs_improvement": bool(opportunities)}


def _run_id(config: RunnableConfig | None) -> str:
    """The run's id: the runner uses it as the checkpoint thread id."""
    configurable = (config or {}).get("configurable") or {}
    return str(configurable.get("thread_id") or "")


def _learning_not_enabled(
    state: AgentState, runtime: Runtime[RunContext], what: str, node: str, route: str
) -> dict[str, Any]:
    rc = runtime.context
    triggers = ", ".join(last_record(state).judged.improvement_opportunities) or "none"
    if not rc.learning:
        status = "disabled by --no-learn"
    elif rc.learner is None and node == "curate_cheatsheet":
        status = "off (no learner: settings.learner_factory is unset)"
    else:
        status = "not enabled in this version"
    note = f"{node}: triggered by {triggers}; {what} is {status} — nothing was changed"
    return {"improvement_suggestions": [*(state.get("improvement_suggestions") or []), note], "route": route}


def curate_cheatsheet(
    state: AgentState, runtime: Runtime[RunContext], config: RunnableConfig
) -> dict[str, Any]:
    """ACE online curation: reflect on the run, curate deltas, apply them to the cheatsheet.

    Each applied change becomes a line of ``improvement_suggestions``; the
    whole outcome (applied, rejected, errors, counters, reflection) is the
    execution record's ``learning``. Model failures are reported, not raised.
    """
    rc = runtime.context
    if not rc.learning or rc.learner is None:
        return _learning_not_enabled(state, runtime, "cheatsheet curation", "curate_cheatsheet", "curate")
    outcome = rc.learner.learn(state, rc, run_id=_run_id(config), config=config)
    record = last_record(state)
    previous = record.learning.counted if record.learning is not None else []
    learning = LearningRecord.model_validate(dict(outcome.record))
    learning.counted = list(dict.fromkeys([*previous, *learning.counted]))
    record.learning = learning
    notes = [*(state.get("improvement_suggestions") or []), *outcome.suggestions]
    return {"execution_history": with_last(state, record), "improvement_suggestions": notes, "route": "curate"}


def optimize_context(
    state: AgentState, runtime: Runtime[RunContext], config: RunnableConfig
) -> dict[str, Any]:
    """Record the success-rate trigger; never optimize inline.

    Optimizing means experiments over a dataset (minutes, many model calls):
    the run that noticed the drop only appends the trigger, with the numbers
    it routed on, to ``<state>/triggers.jsonl``; ``selfheal optimize`` acts
    on it and ``selfheal status`` shows it pending until then. With learning
    off (``--no-learn``) nothing is recorded.
    """
    rc = runtime.context
    if not rc.learning:
        return _learning_not_enabled(state, runtime, "context optimisation", "optimize_context", "optimize")
    from selfheal.tracing.trigger_log import record_trigger, success_rate_event

    record = last_record(state)
    th = rc.settings.thresholds
    event = success_rate_event(run_id=_run_id(config) or None, task_type=record.task_type,
                               recent=rc.recent_successes, current=record.judged.success,
                               threshold=th.success_rate, window=th.recent_runs)
    try:
        record_trigger(rc.settings.state_dir, event)
        note = (f"optimize_context: trigger recorded ({event.explanation}); "
                "run `selfheal optimize` to act on it")
    except OSError as exc:  # a read-only state dir must not fail the run
        note = f"optimize_context: trigger not recorded ({exc.strerror or exc}): {event.explanation}"
    learning = record.learning or LearningRecord()
    learning.triggers = [*learning.triggers, f"success_rate:{event.id}"]
    record.learning = learning
    notes = [*(state.get("improvement_suggestions") or []), note]
    return {"execution_history": with_last(state, record), "improvement_suggestions": notes, "route": "optimize"}


def user_interaction(state: AgentState, runtime: Runtime[RunContext]) -> dict[str, Any]:
    """Hand the outcome to the user: unverified successes ask for feedback."""
    notes = list(state.get("improvement_suggestions") or [])
    if "needs_user_confirmation" in last_record(state).judged.improvement_opportunities:
        notes.append(
            "user_interaction: no state checks could verify this run; confirm or correct it with feedback"
        )
    return {"improvement_suggestions": notes, "route": "user"}
