"""``selfheal chat``: the user interaction layer as a conversation, one LangGraph step per line typed.

The original design's ``user_interaction`` node belongs to the agent's run
graph (``selfheal.agent.workflow``), where it hands one run's outcome to the
user; it cannot call this layer (``agent`` sits below ``interact``). The chat
is therefore its own small graph here::

    START -> parse --/command--> user_interaction -> END
                   \\-free text-> route (the model picks a command) -> user_interaction
                   \\-/quit-----> END

``user_interaction`` runs one handler of the registry in
:mod:`selfheal.interact.chat_handlers`. A failing command answers with one
``error:`` line and the session goes on; ``/quit`` or end of input ends it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from selfheal.errors import SelfhealError
from selfheal.interact.chat_handlers import HANDLERS, QUIT, resolve

PROMPT = "selfheal> "
BANNER = "selfheal chat: /help lists the commands; /quit or Ctrl-D leaves."
_ROUTER = """You route a user's request to exactly one command of a CLI. Commands:
{commands}
Answer with one line: the command name, then its arguments taken from the request. No other text.
Examples:
show me all failed runs this week -> ask failed runs this week
why did run 3f2a pick memory? -> explain 3f2a why did it pick memory?
Request: {text}"""


class ChatState(TypedDict, total=False):
    line: str
    command: str
    args: str
    reply: str
    quit: bool


def parse(state: ChatState) -> ChatState:
    """``/name args`` -> command and args; anything else is left for the router."""
    line = state.get("line", "").strip()
    if not line:
        return {"command": "", "reply": ""}
    if line.startswith("/"):
        name, _, args = line[1:].partition(" ")
        name = name.lower()
        if name in QUIT:
            return {"command": name, "quit": True, "reply": "bye"}
        return {"command": name, "args": args.strip()}
    return {"command": "", "args": line}


def _after_parse(state: ChatState) -> str:
    if state.get("quit"):
        return "end"
    if state.get("command"):
        return "user_interaction"
    return "route" if state.get("args") else "end"


def parse_route(text: str) -> tuple[str, str] | None:
    """(command, args) from the router's answer, when it names a known command."""
    for line in text.strip().splitlines():
        m = re.match(r"^\s*[`*>-]*\s*/?([a-z_]+)\b[`*]*[:\s]*(.*)$", line.strip(), re.I)
        if m and m.group(1).lower() in HANDLERS:
            return m.group(1).lower(), m.group(2).strip().strip("`")
    return None


def make_router(settings: Any, model_factory: Callable[[], Any] | None = None) -> Callable[[ChatState], ChatState]:
    """The ``route`` node: ask the chat model which command a free-text request means."""
    holder: dict[str, Any] = {}

    def route(state: ChatState) -> ChatState:
        text = state.get("args", "")
        try:
            if "model" not in holder:
                if model_factory is not None:
                    holder["model"] = model_factory()
                else:
                    from selfheal.models.providers import make_chat_model

                    holder["model"] = make_chat_model(settings)
            commands = "\n".join(f"- {n}: {s.help}" for n, s in HANDLERS.items() if n != "help")
            answer = holder["model"].invoke(_ROUTER.format(commands=commands, text=text))
        except SelfhealError as exc:
            return {"command": "", "reply": f"error: could not ask the model to route that ({exc.message}); "
                                            "use a /command (/help lists them)"}
        picked = parse_route(str(getattr(answer, "content", answer)))
        if picked is None:
            return {"command": "", "reply": "I could not tell which command that is; /help lists them."}
        command, args = picked
        return {"command": command, "args": args or text}

    return route


def _after_route(state: ChatState) -> str:
    return "user_interaction" if state.get("command") else "end"


def make_user_interaction(settings: Any) -> Callable[[ChatState], ChatState]:
    """The ``user_interaction`` node: run the command's handler; its failure is one ``error:`` line."""

    def user_interaction(state: ChatState) -> ChatState:
        name = state.get("command", "")
        try:
            reply = resolve(name)(settings, state.get("args", ""))
        except SelfhealError as exc:
            reply = f"error: {exc.message}" if not exc.message.startswith("/") else exc.message
        return {"reply": reply}

    return user_interaction


def build_chat_graph(settings: Any, *, model_factory: Callable[[], Any] | None = None) -> Any:
    """The compiled chat graph: invoke it with ``{"line": text}``; it answers ``reply`` (and ``quit``)."""
    g = StateGraph(ChatState)
    g.add_node("parse", parse)
    g.add_node("route", make_router(settings, model_factory))
    g.add_node("user_interaction", make_user_interaction(settings))
    g.add_edge(START, "parse")
    g.add_conditional_edges("parse", _after_parse, {"route": "route", "user_interaction": "user_interaction",
                                                   "end": END})
    g.add_conditional_edges("route", _after_route, {"user_interaction": "user_interaction", "end": END})
    g.add_edge("user_interaction", END)
    return g.compile(name="selfheal-chat")


def respond(graph: Any, line: str) -> ChatState:
    """One turn: the reply (and whether the user asked to leave)."""
    result: ChatState = graph.invoke({"line": line, "command": "", "args": "", "reply": "", "quit": False})
    return result


def run_chat(
    settings: Any,
    *,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
    model_factory: Callable[[], Any] | None = None,
) -> int:
    """The interactive loop; returns the exit status (0 on /quit and on end of input)."""
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:  # pragma: no cover - not on every platform
        pass
    graph = build_chat_graph(settings, model_factory=model_factory)
    write(BANNER)
    while True:
        try:
            line = read(PROMPT)
        except EOFError:
            write("")
            return 0
        except KeyboardInterrupt:
            write("\n(/quit or Ctrl-D leaves)")
            continue
        try:
            state = respond(graph, line)
        except KeyboardInterrupt:
            write("interrupted")
            continue
        except Exception as exc:  # a bug in one command must not end the conversation
            write(f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
            continue
        if state.get("reply"):
            write(state["reply"])
        if state.get("quit"):
            return 0
