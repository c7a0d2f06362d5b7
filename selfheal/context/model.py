"""The agent's context as reviewed files: ``prompts/<agent>/context.yaml`` + its Jinja template.

Everything ACE may tune (instructions, few-shot examples, tool descriptions)
is data with stable ids, so a change is a small diff and a delta can name what
it touches. The template and its directory travel with the model but are not
part of ``context.yaml`` (excluded from dumps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from selfheal.cheatsheet.model import Identifier, NonEmpty

CONTEXT_FILENAME = "context.yaml"
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class Instruction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Identifier
    text: NonEmpty


class Example(BaseModel):
    """A few-shot example: a task and a short trajectory of tool calls and the answer."""

    model_config = ConfigDict(extra="forbid")

    id: Identifier
    task: NonEmpty
    trajectory: NonEmpty


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
