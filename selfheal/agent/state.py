"""The workflow's state (the original design's ``AgentState``) and run-scoped context.

State holds only plain, checkpointable data. Live dependencies (the model,
the domain's tools, the loaded context and cheatsheet) travel in
:class:`RunContext`, LangGraph's run-scoped ``context``, which is never
checkpointed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage
from langgraph.graph.message import add_messages

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.cheatsheet.model import Cheatsheet
    from selfheal.config import Settings
    from selfheal.context.model import AgentContext
    from selfheal.agent.learning import Learner
    from selfheal.agents.protocol import AgentSession


class AgentState(TypedDict, total=False):
    """The original design's state schema, plus the task type for routing."""

    messages: Annotated[list[AnyMessage], add_messages]
    cheatsheet: dict[str, Any]  # {"version", "size", "entries": retrieved entries}
    context: dict[str, Any]  # {"version", "cheatsheet_entries", "system_prompt_tokens"}
    task: str
    task_type: str
    execution_history: list[dict[str, Any]]
    improvement_suggestions: list[str]
    needs_improvement: bool
    route: str


@dataclass
class RunContext:
    """Everything a run needs that is not state: injected as LangGraph runtime context."""

    settings: Settings
    model: BaseChatModel
    session: AgentSession
    agent_context: AgentContext
    cheatsheet: Cheatsheet
    context_version: str
    cheatsheet_version: str
    recent_successes: list[bool] = field(default_factory=list)
    learning: bool = True
    model_identity: str = ""
    # Retrieval: the embedder (selfheal.models.embeddings) and the entries' counter store
    # (selfheal.cheatsheet.counters.CounterStore). None: built from settings when needed.
    embedder: Any = None
    counters: Any = None
    # The model that plays Reflector and Curator; None: the agent's own model.
    learner_model: BaseChatModel | None = None
    # Online learning (selfheal.agent.learning.Learner); None: the run does not learn.
    learner: Learner | None = None
