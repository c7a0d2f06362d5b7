"""The records of bootstrapping: one demonstration, one attempt, the pool, the cost of a phase.

A :class:`Demonstration` is a verified run shortened to what mattered, with
its provenance; it becomes a context ``examples:`` entry through
:meth:`Demonstration.to_example` (the file's model, :class:`~selfheal.context.model.Example`,
stays the one definition of what ``context.yaml`` holds).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from selfheal.context.model import DemoProvenance, Example
from selfheal.tokens import count_tokens

_ID_CHARS = re.compile(r"[^a-z0-9_-]+")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _shown(value: Any) -> str:
    # A multi-line argument (a SQL query) on one line: a demo line is one call.
    if isinstance(value, str):
        value = " ".join(value.split())
    return json.dumps(value, ensure_ascii=False, default=str)


def format_args(args: Any) -> str:
    """``function_name="checkout-api", timeout_s=10``: keyword arguments as a call shows them."""
    if isinstance(args, dict):
        return ", ".join(f"{k}={_shown(v)}" for k, v in args.items())
    if args in (None, "", [], {}):
        return ""
    return json.dumps(args, ensure_ascii=False, default=str)


class DemoCall(_Model):
    """One tool call of a demonstration, as the prompt shows it: ``name(args) -> result``."""

    name: str
    args: Any = None
    result: str = ""

    def line(self) -> str:
        call = f"{self.name}({format_args(self.args)})"
        return f"{call} -> {self.result}" if self.result else call


class Demonstration(_Model):
    """A verified success of the agent on a train task, shortened and redacted, with provenance."""

    id: str
    task: str
    task_type: str
    calls: list[DemoCall]
    answer: str
    used: list[str] = Field(default_factory=list)
    provenance: DemoProvenance
    dropped_calls: int = 0  # calls left out as failed, repeated or not used

    @property
    def trajectory(self) -> str:
        """The text the prompt shows under the task: the calls, the answer, the USED line."""
        lines = [c.line() for c in self.calls]
        if self.answer:
            lines.append(f"Answer: {self.answer}")
        lines.append(f"USED: {', '.join(self.used) if self.used else 'none'}")
        return "\n".join(lines)

    @property
    def tokens(self) -> int:
        """What the demo costs in a prompt (task line + trajectory)."""
        return count_tokens(f"Task: {self.task}\n{self.trajectory}")

    def to_example(self) -> Example:
        """The ``examples:`` entry of ``context.yaml`` this demo becomes."""
        return Example(
            id=self.id, task=self.task, trajectory=self.trajectory + "\n", task_type=self.task_type,
            source="bootstrapped", provenance=self.provenance,
        )  # fmt: skip


def demo_id(task_type: str, task: str, trajectory: str) -> str:
    """``demo-<task type>-<hash>``: the same content always gets the same id (dedup across attempts)."""
    digest = hashlib.sha256(f"{task}\0{trajectory}".encode()).hexdigest()[:10]
    slug = _ID_CHARS.sub("-", task_type.lower()).strip("-")[:40] or "task"
    return f"demo-{slug}-{digest}"


class Attempt(_Model):
    """One run of the agent on one train example at one (temperature, seed)."""

    example: str
    task_type: str
    seed: int
    temperature: float
    run_id: str | None = None
    success: bool = False      # the environment's verdict (and the dataset's evaluators)
    verified: bool = False     # the environment had checks to judge by
    reason: str = ""
    demo_id: str | None = None  # the demonstration it became, if any
    model_calls: int = 0
    tokens: int = 0
    latency_s: float = 0.0


class PhaseCost(_Model):
    """What one phase (bootstrap, selection) spent: model calls, tokens, wall time."""

    phase: str
    model_calls: int = 0
    tokens: int = 0
    wall_s: float = 0.0
    runs: int = 0

    def line(self) -> str:
        return (f"{self.phase}: {self.runs} runs, {self.model_calls} model calls, {self.tokens} tokens, "
                f"{self.wall_s:.1f}s")


class DemoPool(_Model):
    """Every attempt of a bootstrap and the demonstrations its verified successes became."""

    demos: list[Demonstration] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)
    cost: PhaseCost = Field(default_factory=lambda: PhaseCost(phase="bootstrap"))

    def by_task_type(self) -> dict[str, list[Demonstration]]:
        out: dict[str, list[Demonstration]] = {}
        for d in self.demos:
            out.setdefault(d.task_type, []).append(d)
        return out
