"""Round-trip YAML I/O with line numbers and atomic writes.

Every reviewed file (context, cheatsheet entries, scenarios, selfheal.yaml) is
read through here so that (a) validation errors name ``file:line`` and
(b) code that rewrites a file keeps its comments and key order (ruamel
round-trip) and never leaves a half-written file behind.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer, ComposerError
from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from selfheal.errors import FileFormatError

M = TypeVar("M", bound=BaseModel)

#: Deepest nesting of collections a file may have (selfheal's files use a handful of levels).
MAX_DEPTH = 100
#: Most nodes that aliases may add to a document once expanded (an alias "bomb" adds billions).
MAX_ALIAS_NODES = 10_000


class _GuardedComposer(Composer):
    """Composes the node graph, refusing what would blow up later, before any Python object exists.

    Aliases share one node in the graph but are expanded by every consumer
    that walks the data (plain dicts for validation, rendering, JSON), so a
    few hundred bytes of nested aliases become gigabytes. Each alias's
    expanded size counts against :data:`MAX_ALIAS_NODES`. Also refused: an
    alias to a collection that contains it (infinite when expanded), nesting
    deeper than :data:`MAX_DEPTH`, and collections as mapping keys.
    """

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self._sizes: dict[int, int] = {}
        self._alias_nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            target = self.anchors.get(event.anchor)
            if target is not None:
                if isinstance(target, (SequenceNode, MappingNode)) and target.end_mark is None:
                    raise ComposerError(None, None, f"alias *{event.anchor} refers to a collection containing it",
                                        event.start_mark)
                self._alias_nodes += self._size(target)
                if self._alias_nodes > MAX_ALIAS_NODES:
                    raise ComposerError(None, None, f"aliases expand to more than {MAX_ALIAS_NODES} values",
                                        event.start_mark)
        elif self.depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", self.parser.peek_event().start_mark)
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        for key, _value in node.value:
            if not isinstance(key, ScalarNode):
                raise ComposerError(None, None, "a mapping key must be a plain value, not a list or mapping",
                                    key.start_mark)
        return node

    def _size(self, node: Node) -> int:
        """Values in ``node`` once every alias inside it is expanded (memoised per node)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(self._size(child) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(self._size(k) + self._size(v) for k, v in node.value)
        self._sizes[id(node)] = total
        return total


class _GuardedConstructor(RoundTripConstructor):
    """A value its tag cannot hold (``2026-02-30``, ``!!int abc``) is a marked error, not a traceback."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except YAMLError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError, IndexError) as exc:
            tag = str(getattr(node.tag, "value", node.tag) or "")
            kind = tag.rsplit(":", 1)[-1] or "a value"
            shown = node.value if isinstance(node, ScalarNode) else type(exc).__name__
            detail = f": {exc}" if isinstance(exc, ValueError) else ""
            raise ConstructorError(None, None, f"cannot read {shown!r} as {kind}{detail}", node.start_mark) from None


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.Composer = _GuardedComposer
    y.Constructor = _GuardedConstructor
    y.preserve_quotes = True
    y.width = 100
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def parse_yaml(text: str, path: Path | str = "<string>") -> Any:
    """Parse YAML text round-trip; any bad input becomes ``file:line: message`` (:class:`FileFormatError`).

    Alias bombs, deep nesting, collections as keys and impossible values are
    refused with the line they are on (see :class:`_GuardedComposer`).
    """
    try:
        return _yaml().load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise FileFormatError(path, line, f"invalid YAML: {problem}") from None
    except YAMLError as exc:
        raise FileFormatError(path, None, f"invalid YAML: {' '.join(str(exc).split())}") from None
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError, IndexError, RecursionError) as exc:
        raise FileFormatError(path, None, f"invalid YAML: {type(exc).__name__}: {exc}") from None


def read_yaml(path: Path | str) -> Any:
    """Read a YAML file round-trip (keeps comments/order for a later rewrite)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileFormatError(p, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise FileFormatError(p, None, f"not UTF-8 text ({exc.reason})") from None
    return parse_yaml(text, p)


def dump_yaml(data: Any, *, width: int | None = None) -> str:
    """Serialise (round-trip) data to YAML text.

    ``width``: where long plain scalars wrap (default 100); a rewrite of a
    hand-written file passes a large one so its lines stay as they were.
    """
    buf = io.StringIO()
    y = _yaml()
    if width is not None:
        y.width = width
    y.dump(data, buf)
    return buf.getvalue()


def atomic_write_text(path: Path | str, text: str) -> None:
    """Write a file atomically: temp file in the same directory, fsync, rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if p.exists():
            os.chmod(tmp, p.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_yaml(path: Path | str, data: Any) -> None:
    """Dump round-trip data and write it atomically."""
    atomic_write_text(path, dump_yaml(data))


def line_of(data: Any, loc: tuple[Any, ...] | list[Any]) -> int | None:
    """Best 1-based line for a key path in round-trip data (deepest node found)."""
    node = data
    line: int | None = None
    if isinstance(node, (CommentedMap, CommentedSeq)) and hasattr(node, "lc"):
        line = node.lc.line + 1
    for key in loc:
        if isinstance(node, CommentedMap):
            if key not in node:
                break
            try:
                line = node.lc.key(key)[0] + 1
            except (KeyError, TypeError, AttributeError):
                pass
            node = node[key]
        elif isinstance(node, CommentedSeq):
            if not isinstance(key, int) or key >= len(node):
                break
            try:
                line = node.lc.item(key)[0] + 1
            except (KeyError, TypeError, AttributeError, IndexError):
                pass
            node = node[key]
        else:
            break
    return line


def format_loc(loc: tuple[Any, ...] | list[Any]) -> str:
    parts: list[str] = []
    for key in loc:
        if isinstance(key, int):
            parts.append(f"[{key}]")
        else:
            parts.append(("." if parts else "") + str(key))
    return "".join(parts) or "<root>"


def to_plain(data: Any) -> Any:
    """Round-trip containers -> plain dict/list (for pydantic validation)."""
    if isinstance(data, dict):
        return {str(k): to_plain(v) for k, v in data.items()}
    if isinstance(data, list):
        return [to_plain(v) for v in data]
    return data


def validation_message(err: dict[str, Any]) -> str:
    loc = tuple(err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return f"unknown key '{format_loc(loc)}'"
    if kind == "missing":
        return f"missing required key '{format_loc(loc)}'"
    msg = err.get("msg", "invalid value")
    return f"'{format_loc(loc)}': {msg}"


def validate(model: type[M], data: Any, path: Path | str, **context: Any) -> M:
    """Validate round-trip YAML data into a pydantic model; errors name file:line."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FileFormatError(path, line_of(data, ()), "expected a mapping at the top level")
    try:
        return model.model_validate(to_plain(data), context=context or None)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err.get("loc", ()))
        line = line_of(data, loc)
        raise FileFormatError(path, line, validation_message(err)) from None
