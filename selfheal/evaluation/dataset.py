"""Evaluation datasets as reviewed files: ``evals/<dataset>/dataset.yaml`` plus example files.

A dataset is data in git, so a prompt change and the examples it was judged
on travel in the same PR. ``dataset.yaml`` names the agent, globs the example
files and sets evaluator defaults; an example file is either a scenario (it
has an environment: ``functions:``) or a plain example (task, expectations,
reference outputs), or holds a list of plain examples under ``examples:``.
Every error names ``file:line``. Example ids are stable (uuid5 of dataset and
name unless the file pins one), so LangSmith copies and stored experiments
keep pointing at the same example across edits and machines.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from selfheal.errors import FileFormatError, SelfhealError
from selfheal.yamlio import line_of, read_yaml, to_plain, validate, validation_message

if TYPE_CHECKING:
    from selfheal.config import Settings

Split = Literal["train", "dev", "test"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")
DATASET_FILE = "dataset.yaml"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- expectations and evaluator settings --------------------------------------
class JsonExpect(_Strict):
    """The final answer holds a JSON object whose value at ``path`` (``a.b.0``) equals ``equals``."""

    path: str = Field(min_length=1)
    equals: Any = None


class ToolCallsExpect(_Strict):
    required: list[str] = Field(default_factory=list)
    forbidden: list[str] = Field(default_factory=list)
    max_calls: int | None = Field(default=None, ge=0)


class LimitsSpec(_Strict):
    max_steps: int | None = Field(default=None, ge=1)
    max_total_tokens: int | None = Field(default=None, ge=1)
    max_latency_s: float | None = Field(default=None, gt=0)


class JudgeSpec(_Strict):
    rubric: str = Field(min_length=1)
    weight: float = Field(default=1.0, ge=0)


class ExpectSpec(_Strict):
    """What an example expects of a run, beyond the environment's state checks."""

    contains: list[str] = Field(default_factory=list)
    not_contains: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)
    json_: list[JsonExpect] = Field(default_factory=list, alias="json")
    tool_calls: ToolCallsExpect | None = None
    limits: LimitsSpec | None = None
    judge: JudgeSpec | None = None
    weights: dict[str, float] = Field(default_factory=dict)
    #: evaluators that must pass for this example, beside the dataset's ``evaluators.required``
    required: list[str] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("required")
    @classmethod
    def _required_known(cls, v: list[str]) -> list[str]:
        return _known_evaluators(v)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for pattern in v:
            try:
                re.compile(pattern, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from None
        return v

    @field_validator("weights")
    @classmethod
    def _non_negative(cls, v: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in v.items() if w < 0]
        if bad:
            raise ValueError(f"weights must not be negative: {', '.join(bad)}")
        return v

    def dump(self) -> dict[str, Any]:
        """The non-default fields, as written in a file (``json`` under its file name)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


class JudgeDefaults(_Strict):
    enabled: bool = False
    rubric: str = ""
    weight: float = Field(default=1.0, ge=0)


DEFAULT_WEIGHTS: dict[str, float] = {
    "state_checks": 3.0,
    "output": 1.0,
    "tool_calls": 1.0,
    "limits": 1.0,
    "judge": 1.0,
    "outcome": 1.0,
}


def _known_evaluators(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown evaluator(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_WEIGHTS)})")
    return names


class CustomEvaluatorSpec(_Strict):
    """A team's evaluator: ``module:function`` with LangSmith's evaluator shape (see evaluation/custom.py)."""

    function: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    key: str | None = None
    weight: float = Field(default=1.0, ge=0)
    required: bool = False
    pass_score: float = Field(default=0.5, ge=0, le=1)


class EvaluatorConfig(_Strict):
    """A dataset's evaluator defaults (``evaluators:`` in dataset.yaml); examples add/override."""

    weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    pass_threshold: float = Field(default=0.75, ge=0, le=1)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    judge: JudgeDefaults = Field(default_factory=JudgeDefaults)
    custom: list[CustomEvaluatorSpec] = Field(default_factory=list)
    #: evaluators that must pass, not only count in the weighted score. The state checks always
    #: are; e.g. ``[output]`` when a question's answer is its result: a read-only run that leaves
    #: the account unchanged would otherwise pass on the checks' weight with a wrong answer.
    required: list[str] = Field(default_factory=list)

    @field_validator("required")
    @classmethod
    def _required_known(cls, v: list[str]) -> list[str]:
        return _known_evaluators(v)

    @field_validator("weights")
    @classmethod
    def _known(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(DEFAULT_WEIGHTS))
        if unknown:
            raise ValueError(
                f"unknown evaluator(s) {', '.join(unknown)} (known: {', '.join(DEFAULT_WEIGHTS)})"
            )
        return {**DEFAULT_WEIGHTS, **v}


class DatasetSpec(_Strict):
    """``dataset.yaml``."""

    name: str = Field(pattern=_NAME)
    description: str = ""
    agent: str = Field(min_length=1)
    examples: list[str] = Field(default_factory=lambda: ["scenarios/*.yaml", "examples/*.yaml"])
    evaluators: EvaluatorConfig = Field(default_factory=EvaluatorConfig)
    # The committed response cache replayed for this dataset, relative to this directory
    # (default: ``replay/`` when it exists); its manifest says what it covers.
    cache: str | None = None


# -- example files --------------------------------------------------------------
class _ReferenceSpec(_Strict):
    outputs: dict[str, Any] = Field(default_factory=dict)


class _ExampleFields(BaseModel):
    id: str | None = None
    name: str = Field(pattern=_NAME)
    task: str = Field(min_length=1)
    task_type: str = Field(min_length=1)
    split: Split
    success: str = ""
    expect: ExpectSpec = Field(default_factory=ExpectSpec)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return str(uuid.UUID(str(v)))
        except ValueError:
            raise ValueError(f"id must be a UUID (LangSmith example ids are), got {v!r}") from None


#: The example header every example file shares; a file with other keys (besides a plain
#: example's ``reference``) is a scenario, validated by its agent.
HEADER_KEYS: frozenset[str] = frozenset(_ExampleFields.model_fields)
_PLAIN_KEYS = HEADER_KEYS | {"reference"}

#: path of a scenario file -> its number of state checks (raises FileFormatError on a bad file).
ScenarioValidator = Callable[[Path], int]


class _ScenarioExampleFile(_ExampleFields):
    """The keys of a scenario file this module reads; the agent owns the rest."""

    model_config = ConfigDict(extra="ignore")


class _PlainExample(_ExampleFields):
    model_config = ConfigDict(extra="forbid")
    reference: _ReferenceSpec = Field(default_factory=_ReferenceSpec)


class Example(BaseModel):
    """One evaluation example, wherever it came from."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    id: str
    name: str
    split: Split
    task: str
    task_type: str
    success: str = ""
    scenario: str | None = None
    expect: ExpectSpec = Field(default_factory=ExpectSpec)
    reference_outputs: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    path: Path
    line: int = 1
    #: Index in the file's ``examples:`` list (None: the file is the example).
    index: int | None = None
    #: How many state checks the scenario declares (0 for plain examples).
    n_checks: int = 0

    @property
    def has_checks(self) -> bool:
        return self.n_checks > 0

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def example_id(dataset: str, name: str) -> str:
    """The default stable id: same dataset and name, same id, on every machine."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"selfheal:{dataset}/{name}"))


class Dataset:
    """A loaded dataset: its spec, examples, and a content hash for reproducibility."""

    def __init__(self, name: str, root: Path, spec: DatasetSpec, examples: list[Example], hash: str) -> None:
        self.name = name
        self.root = root
        self.spec = spec
        self.examples = examples
        self.hash = hash

    def __repr__(self) -> str:
        return f"Dataset({self.name!r}, {len(self.examples)} examples, {self.hash[:7]})"

    @property
    def short_hash(self) -> str:
        return self.hash[:7]

    def get(self, name_or_id: str) -> Example | None:
        for ex in self.examples:
            if name_or_id in (ex.name, ex.id):
                return ex
        return None

    def select(
        self,
        split: str = "all",
        names: list[str] | None = None,
        task_types: list[str] | None = None,
    ) -> list[Example]:
        """Examples of one split (or ``all``), optionally only these names / task types."""
        if split != "all" and split not in SPLITS:
            raise SelfhealError(f"unknown split '{split}' (use one of: all, {', '.join(SPLITS)})")
        if names:
            known = {ex.name for ex in self.examples}
            missing = [n for n in names if n not in known]
            if missing:
                raise SelfhealError(
                    f"dataset '{self.name}' has no example {', '.join(repr(m) for m in missing)}"
                    f" (known: {', '.join(sorted(known))})"
                )
        chosen = [
            ex
            for ex in self.examples
            if (split == "all" or ex.split == split)
            and (not names or ex.name in names)
            and (not task_types or ex.task_type in task_types)
        ]
        return chosen


# -- loading ---------------------------------------------------------------------
def datasets_root(settings: Settings) -> Path:
    return settings.path(settings.paths.evals)


def list_datasets(settings: Settings) -> list[str]:
    """Names of the directories under ``paths.evals`` that hold a dataset.yaml."""
    root = datasets_root(settings)
    if not root.is_dir():
        return []
    return sorted(p.parent.name for p in root.glob(f"*/{DATASET_FILE}") if p.is_file())


def load_dataset(settings: Settings, name: str | None = None) -> Dataset:
    """Load ``evals/<name>/`` (default: the dataset named like ``settings.agent``)."""
    name = name or settings.agent
    root = datasets_root(settings) / name
    if not (root / DATASET_FILE).is_file():
        known = list_datasets(settings)
        listing = ", ".join(known) if known else f"none under {datasets_root(settings)}"
        raise SelfhealError(f"unknown dataset '{name}' (known: {listing})")

    def validator(agent: str) -> ScenarioValidator:
        from selfheal.agents.registry import get_agent

        return get_agent(settings, agent).validate_scenario

    return load_dataset_dir(root, validator)


def load_dataset_dir(root: Path, validator: Callable[[str], ScenarioValidator] | None = None) -> Dataset:
    """Load the dataset in directory ``root`` (its dataset.yaml and every example file).

    ``validator(agent)`` gives the scenario validator of the dataset's agent; it
    is asked only when the dataset holds a scenario file. Default: the agent
    installed under that name (entry point).
    """
    root = Path(root)
    spec_path = root / DATASET_FILE
    spec, files = _spec_and_files(root)
    scenario_checks = _scenario_checker(spec, validator)
    examples: list[Example] = []
    for path in files:
        examples.extend(_load_example_file(spec.name, path, scenario_checks))
    _check_unique(examples)
    return Dataset(spec.name, root, spec, examples, _content_hash(root, [spec_path, *files]))


def check_dataset_dir(
    root: Path, validator: Callable[[str], ScenarioValidator] | None = None
) -> tuple[list[FileFormatError], list[Path]]:
    """Every file error of a dataset, not only the first (for ``selfheal lint``), and the files it globs.

    The spec is checked first (nothing else can be read without it), then each
    example or scenario file on its own, then ids and names across files.
    """
    root = Path(root)
    try:
        spec, files = _spec_and_files(root)
    except FileFormatError as exc:
        return [exc], []
    spec_path = root / DATASET_FILE
    scenario_checks = _scenario_checker(spec, validator)
    errors: list[FileFormatError] = []
    examples: list[Example] = []
    for path in files:
        try:
            examples.extend(_load_example_file(spec.name, path, scenario_checks))
        except FileFormatError as exc:
            errors.append(exc)
        except SelfhealError as exc:  # e.g. the dataset's agent is not installed
            errors.append(FileFormatError(spec_path, line_of(read_yaml(spec_path), ("agent",)), exc.message))
            break
    try:
        _check_unique(examples)
    except FileFormatError as exc:
        errors.append(exc)
    return errors, files


def _spec_and_files(root: Path) -> tuple[DatasetSpec, list[Path]]:
    """The validated dataset.yaml and the example files its globs select, in order."""
    spec_path = root / DATASET_FILE
    raw = read_yaml(spec_path)
    spec = validate(DatasetSpec, raw, spec_path)
    if spec.name != root.name:
        raise FileFormatError(
            spec_path, line_of(raw, ("name",)), f"dataset name '{spec.name}' must match its directory '{root.name}'"
        )
    files: list[Path] = []
    for i, pattern in enumerate(spec.examples):
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise FileFormatError(
                spec_path, line_of(raw, ("examples", i)), f"example glob {pattern!r} must stay inside the dataset"
            )
        for p in sorted(root.glob(pattern)):
            if p.is_file() and p.suffix in (".yaml", ".yml") and not p.name.startswith(".") and p not in files:
                if p.name == DATASET_FILE and p.parent == root:
                    continue
                files.append(p)
    return spec, files


def _scenario_checker(
    spec: DatasetSpec, validator: Callable[[str], ScenarioValidator] | None
) -> ScenarioValidator:
    """The dataset agent's scenario validator, looked up on first use (plain datasets never need the agent)."""
    validate_scenario: ScenarioValidator | None = None

    def scenario_checks(path: Path) -> int:
        nonlocal validate_scenario
        if validate_scenario is None:
            if validator is not None:
                validate_scenario = validator(spec.agent)
            else:
                from selfheal.agents.registry import get_agent
                from selfheal.config import Settings

                validate_scenario = get_agent(Settings(agent=spec.agent)).validate_scenario
        return validate_scenario(path)

    return scenario_checks


def _load_example_file(dataset: str, path: Path, scenario_checks: ScenarioValidator) -> list[Example]:
    raw = read_yaml(path)
    if raw is None or not hasattr(raw, "get"):
        raise FileFormatError(path, 1, "an example file must be a mapping")
    if "examples" not in raw and set(raw) - _PLAIN_KEYS:  # a scenario: the agent owns the other keys
        n_checks = scenario_checks(path)
        fields = validate(_ScenarioExampleFile, raw, path)
        if fields.name != path.stem:
            raise FileFormatError(
                path, line_of(raw, ("name",)), f"scenario name '{fields.name}' must match the file name '{path.stem}'"
            )
        ex = _example(dataset, fields, path, 1, None, scenario=fields.name)
        ex.n_checks = n_checks
        return [ex]
    if "examples" in raw:
        extra = sorted(set(raw) - {"examples"}, key=str)  # a key may be null or a number
        if extra:
            raise FileFormatError(
                path, line_of(raw, (extra[0],)), f"a file with 'examples:' holds nothing else (found '{extra[0]}')"
            )
        items = raw["examples"]
        if not isinstance(items, list):
            raise FileFormatError(path, line_of(raw, ("examples",)), "'examples' must be a list")
        out = []
        for i, item in enumerate(items):
            line = line_of(raw, ("examples", i)) or 1
            plain = _validate_item(item, path, raw, i)
            out.append(_example(dataset, plain, path, line, i, reference=plain.reference.outputs))
        return out
    plain = validate(_PlainExample, raw, path)
    return [_example(dataset, plain, path, 1, None, reference=plain.reference.outputs)]


def _validate_item(item: Any, path: Path, raw: Any, index: int) -> _PlainExample:
    """Validate one list item with line numbers relative to the whole file."""
    from pydantic import ValidationError

    if not isinstance(item, dict):
        raise FileFormatError(path, line_of(raw, ("examples", index)), "each example must be a mapping")
    try:
        return _PlainExample.model_validate(to_plain(item))
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ("examples", index, *err["loc"])
        raise FileFormatError(path, line_of(raw, loc), validation_message(err)) from None


def _example(
    dataset: str,
    fields: _ExampleFields,
    path: Path,
    line: int,
    index: int | None,
    *,
    scenario: str | None = None,
    reference: dict[str, Any] | None = None,
) -> Example:
    return Example(
        id=fields.id or example_id(dataset, fields.name),
        name=fields.name,
        split=fields.split,
        task=fields.task,
        task_type=fields.task_type,
        success=fields.success,
        scenario=scenario,
        expect=fields.expect,
        reference_outputs=dict(reference or {}),
        metadata=dict(fields.metadata),
        path=path,
        line=line,
        index=index,
    )


def _check_unique(examples: list[Example]) -> None:
    by_name: dict[str, Example] = {}
    by_id: dict[str, Example] = {}
    for ex in examples:
        if ex.name in by_name:
            first = by_name[ex.name]
            raise FileFormatError(ex.path, ex.line, f"duplicate example name '{ex.name}' (first at {first.where})")
        if ex.id in by_id:
            first = by_id[ex.id]
            raise FileFormatError(ex.path, ex.line, f"duplicate example id {ex.id} (first at {first.where})")
        by_name[ex.name] = ex
        by_id[ex.id] = ex


def _content_hash(root: Path, files: list[Path]) -> str:
    """sha256 over each file's path relative to the dataset and its bytes, in path order."""
    digest = hashlib.sha256()
    for rel, p in sorted((p.relative_to(root).as_posix(), p) for p in files):
        digest.update(rel.encode() + b"\0")
        digest.update(p.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()
