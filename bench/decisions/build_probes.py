"""Build the decision probe set from the reference agents' scenarios and a third, small agent.

Every probe is a real conversation state: the agent's real system prompt (its
context rendered by selfheal, retrieved entries and all), its real tool
schemas, and tool results produced by running its real tools in the
scenario's environment (moto for lambda_ops, the generated SQLite database for
sql_analyst). The expected next step comes from what the scenario says is
right (its checks, its gold SQL), so no label is typed by hand except the
helpdesk agent's, whose policy is spelled out in its own module.

    python bench/decisions/build_probes.py            # writes evals/decisions/*.jsonl

Decision kinds (tags):
  look_before_act  the task just arrived: look something up, do not act or answer
  act              the evidence is in: make the change the scenario needs (arguments checked)
  no_early_stop    the last look-up came back empty: look again, do not answer yet
  final_answer     the change is made / the result is in: answer (answer text checked when known)
  uses_entry       the rule needed is a cheatsheet entry in the prompt: follow it
  policy           the system prompt's policy decides between two actions
  recover          the last call failed: fix it and call again
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402

from selfheal import load_settings, prepare_context  # noqa: E402
from selfheal.evaluation.probes import ArgCheck, Expect, Probe, write_probes  # noqa: E402
from selfheal.yamlio import read_yaml  # noqa: E402

OUT = ROOT / "evals" / "decisions"


def _schemas(tools: list[Any], overrides: dict[str, str]) -> list[dict[str, Any]]:
    out = []
    for t in tools:
        schema = convert_to_openai_tool(t)
        schema["function"]["description"] = overrides.get(t.name) or t.description or ""
        out.append(schema)
    return out


class Conversation:
    """Messages in OpenAI shape, with tool calls executed by the environment's real tools."""

    def __init__(self, system: str, task: str, tools: list[Any]) -> None:
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system},
                                               {"role": "user", "content": task}]
        self.tools = {t.name: t for t in tools}
        self.n = 0

    def call(self, name: str, args: dict[str, Any]) -> str:
        self.n += 1
        call_id = f"call_{self.n}"
        try:
            result = self.tools[name].invoke(args)
            content = result if isinstance(result, str) else json.dumps(result, default=str)
        except Exception as exc:  # a failing call is part of the conversation, as in a real run
            content = f"Error: {type(exc).__name__}: {exc}"
        self.messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
        self.messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": content})
        return content

    def fake(self, name: str, args: dict[str, Any], content: str) -> None:
        """A call whose result is given (an empty search, an error the environment would not produce)."""
        self.n += 1
        call_id = f"call_{self.n}"
        self.messages.append({"role": "assistant", "content": "", "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
        self.messages.append({"role": "tool", "tool_call_id": call_id, "name": name, "content": content})

    def snapshot(self) -> list[dict[str, Any]]:
        return json.loads(json.dumps(self.messages))


# -- lambda_ops -------------------------------------------------------------------------------

LAMBDA_LOOKUPS = ["list_functions", "get_function_configuration", "get_function_metrics", "search_logs",
                  "get_account_concurrency", "list_versions"]


def _lambda_action(check: dict[str, Any]) -> tuple[str, list[ArgCheck]] | None:
    """The call that fixes a failing check, and the conditions on its arguments."""
    fn, field, op, value = check["function"], str(check["field"]), check.get("op", "eq"), check.get("value")
    name = [ArgCheck(key="function_name", op="eq", value=fn)]
    if field == "timeout_s":
        return "update_timeout", [*name, ArgCheck(key="timeout_s", op=op, value=value)]
    if field == "memory_mb":
        return "update_memory", [*name, ArgCheck(key="memory_mb", op=op, value=value)]
    if field == "reserved_concurrency":
        if op == "absent":
            return "remove_reserved_concurrency", name
        return "set_reserved_concurrency", [*name, ArgCheck(key="concurrency", op=op, value=value)]
    if field.startswith("provisioned_concurrency."):
        qualifier = field.split(".", 1)[1]
        return "set_provisioned_concurrency", [*name, ArgCheck(key="qualifier", op="eq", value=qualifier),
                                               ArgCheck(key="concurrency", op=op, value=value)]
    if field.startswith("alias."):
        alias = field.split(".")[1]
        checks = [*name, ArgCheck(key="alias", op="eq", value=alias)]
        if field.endswith(".version"):
            checks.append(ArgCheck(key="version", op="eq", value=value))
        return "update_alias", checks
    return None


def lambda_probes() -> list[Probe]:
    settings = load_settings(ROOT, overrides={"agent": "lambda_ops"})
    from selfheal import get_agent

    plugin = get_agent(settings)
    context = read_yaml(settings.prompts_dir / "context.yaml") or {}
    overrides = {k: v for k, v in (context.get("tools") or {}).items() if isinstance(v, str)}
    scen_dir = ROOT / "evals" / "lambda_ops" / "scenarios"
    probes: list[Probe] = []
    for path in sorted(scen_dir.glob("*.yaml")):
        spec = read_yaml(path)
        name = spec["name"]
        session = plugin.open(settings, task=None, scenario=name)
        try:
            verdict = session.verify("")
            checks = list(spec.get("checks") or [])
            failing_specs = [c for c, r in zip(checks, verdict.checks, strict=False) if not r.passed]
            # an ``any_of`` check is met by any one of its alternatives: each is an acceptable fix
            failing = [alt for c in failing_specs for alt in (c.get("any_of") or [c])]
            prepared = prepare_context(settings, session.task, agent=plugin, tools=session.tools)
            tools = _schemas(session.tools, overrides)
            conv = Conversation(prepared.system_prompt, session.task, session.tools)
            base = {"agent": "lambda_ops", "scenario": name, "tools": tools}
            probes.append(Probe(id=f"lambda_ops/{name}/look", tags=["look_before_act"],
                                tool_choice=settings.model.first_turn_tool_choice, messages=conv.snapshot(),
                                expect=Expect(tools=LAMBDA_LOOKUPS), **base))
            target = (failing[0]["function"] if failing else spec["functions"][0]["name"])
            # an empty first look: the function's name is not in its own log lines
            empty = Conversation(prepared.system_prompt, session.task, session.tools)
            empty.call("search_logs", {"function_name": target, "pattern": f'"{target} failed"'})
            probes.append(Probe(id=f"lambda_ops/{name}/empty-search", tags=["no_early_stop"],
                                messages=empty.snapshot(), expect=Expect(tools=[t["function"]["name"] for t in tools]),
                                **base))
            conv.call("get_function_configuration", {"function_name": target})
            conv.call("get_function_metrics", {"function_name": target})
            conv.call("search_logs", {"function_name": target, "pattern": "", "limit": 10})
            if any(str(c["field"]).startswith(("alias.", "provisioned_concurrency.")) for c in failing):
                conv.call("list_versions", {"function_name": target})
            if any(str(c["field"]) == "reserved_concurrency" for c in failing):
                conv.call("get_account_concurrency", {})
            actions: dict[str, list[ArgCheck]] = {}
            for check in failing:
                fixed = _lambda_action(check)
                if fixed is not None:
                    actions.setdefault(fixed[0], [])
                    if not actions[fixed[0]] or fixed[0] not in ("update_alias", "set_provisioned_concurrency"):
                        actions[fixed[0]].extend(c for c in fixed[1] if c not in actions[fixed[0]])
            regexes = list((spec.get("expect") or {}).get("regex") or [])
            if actions:
                single = len(failing_specs) == len(failing) and len(failing) == 1 or len({str(c["field"]).rsplit(".", 1)[0] for c in failing}) == 1
                probes.append(Probe(id=f"lambda_ops/{name}/act", tags=["act"], messages=conv.snapshot(),
                                    expect=Expect(tools=sorted(actions), args=actions,
                                                  verify=single and len(actions) == 1), **base))
                # make the first change the scenario needs, then the next step is to answer or finish
                tool, arg_checks = next(iter(actions.items()))
                args = _satisfying_args(arg_checks)
                conv.call(tool, args)
                if len(failing) == 1:
                    probes.append(Probe(id=f"lambda_ops/{name}/done", tags=["final_answer"],
                                        messages=conv.snapshot(), expect=Expect(), **base))
            else:
                probes.append(Probe(id=f"lambda_ops/{name}/answer", tags=["final_answer"], messages=conv.snapshot(),
                                    expect=Expect(answer_regex=regexes), **base))
        finally:
            session.close()
    return probes


def _satisfying_args(checks: list[ArgCheck]) -> dict[str, Any]:
    """Arguments meeting every check (the middle of a gte/lte range)."""
    args: dict[str, Any] = {}
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    for c in checks:
        if c.op == "eq":
            args[c.key] = c.value
        elif c.op == "gte":
            lows[c.key] = float(c.value)
        elif c.op == "lte":
            highs[c.key] = float(c.value)
    for key in set(lows) | set(highs):
        lo, hi = lows.get(key), highs.get(key)
        args[key] = int(lo if hi is None else hi if lo is None else (lo + hi) // 2)
    return args


# -- sql_analyst ------------------------------------------------------------------------------

_TABLE = re.compile(r"\b(?:FROM|JOIN)\s+([a-z_]+)", re.IGNORECASE)


def sql_probes() -> list[Probe]:
    from sql_analyst.conventions import CONVENTIONS

    from selfheal import get_agent
    from selfheal.cheatsheet.model import Heuristic
    from selfheal.context.loader import load_context
    from selfheal.context.render import render_system_prompt

    settings = load_settings(ROOT, overrides={"agent": "sql_analyst"})
    plugin = get_agent(settings)
    ctx = load_context(settings.prompts_dir)
    by_id = {c.id: c for c in CONVENTIONS}
    scen_dir = ROOT / "evals" / "sql_analyst" / "scenarios"
    probes: list[Probe] = []
    for path in sorted(scen_dir.glob("*.yaml")):
        spec = read_yaml(path)
        name = spec["name"]
        session = plugin.open(settings, task=None, scenario=name)
        try:
            tools = _schemas(session.tools, ctx.tools)
            prepared = prepare_context(settings, session.task, agent=plugin, tools=session.tools)
            base = {"agent": "sql_analyst", "scenario": name, "tools": tools}
            conv = Conversation(prepared.system_prompt, session.task, session.tools)
            probes.append(Probe(id=f"sql_analyst/{name}/look", tags=["look_before_act"],
                                tool_choice=settings.model.first_turn_tool_choice, messages=conv.snapshot(),
                                expect=Expect(tools=["list_tables", "describe_table"]), **base))
            gold = str(spec["gold_sql"])
            tables = [t for t in dict.fromkeys(m.lower() for m in _TABLE.findall(gold))
                      if t not in {"ok", "gross", "refunded"} and not re.search(rf"\b{t}\s+AS\s*\(", gold, re.I)]
            conv.call("list_tables", {})
            for table in tables[:3]:
                conv.call("describe_table", {"table": table})
            probes.append(Probe(id=f"sql_analyst/{name}/query", tags=["act"], messages=conv.snapshot(),
                                expect=Expect(tools=["run_sql"], verify=True), **base))
            # the same state with the question's conventions as cheatsheet entries in the prompt
            conventions = [by_id[c] for c in spec.get("conventions") or [] if c in by_id]
            if conventions:
                entries = [Heuristic(id=f"conv-{c.id}", task_type=session.task_type, status="active",
                                     condition="Questions over this database", rule=f"{c.statement} SQL: {c.sql}",
                                     source={"kind": "seed", "created": "2026-01-01T00:00:00Z"})
                           for c in conventions]
                system = render_system_prompt(ctx, task=session.task, task_type=session.task_type, entries=entries,
                                              tools=[(t.name, ctx.tools.get(t.name) or t.description or "")
                                                     for t in session.tools])
                with_entries = [{"role": "system", "content": system}, *conv.snapshot()[1:]]
                probes.append(Probe(id=f"sql_analyst/{name}/query-with-entries", tags=["act", "uses_entry"],
                                    messages=with_entries, expect=Expect(tools=["run_sql"], verify=True), **base))
            # a failed query: fix it and run again, do not answer
            broken = Conversation(prepared.system_prompt, session.task, session.tools)
            broken.messages = conv.snapshot()
            broken.n = conv.n
            broken.call("run_sql", {"query": gold.replace("SELECT", "SELEC", 1)})
            probes.append(Probe(id=f"sql_analyst/{name}/recover", tags=["recover", "no_early_stop"],
                                messages=broken.snapshot(), expect=Expect(tools=["run_sql", "describe_table"]),
                                **base))
            # the gold result is in: answer with it
            result = conv.call("run_sql", {"query": gold})
            first = _first_value(result)
            probes.append(Probe(id=f"sql_analyst/{name}/answer", tags=["final_answer"], messages=conv.snapshot(),
                                expect=Expect(answer_regex=[_value_regex(first)] if first else []), **base))
        finally:
            session.close()
    return probes


def _first_value(result: str) -> str:
    """The figure an answer must state: the last cell of the first row of a run_sql result.

    run_sql prints a header line, one line per row (cells joined by `` | ``)
    and a ``(N rows)`` line.
    """
    lines = [ln for ln in result.splitlines() if ln.strip()]
    if len(lines) < 3 or not re.fullmatch(r"\(\d+ rows?\)", lines[-1].strip()):
        return ""
    cell = lines[1].split(" | ")[-1].strip()
    try:
        number = float(cell)
    except ValueError:
        return cell
    return f"{number:.2f}".rstrip("0").rstrip(".")


def _value_regex(value: str) -> str:
    """A regex for ``value`` as an answer may write it: thousands separators allowed in numbers."""
    m = re.fullmatch(r"(-?)(\d+)(\.\d+)?", value)
    if not m:
        return re.escape(value)
    digits = m.group(2)
    groups = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    return re.escape(m.group(1)) + ",?".join(groups) + (re.escape(m.group(3)) if m.group(3) else "") + r"(?!\d)"


def main() -> None:
    from helpdesk import helpdesk_probes

    OUT.mkdir(parents=True, exist_ok=True)
    for name, build in (("lambda_ops", lambda_probes), ("sql_analyst", sql_probes), ("helpdesk", helpdesk_probes)):
        probes = build()
        write_probes(OUT / f"{name}.jsonl", probes)
        tags: dict[str, int] = {}
        for p in probes:
            for t in p.tags:
                tags[t] = tags.get(t, 0) + 1
        print(f"{name}: {len(probes)} probes {tags}")


if __name__ == "__main__":
    main()
