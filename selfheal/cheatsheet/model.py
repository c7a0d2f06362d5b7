"""Cheatsheet entries: the Dynamic Cheatsheet's four sections as one typed union.

One entry is one reviewed YAML file, so the model holds knowledge only:
counters that move on every run (helpful/harmful/usage_count) live in the
state store, not here, to keep PR diffs about knowledge rather than noise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal, TypeAlias, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, field_validator

# Ids become file names (``<id>.yaml``) and appear in prompts as ``[id]``:
# lowercase, digits, ``-``/``_``, no path separators.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,79}$"
Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN)]
NonEmpty = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
# Code keeps its indentation; it only has to contain something.
Code = Annotated[str, StringConstraints(pattern=r"\S")]

Section: TypeAlias = Literal["strategies", "code_snippets", "heuristics", "failure_patterns"]
SECTIONS: tuple[str, ...] = get_args(Section)
Status: TypeAlias = Literal["candidate", "active", "retired"]
STATUSES: tuple[str, ...] = get_args(Status)

# Conventional id prefixes per section (used when code mints a new id).
SECTION_PREFIX: dict[str, str] = {
    "strategies": "strat",
    "code_snippets": "code",
    "heuristics": "heur",
    "failure_patterns": "fail",
}
GENERAL_TASK_TYPE = "general"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clause(text: str) -> str:
    """One line that reads after "When": a leading capital is lowered unless it's an acronym."""
    line = _one_line(text)
    if len(line) > 1 and line[0].isupper() and line[1].islower():
        return line[0].lower() + line[1:]
    return line


class Source(BaseModel):
    """Where an entry came from: ``seed``, ``curator``, ``user``, ``manual`` and the runs behind it."""

    model_config = ConfigDict(extra="forbid")

    kind: NonEmpty
    runs: list[str] = Field(default_factory=list)
    created: datetime
    #: Who wrote it, for entries people author (``selfheal teach``): "Name <email>" from git config.
    author: str | None = None

    @field_validator("created")
    @classmethod
    def _aware(cls, v: datetime) -> datetime:
        # Naive timestamps are ambiguous across CI machines: read them as UTC.
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)


class EntryBase(BaseModel):
    """Fields every section shares; subclasses add the section's own content."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    section: Section
    task_type: str = GENERAL_TASK_TYPE
    status: Status = "candidate"
    tags: list[str] = Field(default_factory=list)
    source: Source

    @property
    def is_general(self) -> bool:
        return self.task_type in ("", GENERAL_TASK_TYPE)

    def text(self) -> str:
        """How the entry reads in the prompt (after its ``[id]``)."""
        raise NotImplementedError

    def content_fields(self) -> tuple[str, ...]:
        """The section's own text fields, in prompt order."""
        raise NotImplementedError

    def search_text(self) -> str:
        """What lexical/embedding retrieval matches the task against."""
        parts = [self.id.replace("-", " ").replace("_", " "), self.task_type.replace("_", " ")]
        parts += self.tags
        parts += [str(getattr(self, f)) for f in self.content_fields()]
        return " ".join(p for p in parts if p)


class Strategy(EntryBase):
    section: Literal["strategies"] = "strategies"
    pattern: NonEmpty
    action: NonEmpty

    def content_fields(self) -> tuple[str, ...]:
        return ("pattern", "action")

    def text(self) -> str:
        return f"When {_clause(self.pattern)}: {_one_line(self.action)}"


class CodeSnippet(EntryBase):
    section: Literal["code_snippets"] = "code_snippets"
    purpose: NonEmpty
    snippet: Code
    language: NonEmpty = "python"

    def content_fields(self) -> tuple[str, ...]:
        return ("purpose", "snippet")

    def text(self) -> str:
        code = self.snippet.strip("\n")
        if "\n" not in code:
            return f"{_one_line(self.purpose)} ({self.language}): `{code.strip()}`"
        body = "\n".join("    " + line for line in code.splitlines())
        return f"{_one_line(self.purpose)} ({self.language}):\n{body}"


class Heuristic(EntryBase):
    section: Literal["heuristics"] = "heuristics"
    condition: NonEmpty
    rule: NonEmpty

    def content_fields(self) -> tuple[str, ...]:
        return ("condition", "rule")

    def text(self) -> str:
        return f"When {_clause(self.condition)}: {_one_line(self.rule)}"


class FailurePattern(EntryBase):
    section: Literal["failure_patterns"] = "failure_patterns"
    pattern: NonEmpty
    lesson: NonEmpty

    def content_fields(self) -> tuple[str, ...]:
        return ("pattern", "lesson")

    def text(self) -> str:
        return f"Known failure: {_one_line(self.pattern)}. Instead: {_one_line(self.lesson)}"


CheatsheetEntry: TypeAlias = Annotated[
    Strategy | CodeSnippet | Heuristic | FailurePattern, Field(discriminator="section")
]
SECTION_MODELS: dict[str, type[EntryBase]] = {
    "strategies": Strategy,
    "code_snippets": CodeSnippet,
    "heuristics": Heuristic,
    "failure_patterns": FailurePattern,
}
ENTRY_ADAPTER: TypeAdapter[CheatsheetEntry] = TypeAdapter(CheatsheetEntry)


@dataclass(frozen=True)
class Cheatsheet:
    """A snapshot of one cheatsheet directory, with lookup by id (reload after saving)."""

    root: Path
    entries: list[CheatsheetEntry] = field(default_factory=list)
    paths: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {e.id: e for e in self.entries})

    _by_id: dict[str, CheatsheetEntry] = field(init=False, repr=False, compare=False)

    def get(self, entry_id: str) -> CheatsheetEntry | None:
        return self._by_id.get(entry_id)

    def __getitem__(self, entry_id: str) -> CheatsheetEntry:
        return self._by_id[entry_id]

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._by_id

    def __iter__(self) -> Iterator[CheatsheetEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def ids(self) -> set[str]:
        return set(self._by_id)

    def active(self) -> list[CheatsheetEntry]:
        return [e for e in self.entries if e.status == "active"]

    def section(self, name: str) -> list[CheatsheetEntry]:
        return [e for e in self.entries if e.section == name]


def make_entry_id(section: str, title: str, existing: set[str] | frozenset[str] = frozenset()) -> str:
    """A readable, unique id such as ``heur-vpc-before-memory`` for a new entry."""
    words = re.findall(r"[a-z0-9]+", title.lower())
    slug = "-".join(words)[:60].strip("-") or "entry"
    base = f"{SECTION_PREFIX.get(section, 'entry')}-{slug}"
    candidate, n = base, 2
    while candidate in existing:
        candidate = f"{base}-{n}"
        n += 1
    return candidate
