"""Agent plug-ins: the protocol an agent implements and the registry that finds it."""

from selfheal.agents.protocol import AgentPlugin, AgentSession, CheckResult, Verdict
from selfheal.agents.registry import ENTRY_POINT_GROUP, AgentSource, agent_sources, get_agent, load_object

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentPlugin",
    "AgentSession",
    "AgentSource",
    "CheckResult",
    "Verdict",
    "agent_sources",
    "get_agent",
    "load_object",
]
