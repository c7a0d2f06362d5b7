"""Write a set of demonstrations into ``context.yaml`` as ``examples:`` entries (text in, text out).

The file is edited round-trip (comments, order and hand-written examples
stay as the team wrote them): bootstrapped examples are replaced as a set,
hand-written ones are never touched, and the result must load as a
:class:`~selfheal.context.model.ContextFile` before anyone writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import LiteralScalarString

from selfheal.context.model import CONTEXT_FILENAME, ContextFile, Example
from selfheal.optimize.demos.model import Demonstration
from selfheal.yamlio import dump_yaml, parse_yaml, validate


def _entry(demo: Demonstration) -> CommentedMap:
    ex = demo.to_example()
    prov = ex.provenance.model_dump(mode="json") if ex.provenance is not None else {}
    out = CommentedMap()
    out["id"] = ex.id
    out["source"] = "bootstrapped"
    out["task_type"] = ex.task_type
    out["task"] = ex.task
    out["provenance"] = CommentedMap((k, v) for k, v in prov.items() if v not in ("", None))
    # Last, as a `|` block like the hand-written ones: a comment that followed the list stays in place.
    out["trajectory"] = LiteralScalarString(ex.trajectory.rstrip("\n") + "\n")
    return out


def _last_scalar(node: Any) -> tuple[Any, Any] | None:
    """(container, key) of the last scalar in a block node: where ruamel keeps a comment that follows it."""
    if isinstance(node, CommentedMap) and len(node):
        key = list(node.keys())[-1]
        inner = _last_scalar(node[key])
        return inner or (node, key)
    if isinstance(node, CommentedSeq) and len(node):
        inner = _last_scalar(node[-1])
        return inner or (node, len(node) - 1)
    return None


def _take_trailing_comment(seq: CommentedSeq) -> Any:
    """Detach the comment lines after the list's last item (they belong to what follows the list)."""
    where = _last_scalar(seq)
    if where is None:
        return None
    container, key = where
    slot = container.ca.items.get(key)
    if not slot or len(slot) < 3 or slot[2] is None:
        return None
    token, slot[2] = slot[2], None
    return token


def _put_trailing_comment(seq: CommentedSeq, token: Any) -> None:
    where = _last_scalar(seq)
    if token is None or where is None:
        return
    container, key = where
    slot = container.ca.items.setdefault(key, [None, None, None, None])
    slot[2] = token


def is_bootstrapped(item: Any) -> bool:
    return isinstance(item, dict) and item.get("source") == "bootstrapped"


def context_with_demos(context_text: str, demos: Sequence[Demonstration], *, bump_version: bool = False,
                       path: Path | str = CONTEXT_FILENAME) -> str:
    """``context.yaml``'s text with its bootstrapped examples replaced by ``demos`` (after the hand-written ones).

    ``bump_version``: add one to ``version`` (every accepted change does).
    """
    data = parse_yaml(context_text, path)
    examples = data.get("examples")
    if not isinstance(examples, CommentedSeq):
        examples = CommentedSeq(examples or [])
        data["examples"] = examples
    trailing = _take_trailing_comment(examples)
    for i in reversed(range(len(examples))):
        if is_bootstrapped(examples[i]):
            del examples[i]
    for demo in demos:
        examples.append(_entry(demo))
    if len(examples):
        examples.fa.set_block_style()  # `examples: []` becomes a block list once it has items
    _put_trailing_comment(examples, trailing)
    if bump_version and isinstance(data.get("version"), int):
        data["version"] = data["version"] + 1
    text = dump_yaml(data, width=4096)
    validate(ContextFile, parse_yaml(text, path), path)  # never hand back a file the loader would refuse
    return text


def bootstrapped_examples(context_text: str) -> list[Example]:
    """The bootstrapped examples a context file holds now."""
    ctx = validate(ContextFile, parse_yaml(context_text), CONTEXT_FILENAME)
    return [e for e in ctx.examples if e.source == "bootstrapped"]
