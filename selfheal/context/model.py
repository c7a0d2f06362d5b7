"""The agent's context as reviewed files: ``prompts/<agent>/context.yaml`` + its Jinja template.

Everything ACE may tune (instructions, few-shot examples, tool descriptions)
is data with stable ids, so a change is a small diff and a delta can name what
it touches. The template and its directory travel with the model but are not
part of ``context.yaml`` (excluded from dumps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from selfheal.cheatsheet.model import Identifier, NonEmpty

CONTEXT_FILENAME = "context.yaml"
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Instruction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    text: NonEmpty


class DemoProvenance(BaseModel):
    """Where a bootstrapped demonstration came from: the verified run and how it was sampled.

    Enough to find the run's trace again (``run_id``), to reproduce the attempt
    (model, temperature, seed) and to know which context and cheatsheet it ran
    with, so a reviewer can judge a demo like any other learned change.
    """

    model_config = ConfigDict(extra="forbid")

    run_id: NonEmpty
    example: NonEmpty                  # the dataset example's name
    split: str = "train"
    seed: int
    temperature: float = Field(ge=0.0)
    model: str = ""
    context_version: str = ""
    cheatsheet_version: str = ""
    created: str = ""                  # ISO timestamp of the bootstrap


class Example(BaseModel):
    """A few-shot example: a task and a short trajectory of tool calls and the answer.

    Hand-written examples need only ``id``, ``task`` and ``trajectory``.
    ``source: bootstrapped`` marks a demonstration kept from one of the agent's
    own environment-verified runs; it carries its ``provenance`` and
    ``task_type`` (used to retrieve it for tasks of its type).
    """

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    task: NonEmpty
    trajectory: NonEmpty
    task_type: str | None = None
    source: Literal["manual", "bootstrapped"] | None = None
    provenance: DemoProvenance | None = None

    @model_validator(mode="after")
    def _bootstrapped_has_provenance(self) -> Example:
        if self.source == "bootstrapped" and self.provenance is None:
            raise ValueError("a bootstrapped example needs its provenance (run_id, example, seed, temperature)")
        return self


class ContextFile(BaseModel):
    """Exactly the keys ``context.yaml`` may hold (unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=0)
    system: NonEmpty
    instructions: list[Instruction] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)
    tools: dict[ToolName, NonEmpty] = Field(default_factory=dict)

    @field_validator("system")
    @classmethod
    def _plain_name(cls, v: str) -> str:
        # The template must live beside context.yaml: no paths out of the prompts dir.
        if "/" in v or "\\" in v or v in (".", ".."):
            raise ValueError("must be a file name in the same directory (no path)")
        return v


class AgentContext(ContextFile):
    """A loaded context: the file's fields plus the template text and where it came from."""

    template: str = Field(default="", exclude=True)
    source_dir: Path | None = Field(default=None, exclude=True)

    @property
    def template_path(self) -> Path:
        return (self.source_dir or Path(".")) / self.system

    @property
    def context_path(self) -> Path:
        return (self.source_dir or Path(".")) / CONTEXT_FILENAME

    @property
    def ids(self) -> list[str]:
        """Instruction and example ids, in file order."""
        return [i.id for i in self.instructions] + [e.id for e in self.examples]

    def tool_description(self, name: str, default: str) -> str:
        """The context's override for a tool wins over the code's description."""
        return self.tools.get(name) or default
