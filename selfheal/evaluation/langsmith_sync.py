"""Push a file dataset to LangSmith and pull LangSmith's edits back into the files, by example id.

The files stay the source of truth in git; LangSmith is where people browse,
annotate and run experiments. Both sides use the same example ids (the
files' stable ids), so a push updates rather than duplicates, and a pull
applies remote edits to the right file: changed task / split / expect /
metadata are written into the existing file (ruamel round-trip: comments and
key order kept, atomic write), and examples created in LangSmith become plain
example files under ``examples/``.

Payload shape: inputs ``{task, scenario}``; outputs ``{success, expect,
reference_outputs}``; metadata ``{name, task_type, split, scenario, file}``
plus the example's own metadata; the split also as LangSmith's ``split``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

from selfheal.errors import SelfhealError
from selfheal.evaluation.dataset import SPLITS, Dataset, Example, ExpectSpec
from selfheal.yamlio import read_yaml, write_yaml

if TYPE_CHECKING:
    from langsmith import Client

_RESERVED_META = ("name", "task_type", "split", "scenario", "file", "dataset_split")


class LangSmithSyncError(SelfhealError):
    """LangSmith refused or failed a dataset push/pull."""


def example_payload(dataset: Dataset, ex: Example) -> dict[str, Any]:
    """The LangSmith example of a file example (also what the local store keeps)."""
    return {
        "id": ex.id,
        "inputs": {"task": ex.task, "scenario": ex.scenario},
        "outputs": {"success": ex.success, "expect": ex.expect.dump(), "reference_outputs": ex.reference_outputs},
        "metadata": {
            **ex.metadata,
            "name": ex.name,
            "task_type": ex.task_type,
            "split": ex.split,
            "scenario": ex.scenario,
            "file": ex.path.relative_to(dataset.root).as_posix(),
        },
        "split": ex.split,
    }


@dataclass
class PushReport:
    dataset_id: UUID
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


@dataclass
class PullReport:
    changed: dict[str, list[str]] = field(default_factory=dict)  # example name -> fields changed
    added: list[str] = field(default_factory=list)  # files written
    skipped: list[str] = field(default_factory=list)  # remote examples that cannot become files
    unchanged: int = 0

    def lines(self) -> list[str]:
        out = [f"updated {name}: {', '.join(fields)}" for name, fields in self.changed.items()]
        out += [f"added {path}" for path in self.added]
        out += [f"skipped {what}" for what in self.skipped]
        if not out:
            out.append("nothing changed")
        return out


def _ensure_remote_dataset(client: Client, dataset: Dataset) -> UUID:
    from langsmith.utils import LangSmithNotFoundError

    try:
        return client.read_dataset(dataset_name=dataset.name).id
    except LangSmithNotFoundError:
        pass
    return client.create_dataset(
        dataset.name, description=dataset.spec.description or None, metadata={"agent": dataset.spec.agent}
    ).id


def push_dataset(client: Client, dataset: Dataset) -> PushReport:
    """Create or update the LangSmith dataset: new ids are created, known ids updated (idempotent)."""
    try:
        dataset_id = _ensure_remote_dataset(client, dataset)
        existing = {str(e.id) for e in client.list_examples(dataset_id=dataset_id)}
        report = PushReport(dataset_id=UUID(str(dataset_id)))
        creates, updates = [], []
        for ex in dataset.examples:
            payload = example_payload(dataset, ex)
            if ex.id in existing:
                updates.append({**{k: payload[k] for k in ("id", "inputs", "outputs", "metadata", "split")}})
                report.updated.append(ex.name)
            else:
                creates.append(
                    {
                        "id": ex.id,
                        "inputs": payload["inputs"],
                        "reference_outputs": payload["outputs"],
                        "metadata": payload["metadata"],
                        "split": payload["split"],
                    }
                )
                report.created.append(ex.name)
        if creates:
            client.create_examples(dataset_id=dataset_id, examples=creates)
        if updates:
            client.update_examples(dataset_id=dataset_id, updates=updates)
    except SelfhealError:
        raise
    except Exception as exc:
        raise LangSmithSyncError(f"LangSmith dataset push of '{dataset.name}' failed: {_one_line(exc)}") from exc
    return report


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _remote_split(metadata: dict[str, Any]) -> str | None:
    split = metadata.get("dataset_split")
    if isinstance(split, list):
        split = next((s for s in split if s in SPLITS), None)
    if split in SPLITS:
        return str(split)
    return metadata.get("split") if metadata.get("split") in SPLITS else None


def _remote_fields(example: Any) -> dict[str, Any]:
    """task / split / task_type / success / expect / reference / metadata of a LangSmith example."""
    inputs = dict(example.inputs or {})
    outputs = dict(example.outputs or {})
    metadata = dict(example.metadata or {})
    return {
        "name": metadata.get("name"),
        "task": inputs.get("task"),
        "split": _remote_split(metadata),
        "task_type": metadata.get("task_type"),
        "success": outputs.get("success"),
        "expect": outputs.get("expect"),
        "reference": outputs.get("reference_outputs"),
        "metadata": {k: v for k, v in metadata.items() if k not in _RESERVED_META},
    }


def pull_dataset(client: Client, dataset: Dataset) -> PullReport:
    """Apply LangSmith's version of each example to the files (by id); write new examples."""
    from langsmith.utils import LangSmithNotFoundError

    try:
        remote_id = client.read_dataset(dataset_name=dataset.name).id
        remote = list(client.list_examples(dataset_id=remote_id))
    except LangSmithNotFoundError:
        raise LangSmithSyncError(
            f"LangSmith has no dataset '{dataset.name}': run `selfheal dataset push {dataset.name}` first"
        ) from None
    except Exception as exc:
        raise LangSmithSyncError(f"LangSmith dataset pull of '{dataset.name}' failed: {_one_line(exc)}") from exc
    report = PullReport()
    by_id = {ex.id: ex for ex in dataset.examples}
    edits: dict[Path, list[tuple[Example, dict[str, Any]]]] = {}
    for item in remote:
        fields = _remote_fields(item)
        local = by_id.get(str(item.id))
        if local is None:
            if not fields["task"]:
                report.skipped.append(f"{item.id}: no inputs.task")
                continue
            report.added.append(_write_new_example(dataset, str(item.id), fields))
            continue
        changes = _diff(local, fields)
        if changes:
            edits.setdefault(local.path, []).append((local, changes))
            report.changed[local.name] = sorted(changes)
        else:
            report.unchanged += 1
    for path, items in edits.items():
        _apply(path, items)
    return report


def _diff(local: Example, remote: dict[str, Any]) -> dict[str, Any]:
    """Fields LangSmith changed (only the ones pull applies), with their new values."""
    changes: dict[str, Any] = {}
    if remote["task"] and remote["task"] != local.task:
        changes["task"] = remote["task"]
    if remote["split"] and remote["split"] != local.split:
        changes["split"] = remote["split"]
    if remote["task_type"] and remote["task_type"] != local.task_type:
        changes["task_type"] = remote["task_type"]
    if remote["expect"] is not None:
        try:
            expect = ExpectSpec.model_validate(remote["expect"])
        except Exception as exc:
            raise LangSmithSyncError(f"LangSmith example {local.name}: invalid expect: {_one_line(exc)}") from None
        if expect.dump() != local.expect.dump():
            changes["expect"] = expect.dump()
    if remote["metadata"] != local.metadata:
        changes["metadata"] = remote["metadata"]
    return changes


def _apply(path: Path, items: list[tuple[Example, dict[str, Any]]]) -> None:
    """Rewrite one file with its examples' changes, keeping comments and key order."""
    data = read_yaml(path)
    for ex, changes in items:
        node = data if ex.index is None else data["examples"][ex.index]
        for key, value in changes.items():
            if key == "metadata" and not value:
                node.pop("metadata", None)
            elif key == "expect" and not value:
                node.pop("expect", None)
            else:
                node[key] = value
    write_yaml(path, data)


def _write_new_example(dataset: Dataset, example_id: str, fields: dict[str, Any]) -> str:
    """A plain example file under examples/ for an example created in LangSmith."""
    base = fields["name"] or f"example-{example_id[:8]}"
    slug = re.sub(r"[^A-Za-z0-9_.\-]+", "-", str(base)).strip("-") or f"example-{example_id[:8]}"
    path = dataset.root / "examples" / f"{slug}.yaml"
    n = 1
    while path.exists():
        n += 1
        path = dataset.root / "examples" / f"{slug}-{n}.yaml"
    data: dict[str, Any] = {
        "id": example_id,
        "name": slug if n == 1 else f"{slug}-{n}",
        "task": fields["task"] or "",
        "task_type": fields["task_type"] or "general",
        "split": fields["split"] or "train",
    }
    if fields["success"]:
        data["success"] = fields["success"]
    if fields["expect"]:
        data["expect"] = ExpectSpec.model_validate(fields["expect"]).dump()
    if fields["reference"]:
        data["reference"] = {"outputs": fields["reference"]}
    if fields["metadata"]:
        data["metadata"] = fields["metadata"]
    write_yaml(path, data)
    return path.relative_to(dataset.root).as_posix()
