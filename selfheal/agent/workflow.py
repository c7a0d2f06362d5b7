"""Graph construction: state, nodes and edges kept apart, wired here."""

from __future__ import annotations

import atexit
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.graph import END, START, StateGraph

from selfheal.agent import nodes
from selfheal.agent.edges import should_improve
from selfheal.agent.state import AgentState, RunContext

if TYPE_CHECKING:
    from selfheal.redact import Redactor

NODE_NAMES = (
    "retrieve_from_cheatsheet",
    "execute_task",
    "evaluate",
    "curate_cheatsheet",
    "optimize_context",
    "user_interaction",
)


def build_workflow() -> StateGraph:
    """The original design's graph, uncompiled (callers choose the checkpointer)."""
    g = StateGraph(AgentState, context_schema=RunContext)
    g.add_node("retrieve_from_cheatsheet", nodes.retrieve_from_cheatsheet)
    g.add_node("execute_task", nodes.execute_task)
    g.add_node("evaluate", nodes.evaluate)
    g.add_node("curate_cheatsheet", nodes.curate_cheatsheet)
    g.add_node("optimize_context", nodes.optimize_context)
    g.add_node("user_interaction", nodes.user_interaction)

    g.add_edge(START, "retrieve_from_cheatsheet")
    g.add_edge("retrieve_from_cheatsheet", "execute_task")
    g.add_edge("execute_task", "evaluate")
    g.add_conditional_edges(
        "evaluate",
        should_improve,
        {
            "curate": "curate_cheatsheet",
            "optimize": "optimize_context",
            "user": "user_interaction",
            "end": END,
        },
    )
    g.add_edge("curate_cheatsheet", END)
    g.add_edge("optimize_context", END)
    g.add_edge("user_interaction", END)
    return g


def compile_workflow(checkpointer: Any | None = None) -> Any:
    """Compile the graph, with a LangGraph checkpointer when given."""
    return build_workflow().compile(checkpointer=checkpointer, name="selfheal")


_GRAPHS: dict[tuple[str, int | None], Any] = {}
_REDACTORS: list[Redactor | None] = []
_GRAPHS_LOCK = threading.Lock()


def checkpointed_workflow(checkpoint_path: Path, redactor: Redactor | None = None) -> Any:
    """The compiled graph with a SQLite checkpointer at ``checkpoint_path``.

    Compiled once per path, redactor and process: compiling costs more than a whole
    zero-latency run. The SqliteSaver serialises access to its connection
    with its own lock, so the graph is safe to share between threads. With a
    ``redactor`` every checkpoint is redacted before it is written
    (:mod:`selfheal.agent.checkpoint`); ``None`` stores state as it is.
    """
    path = str(Path(checkpoint_path).resolve())
    key = (path, None if redactor is None else id(redactor))
    with _GRAPHS_LOCK:
        graph = _GRAPHS.get(key)
        if graph is None:
            from langgraph.checkpoint.sqlite import SqliteSaver

            from selfheal.agent.checkpoint import RedactingSqliteSaver

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, check_same_thread=False)
            # WAL + synchronous=NORMAL: a checkpoint commit no longer waits for an fsync; a crash
            # can lose at most the last checkpoints of a run, never corrupt the file.
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            saver = SqliteSaver(conn) if redactor is None else RedactingSqliteSaver(conn, redactor)
            graph = _GRAPHS[key] = compile_workflow(saver)
            _REDACTORS.append(redactor)  # keeps id(redactor) unique while the graph is cached
            atexit.register(conn.close)
        return graph
