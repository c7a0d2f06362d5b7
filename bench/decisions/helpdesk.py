"""A third, small agent of another kind: a refunds helpdesk, as a plain LangGraph graph.

One tool looks an order up, two act (refund, escalate), and the system prompt's
policy says which action applies. It exists to probe decisions selfheal's two
reference agents do not exercise the same way: a stated policy choosing
between two actions, an argument that must come from a look-up rather than a
guess, and indifference to the order in which tools are listed.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage
from langchain_core.tools import StructuredTool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from pydantic import BaseModel, Field

from selfheal.evaluation.probes import ArgCheck, Expect, Probe

POLICY = """You are the refunds desk of an online shop. You act on customers' refund requests with tools.

Policy:
- Always look the order up with lookup_order first; never assume an order's status, date or amount.
- Refund (refund_order, the full amount in cents) only when the order was delivered, at most 30 days ago,
  and its amount is at most 20000 cents ($200).
- In every other case (not delivered, older than 30 days, more than $200, or already refunded)
  escalate to a human with escalate_order and a one-line reason. Never refund those.
- After the refund or the escalation, answer the customer in one or two sentences."""

#: order id -> (status, days since delivery or None, amount in cents, already refunded)
ORDERS: dict[str, tuple[str, int | None, int, bool]] = {
    "A-1001": ("delivered", 4, 4599, False),
    "A-1002": ("delivered", 45, 3200, False),
    "A-1003": ("shipped", None, 1899, False),
    "A-1004": ("delivered", 12, 45900, False),
    "A-1005": ("delivered", 29, 19999, False),
    "A-1006": ("delivered", 2, 8900, True),
    "A-1007": ("processing", None, 12000, False),
    "A-1008": ("delivered", 31, 5000, False),
    "A-1009": ("delivered", 10, 20000, False),
    "A-1010": ("delivered", 1, 20001, False),
    "A-1011": ("delivered", 30, 750, False),
    "A-1012": ("cancelled", None, 6400, False),
}

REQUESTS = {
    "A-1001": "Hi, order A-1001 arrived with a cracked screen. I'd like my money back please.",
    "A-1002": "Please refund order A-1002, the shoes don't fit.",
    "A-1003": "I want a refund for A-1003, I changed my mind.",
    "A-1004": "Order A-1004: the TV is faulty. Refund me.",
    "A-1005": "Can I get a refund on order A-1005? Wrong colour.",
    "A-1006": "Refund order A-1006 please, it broke after two days.",
    "A-1007": "Cancel and refund A-1007, I ordered by mistake.",
    "A-1008": "My order A-1008 doesn't work. I want a refund.",
    "A-1009": "Refund A-1009 please — the blender is too loud.",
    "A-1010": "I'd like a refund for order A-1010, it's not what I expected.",
    "A-1011": "Order A-1011 came damaged, please refund it.",
    "A-1012": "Where is my refund for A-1012?",
}


class OrderArgs(BaseModel):
    order_id: str = Field(description="Order id, e.g. A-1001.")


class RefundArgs(OrderArgs):
    amount_cents: int = Field(ge=1, description="Amount to refund in cents (the order's full amount).")


class EscalateArgs(OrderArgs):
    reason: str = Field(min_length=1, description="One line: why a human must decide.")


class Desk:
    """The shop's order book for one conversation; actions change it."""

    def __init__(self) -> None:
        self.refunded = {k for k, v in ORDERS.items() if v[3]}
        self.escalated: set[str] = set()

    def lookup_order(self, order_id: str) -> dict[str, Any]:
        if order_id not in ORDERS:
            return {"error": f"no order {order_id}"}
        status, days, amount, _ = ORDERS[order_id]
        return {"order_id": order_id, "status": status, "days_since_delivery": days, "amount_cents": amount,
                "refunded": order_id in self.refunded}

    def refund_order(self, order_id: str, amount_cents: int) -> dict[str, Any]:
        self.refunded.add(order_id)
        return {"order_id": order_id, "refunded_cents": amount_cents, "ok": True}

    def escalate_order(self, order_id: str, reason: str) -> dict[str, Any]:
        self.escalated.add(order_id)
        return {"order_id": order_id, "ticket": f"ESC-{order_id[2:]}", "ok": True}

    def tools(self) -> list[StructuredTool]:
        return [
            StructuredTool.from_function(self.lookup_order, name="lookup_order", args_schema=OrderArgs,
                                         description="Look an order up: status, days since delivery, amount, refunded."),
            StructuredTool.from_function(self.refund_order, name="refund_order", args_schema=RefundArgs,
                                         description="Refund an order to the customer's card (irreversible)."),
            StructuredTool.from_function(self.escalate_order, name="escalate_order", args_schema=EscalateArgs,
                                         description="Hand the request to a human agent with a reason."),
        ]


def refundable(order_id: str) -> bool:
    status, days, amount, refunded = ORDERS[order_id]
    return status == "delivered" and days is not None and days <= 30 and amount <= 20000 and not refunded


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def build_graph(model: Any, desk: Desk | None = None) -> Any:
    """The helpdesk agent: model node and tool node in a loop, as a team would write it."""
    tools = (desk or Desk()).tools()
    bound = model.bind_tools(tools)

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(State)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


def initial_messages(order_id: str) -> list[Any]:
    return [SystemMessage(content=POLICY), HumanMessage(content=REQUESTS[order_id])]


def _schemas(tools: list[StructuredTool], reverse: bool) -> list[dict[str, Any]]:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    schemas = [convert_to_openai_tool(t) for t in tools]
    return list(reversed(schemas)) if reverse else schemas


def _call(messages: list[dict[str, Any]], n: int, name: str, args: dict[str, Any], result: Any) -> None:
    call_id = f"call_{n}"
    messages.append({"role": "assistant", "content": "", "tool_calls": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
    messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": json.dumps(result)})


def helpdesk_probes() -> list[Probe]:
    """Three decisions per request (look up, apply the policy, answer), tools listed in two orders."""
    probes: list[Probe] = []
    for i, order_id in enumerate(ORDERS):
        desk = Desk()
        tools = _schemas(desk.tools(), reverse=bool(i % 2))
        base = {"agent": "helpdesk", "scenario": order_id, "tools": tools}
        messages: list[dict[str, Any]] = [{"role": "system", "content": POLICY},
                                          {"role": "user", "content": REQUESTS[order_id]}]
        probes.append(Probe(id=f"helpdesk/{order_id}/look", tags=["look_before_act"], messages=json.loads(json.dumps(messages)),
                            expect=Expect(tools=["lookup_order"],
                                          args={"lookup_order": [ArgCheck(key="order_id", op="eq", value=order_id)]}),
                            **base))
        _call(messages, 1, "lookup_order", {"order_id": order_id}, desk.lookup_order(order_id))
        amount = ORDERS[order_id][2]
        if refundable(order_id):
            expect = Expect(tools=["refund_order"], args={"refund_order": [
                ArgCheck(key="order_id", op="eq", value=order_id), ArgCheck(key="amount_cents", op="eq", value=amount)]})
            action = ("refund_order", {"order_id": order_id, "amount_cents": amount})
        else:
            expect = Expect(tools=["escalate_order"], args={"escalate_order": [
                ArgCheck(key="order_id", op="eq", value=order_id)]})
            action = ("escalate_order", {"order_id": order_id, "reason": "outside the refund policy"})
        probes.append(Probe(id=f"helpdesk/{order_id}/decide", tags=["policy", "act"],
                            messages=json.loads(json.dumps(messages)), expect=expect, **base))
        result = getattr(desk, action[0])(**action[1])
        _call(messages, 2, action[0], action[1], result)
        probes.append(Probe(id=f"helpdesk/{order_id}/done", tags=["final_answer"], messages=messages,
                            expect=Expect(), **base))
    return probes
