"""ACE's Reflector: diagnose one run from its execution feedback.

The Reflector reads the evidence (environment checks, tool errors, user
feedback, the scenario's definition of success when known) rather than the
agent's own claim, and says what went wrong, why, what would have been right,
and the reusable lesson. It also tags every cheatsheet entry the agent was
shown or used as helpful, harmful or neutral: those tags feed the entries'
counters, which decide promotion and retirement.

Output is one JSON object. A reply that is not one, or lacks the lesson, is a
:class:`ReflectionRejected` (logged by the caller; it never fails a run).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Literal, get_args

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal.errors import SelfhealError
from selfheal.optimize.jsonout import JsonOutputError, invoke_json

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.optimize.digest import RunDigest

log = logging.getLogger(__name__)

Tag = Literal["helpful", "harmful", "neutral"]
TAGS: tuple[str, ...] = get_args(Tag)
_MAX_FIELD = 600


class ReflectionRejected(SelfhealError):
    """The Reflector's reply was unusable; ``reason`` says why (nothing is learned from it)."""

    def __init__(self, reason: str, *, raw: str = "") -> None:
        super().__init__(f"reflection rejected: {reason}")
        self.reason = reason
        self.raw = raw


class Reflection(BaseModel):
    """The Reflector's diagnosis of one run."""

    model_config = ConfigDict(extra="ignore")

    error: str = ""
    root_cause: str = ""
    correct_approach: str = ""
    key_insight: str = Field(min_length=1)
    entry_tags: dict[str, Tag] = Field(default_factory=dict)

    def summary(self) -> str:
        """One line for logs and run output."""
        return " ".join(self.key_insight.split())

    def render(self) -> str:
        parts = [
            f"Error: {self.error or 'none'}",
            f"Root cause: {self.root_cause or 'n/a'}",
            f"Correct approach: {self.correct_approach or 'n/a'}",
            f"Key insight: {self.key_insight}",
        ]
        if self.entry_tags:
            parts.append("Entry tags: " + ", ".join(f"{k}={v}" for k, v in self.entry_tags.items()))
        return "\n".join(parts)


#: The JSON schema the model is held to (llama.cpp turns it into a grammar).
REFLECTION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Diagnosis of one agent run",
    "properties": {
        "error": {"type": "string", "description": "What went wrong ('none' for a clean success)"},
        "root_cause": {"type": "string", "description": "Why, judged from the evidence"},
        "correct_approach": {"type": "string", "description": "What the agent should have done"},
        "key_insight": {"type": "string", "description": "The reusable lesson, one or two sentences"},
        "entry_tags": {
            "type": "object",
            "description": "Every listed cheatsheet entry id -> helpful | harmful | neutral",
            "additionalProperties": {"type": "string", "enum": list(TAGS)},
        },
    },
    "required": ["error", "root_cause", "correct_approach", "key_insight", "entry_tags"],
}

SYSTEM_PROMPT = """\
You are the Reflector of an AWS Lambda operations agent. You diagnose one run.
Judge from the evidence only: environment checks, tool results and errors, user feedback and
the reference. The agent's own claim of success is not evidence.

Reply with exactly one JSON object and nothing else:
{"error": "...", "root_cause": "...", "correct_approach": "...", "key_insight": "...",
 "entry_tags": {"<entry id>": "helpful" | "harmful" | "neutral"}}

- error: what went wrong ("none" if the run succeeded cleanly).
- root_cause: why it went wrong, pointing at the evidence.
- correct_approach: what the agent should have done instead, concretely.
- key_insight: the reusable lesson for similar tasks, general (no run-specific ids or numbers).
- entry_tags: one tag for EVERY cheatsheet entry listed in the run: helpful if following it leads
  to the correct outcome, harmful if it misled the agent or contradicts the evidence, neutral if it
  did not matter. Use only the listed ids."""


def _messages(digest: RunDigest) -> list[Any]:
    ids = digest.entry_ids
    ask = f"Entry ids to tag: {', '.join(ids)}" if ids else "No cheatsheet entries were shown: entry_tags is {}."
    return [
        SystemMessage(content=SYSTEM_PROMPT),
        HumanMessage(content=f"{digest.render()}\n\n{ask}\nReply with the JSON object."),
    ]


def _clip(value: Any) -> str:
    text = " ".join(str(value).split()) if value is not None else ""
    return text[:_MAX_FIELD]


def _tags(raw: Any, allowed: list[str]) -> dict[str, Tag]:
    """Tags for exactly ``allowed``: missing ones neutral, unknown ids and bad values dropped (logged)."""
    if isinstance(raw, list):  # [{"id": ..., "tag": ...}] is a common small-model shape
        raw = {str(i.get("id")): i.get("tag") for i in raw if isinstance(i, dict)}
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ReflectionRejected(f"entry_tags must be an object, got {type(raw).__name__}")
    out: dict[str, Tag] = {}
    for key, value in raw.items():
        entry_id = str(key).strip().strip("[]")
        if entry_id not in allowed:
            log.info("reflection: dropped tag for unknown entry id %r", entry_id)
            continue
        tag = str(value).strip().lower()
        if tag not in TAGS:
            log.info("reflection: entry %s has tag %r (not helpful/harmful/neutral): neutral", entry_id, value)
            tag = "neutral"
        out[entry_id] = tag  # type: ignore[assignment]
    return {i: out.get(i, "neutral") for i in allowed}


def parse_reflection(obj: Any, digest: RunDigest, *, raw: str = "") -> Reflection:
    """Validate the Reflector's JSON against the run (ids) and the schema."""
    if not isinstance(obj, dict):
        raise ReflectionRejected(f"expected a JSON object, got {type(obj).__name__}", raw=raw)
    insight = _clip(obj.get("key_insight"))
    if not insight:
        raise ReflectionRejected("the reply has no key_insight", raw=raw)
    try:
        return Reflection(
            error=_clip(obj.get("error")),
            root_cause=_clip(obj.get("root_cause")),
            correct_approach=_clip(obj.get("correct_approach")),
            key_insight=insight,
            entry_tags=_tags(obj.get("entry_tags"), digest.entry_ids),
        )
    except ValidationError as exc:  # pragma: no cover - the fields above are normalised
        raise ReflectionRejected(f"invalid reflection: {exc.errors()[0].get('msg')}", raw=raw) from None


def reflect(model: BaseChatModel, digest: RunDigest, *, config: Any = None) -> Reflection:
    """Diagnose ``digest``'s run. Raises ReflectionRejected (bad reply) or ModelError (model failed)."""
    try:
        obj, raw = invoke_json(model, _messages(digest), REFLECTION_SCHEMA, name="reflection", config=config)
    except JsonOutputError as exc:
        log.warning("reflection rejected for run %s: %s", digest.run_id or "-", exc)
        raise ReflectionRejected(str(exc)) from None
    try:
        reflection = parse_reflection(obj, digest, raw=raw)
    except ReflectionRejected as exc:
        log.warning("reflection rejected for run %s: %s", digest.run_id or "-", exc.reason)
        raise
    log.info("reflection for run %s: %s", digest.run_id or "-", reflection.summary())
    return reflection
