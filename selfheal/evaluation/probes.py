"""Decision probes: one conversation state and the correct next step, for any tool-call protocol.

A task's success mixes a dozen decisions (which tool, which arguments, when to
stop), so comparing two ways of asking the model for a tool call on whole
tasks needs hundreds of slow runs and still cannot say *which* decision went
wrong. A probe freezes the conversation at one decision: the messages so far
(real system prompt, real tool results) and what a careful agent does next —
look before acting, follow the policy the context states, not stop before the
change the task asks for, use the entry that is in the prompt. Scoring a
protocol on a probe set needs one model call per probe and no environment,
except for probes whose arguments are judged by executing them in the
scenario's environment (``expect.verify``).

Probe files are JSON Lines (``*.jsonl``), one :class:`Probe` per line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal.errors import FileFormatError

ArgOp = Literal["eq", "ne", "gte", "lte", "in", "contains", "icontains", "regex", "absent"]


class ArgCheck(BaseModel):
    """One condition on one argument of the expected call (``key`` may be dotted: ``a.b``)."""

    model_config = ConfigDict(extra="forbid")

    key: str
    op: ArgOp
    value: Any = None

    def holds(self, args: dict[str, Any]) -> bool:
        found, actual = _lookup(args, self.key)
        if self.op == "absent":
            return not found
        if not found:
            return False
        return _compare(self.op, actual, self.value)


class Expect(BaseModel):
    """The correct next step: one of ``tools`` (with ``args`` checks per tool), or a final answer."""

    model_config = ConfigDict(extra="forbid")

    #: acceptable next tools; empty means the correct step is a final answer
    tools: list[str] = Field(default_factory=list)
    #: per acceptable tool, conditions its arguments must meet
    args: dict[str, list[ArgCheck]] = Field(default_factory=dict)
    #: judge the call by executing it in the probe's scenario and asking the agent's verifier
    verify: bool = False
    #: for a final answer: every regex must match (case-insensitive)
    answer_regex: list[str] = Field(default_factory=list)

    @property
    def wants_answer(self) -> bool:
        return not self.tools


class Probe(BaseModel):
    """A conversation state (OpenAI-shaped messages and tools) and its correct next step."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    agent: str = Field(min_length=1)
    scenario: str | None = None
    #: what the decision tests: look_before_act, act, policy, no_early_stop, final_answer, uses_entry, recover …
    tags: list[str] = Field(default_factory=list)
    tool_choice: Literal["auto", "required"] = "auto"
    messages: list[dict[str, Any]] = Field(min_length=1)
    tools: list[dict[str, Any]] = Field(default_factory=list)
    expect: Expect
    note: str = ""


class Decision(BaseModel):
    """What the model did at a probe: its first tool call (or none) and its text."""

    model_config = ConfigDict(extra="forbid")

    tool: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    answer: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    error: str = ""


class ProbeScore(BaseModel):
    """A decision judged against its probe. ``None`` marks a measure that does not apply."""

    model_config = ConfigDict(extra="forbid")

    probe_id: str
    agent: str
    tags: list[str]
    expected: str
    decision: Decision
    tool_ok: bool
    args_ok: bool | None = None
    answer_ok: bool | None = None

    @property
    def correct(self) -> bool:
        """The whole step right: the tool (or answer) and, where judged, its arguments / answer text."""
        return self.tool_ok and self.args_ok is not False and self.answer_ok is not False


def _lookup(args: Any, key: str) -> tuple[bool, Any]:
    cur = args
    for part in key.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            return False, None
    return True, cur


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _compare(op: str, actual: Any, expected: Any) -> bool:  # noqa: PLR0911 - one branch per operator
    if op in ("gte", "lte"):
        a, e = _number(actual), _number(expected)
        if a is None or e is None:
            return False
        return a >= e if op == "gte" else a <= e
    if op in ("eq", "ne"):
        a, e = _number(actual), _number(expected)
        same = a == e if a is not None and e is not None else str(actual) == str(expected)
        return same if op == "eq" else not same
    if op == "in":
        return any(_compare("eq", actual, v) for v in (expected or []))
    text = actual if isinstance(actual, str) else json.dumps(actual, ensure_ascii=False)
    if op == "contains":
        return str(expected) in text
    if op == "icontains":
        return str(expected).casefold() in text.casefold()
    if op == "regex":
        return re.search(str(expected), text, re.IGNORECASE | re.DOTALL) is not None
    raise ValueError(f"unknown argument check operator {op!r}")


def describe_expected(expect: Expect) -> str:
    """One short line: what the probe wants (for tables and JSON)."""
    if expect.wants_answer:
        return "answer" + (f" ~ {', '.join(expect.answer_regex)}" if expect.answer_regex else "")
    return " | ".join(expect.tools) + (" (verified)" if expect.verify else "")


def score_decision(probe: Probe, decision: Decision, *, verified: bool | None = None) -> ProbeScore:
    """Judge ``decision`` against ``probe.expect``.

    ``verified`` is the environment's verdict on the call when ``expect.verify``
    is set (the caller executes it: scoring itself never opens an environment).
    """
    expect = probe.expect
    args_ok: bool | None = None
    answer_ok: bool | None = None
    if expect.wants_answer:
        tool_ok = decision.tool is None and not decision.error
        if tool_ok and expect.answer_regex:
            answer_ok = all(re.search(rx, decision.answer, re.IGNORECASE) for rx in expect.answer_regex)
    else:
        tool_ok = decision.tool in expect.tools
        if tool_ok:
            checks = expect.args.get(decision.tool or "", [])
            if checks or expect.verify:
                args_ok = all(c.holds(decision.args) for c in checks)
                if expect.verify:
                    args_ok = args_ok and bool(verified)
    return ProbeScore(
        probe_id=probe.id,
        agent=probe.agent,
        tags=list(probe.tags),
        expected=describe_expected(expect),
        decision=decision,
        tool_ok=tool_ok,
        args_ok=args_ok,
        answer_ok=answer_ok,
    )


def load_probes(paths: Iterable[Path | str]) -> list[Probe]:
    """Every probe of the given ``.jsonl`` files (or folders of them), in file order; ids unique.

    A bad line is a :class:`FileFormatError` naming ``file:line``.
    """
    files: list[Path] = []
    for p in map(Path, paths):
        files.extend(sorted(p.glob("*.jsonl")) if p.is_dir() else [p])
    probes: list[Probe] = []
    seen: dict[str, str] = {}
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise FileFormatError(path, None, "no such probe file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise FileFormatError(path, None, f"cannot read: {exc}") from None
        for lineno, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                probe = Probe.model_validate(json.loads(line))
            except json.JSONDecodeError as exc:
                raise FileFormatError(path, lineno, f"not JSON: {exc.msg}") from None
            except ValidationError as exc:
                err = exc.errors()[0]
                loc = ".".join(str(x) for x in err["loc"])
                raise FileFormatError(path, lineno, f"{loc}: {err['msg']}") from None
            if probe.id in seen:
                raise FileFormatError(path, lineno, f"duplicate probe id {probe.id!r} (first in {seen[probe.id]})")
            seen[probe.id] = f"{path}:{lineno}"
            probes.append(probe)
    return probes


def select_probes(probes: Sequence[Probe], *, agents: Sequence[str] = (), tags: Sequence[str] = (),
                  limit: int | None = None) -> list[Probe]:
    """Probes of the given agents and with any of the given tags; ``limit`` takes an even spread."""
    out = [p for p in probes if (not agents or p.agent in agents) and (not tags or set(tags) & set(p.tags))]
    if limit is not None and 0 < limit < len(out):
        step = len(out) / limit
        out = [out[int(i * step)] for i in range(limit)]
    return out


def write_probes(path: Path | str, probes: Sequence[Probe]) -> None:
    """Write a probe file atomically (one JSON object per line, keys in model order)."""
    from selfheal.yamlio import atomic_write_text

    atomic_write_text(path, "".join(p.model_dump_json(exclude_defaults=True) + "\n" for p in probes))
