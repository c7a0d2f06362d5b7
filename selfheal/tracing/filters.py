"""LangSmith's run filter language: parse once into a typed AST, print it back, evaluate it.

The grammar is LangSmith's (``list_runs(filter=...)``, trace query syntax)::

    filter     := call
    call       := combinator "(" call ("," call)* ")"
                | comparator "(" field "," value ")"
                | "search" "(" [field ","] string ")"
    combinator := "and" | "or"                       (n-ary, at least one operand)
    comparator := eq | neq | gt | gte | lt | lte | has | in
    value      := string | number | true | false | null | "[" value ("," value)* "]"

Strings are double- or single-quoted with JSON escapes (``\\" \\' \\\\ \\n \\t \\uXXXX``).
Values are checked against the field when parsing, so a query that cannot mean
anything (``gte(start_time, "soon")``, ``gt(tags, 1)``) fails before it runs,
with a column and a caret. Typed values in the AST: datetimes are aware UTC
``datetime``; ``latency`` is float seconds (``"5s"``, ``"250ms"``, ``"2m"`` or a
number); ids are canonical lower-case UUID strings; ``has(metadata, '{"k": 1}')``
holds the decoded ``dict``.

Fields (see :data:`FIELDS`): ``id``, ``trace_id``, ``parent_run_id``, ``name``,
``run_type``, ``status``, ``error``, ``start_time``, ``end_time``, ``latency``,
``total_tokens``, ``prompt_tokens``, ``completion_tokens``, ``is_root``, ``tags``,
``metadata``, the key/value pairs ``metadata_key``/``metadata_value``,
``input_key``/``input_value``, ``output_key``/``output_value``,
``feedback_key``/``feedback_score``, and the convenience ``metadata.<key>``.

Semantics, shared by :func:`evaluate` and any compiler to SQL:

* A comparison on a missing or null field is false, except ``neq`` which is
  exactly ``not eq`` (missing != "x" is true) and ``eq(f, null)`` which is true
  for a missing/null field. ``neq(error, null)`` therefore means "errored".
* Equality is typed: strings equal strings (case-sensitive), numbers equal
  numbers (``1 == 1.0``), booleans only booleans. For metadata/input/output
  values a string in the filter also matches a non-string value whose JSON text
  it is (``eq(metadata_value, "0.7")`` matches ``0.7``), as LangSmith compares
  those as text. Ordering compares numbers with numbers and strings with strings
  (lexicographically); any other pairing is false.
* ``has(tags, "x")``: ``"x"`` is one of the tags. ``has(metadata, '{"k": v}')``:
  every given key is in the metadata with exactly that value.
* ``search("x")``: case-insensitive (``str.lower``) substring of the name, the
  error, or any string leaf of inputs or outputs (dict keys are not searched).
  ``search(field, "x")`` is the same on one string field.
* Pair fields (``metadata_key``/``metadata_value`` etc.) are grouped per family
  among the direct operands of one ``and`` (a pair comparison elsewhere is a group
  by itself); see :class:`PairGroup` for the exact rule, which reproduces the
  examples in LangSmith's docs (``and(eq(feedback_key, "x"), gt(feedback_score, 4))``
  means one feedback entry with key x and score > 4).
"""

from __future__ import annotations

import difflib
import json
import math
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal, TypeAlias

from selfheal.errors import SelfhealError

__all__ = [
    "COMPARATORS",
    "FIELDS",
    "And",
    "Comparison",
    "FieldSpec",
    "Filter",
    "FilterError",
    "Kind",
    "Or",
    "PairGroup",
    "Search",
    "evaluate",
    "field_spec",
    "parse_filter",
    "split_pairs",
    "to_text",
]

Op: TypeAlias = Literal["eq", "neq", "gt", "gte", "lt", "lte", "has", "in"]
Scalar: TypeAlias = str | int | float | bool | datetime | None
#: A comparison value: a scalar, a tuple of scalars (``in``) or a dict (``has(metadata, ...)``).
Value: TypeAlias = Scalar | tuple[Scalar, ...] | dict[str, Any]

COMPARATORS: frozenset[str] = frozenset({"eq", "neq", "gt", "gte", "lt", "lte", "has", "in"})
_COMBINATORS = frozenset({"and", "or"})
_ORDERING = frozenset({"gt", "gte", "lt", "lte"})
_ALL_NAMES = sorted(COMPARATORS | _COMBINATORS | {"search"})


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Comparison:
    """``op(field, value)``; ``value`` is already typed for the field (see module doc)."""

    op: Op
    field: str
    value: Value


@dataclass(frozen=True)
class Search:
    """``search("text")`` over all searchable text, or ``search(field, "text")``."""

    text: str
    field: str | None = None


@dataclass(frozen=True)
class And:
    children: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Filter, ...]


Filter: TypeAlias = Comparison | Search | And | Or


# ------------------------------------------------------------------------ fields


class Kind(StrEnum):
    """How a field's values are typed and compared."""

    STRING = "string"
    UUID = "uuid"
    ENUM = "enum"
    DATETIME = "datetime"
    DURATION = "duration"  # seconds (float)
    INT = "int"
    NUMBER = "number"
    BOOL = "bool"
    TAGS = "tags"
    METADATA = "metadata"  # has(metadata, '<json object>')
    PAIR_KEY = "pair_key"
    PAIR_VALUE = "pair_value"
    META_PATH = "meta_path"  # metadata.<key>


@dataclass(frozen=True)
class FieldSpec:
    """What a filter field accepts; ``family`` groups pair fields (metadata, feedback...)."""

    name: str
    kind: Kind
    ops: frozenset[str]
    nullable: bool = False
    choices: frozenset[str] = field(default_factory=frozenset)
    family: str | None = None
    searchable: bool = False


_ORD_EQ = frozenset({"eq", "neq", "gt", "gte", "lt", "lte"})
_EQ_IN = frozenset({"eq", "neq", "in"})
RUN_TYPES = frozenset({"llm", "chain", "tool", "retriever", "embedding", "prompt", "parser"})
RUN_STATUSES = frozenset({"success", "error", "pending"})

FIELDS: Mapping[str, FieldSpec] = {
    s.name: s
    for s in (
        FieldSpec("id", Kind.UUID, _EQ_IN),
        FieldSpec("trace_id", Kind.UUID, _EQ_IN),
        FieldSpec("parent_run_id", Kind.UUID, _EQ_IN, nullable=True),
        FieldSpec("name", Kind.STRING, _EQ_IN, searchable=True),
        FieldSpec("run_type", Kind.ENUM, _EQ_IN, choices=RUN_TYPES),
        FieldSpec("status", Kind.ENUM, _EQ_IN, choices=RUN_STATUSES),
        FieldSpec("error", Kind.STRING, frozenset({"eq", "neq"}), nullable=True, searchable=True),
        FieldSpec("start_time", Kind.DATETIME, _ORD_EQ),
        FieldSpec("end_time", Kind.DATETIME, _ORD_EQ, nullable=True),
        FieldSpec("latency", Kind.DURATION, _ORD_EQ),
        FieldSpec("total_tokens", Kind.INT, _ORD_EQ),
        FieldSpec("prompt_tokens", Kind.INT, _ORD_EQ),
        FieldSpec("completion_tokens", Kind.INT, _ORD_EQ),
        FieldSpec("is_root", Kind.BOOL, frozenset({"eq", "neq"})),
        FieldSpec("tags", Kind.TAGS, frozenset({"has"})),
        FieldSpec("metadata", Kind.METADATA, frozenset({"has"})),
        FieldSpec("metadata_key", Kind.PAIR_KEY, _EQ_IN, family="metadata"),
        FieldSpec("metadata_value", Kind.PAIR_VALUE, _ORD_EQ | {"in"}, family="metadata"),
        FieldSpec("input_key", Kind.PAIR_KEY, _EQ_IN, family="inputs"),
        FieldSpec("input_value", Kind.PAIR_VALUE, _ORD_EQ | {"in"}, family="inputs"),
        FieldSpec("output_key", Kind.PAIR_KEY, _EQ_IN, family="outputs"),
        FieldSpec("output_value", Kind.PAIR_VALUE, _ORD_EQ | {"in"}, family="outputs"),
        FieldSpec("feedback_key", Kind.PAIR_KEY, _EQ_IN, family="feedback"),
        FieldSpec("feedback_score", Kind.NUMBER, _ORD_EQ | {"in"}, family="feedback"),
    )
}
_META_PATH_SPEC = FieldSpec(
    "metadata.*", Kind.META_PATH, _ORD_EQ | {"in"}, nullable=True, searchable=True
)
_META_PREFIX = "metadata."


def field_spec(name: str) -> FieldSpec | None:
    """The spec of a field name, including ``metadata.<key>``; None if unknown."""
    spec = FIELDS.get(name)
    if spec is None and name.startswith(_META_PREFIX) and len(name) > len(_META_PREFIX):
        return _META_PATH_SPEC
    return spec


def _pair_role(spec: FieldSpec) -> Literal["key", "value"] | None:
    if spec.family is None:
        return None
    return "key" if spec.kind is Kind.PAIR_KEY else "value"


# ------------------------------------------------------------------------ errors


class FilterError(SelfhealError):
    """A filter string that does not parse or does not type-check.

    ``str(err)`` is one self-contained line (``filter: <detail> at column N``);
    ``err.caret`` is the offending line with a caret under the column, for CLIs
    that can print more than one line.
    """

    def __init__(self, detail: str, text: str, pos: int, hint: str = "") -> None:
        pos = max(0, min(pos, len(text)))
        line_start = text.rfind("\n", 0, pos) + 1
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        self.detail = detail
        self.hint = hint
        self.text = text
        self.position = pos
        self.line = text.count("\n", 0, pos) + 1
        self.column = pos - line_start + 1
        src = _SURROGATE.sub("\ufffd", text[line_start:line_end].replace("\t", " "))  # printable, same width
        self.caret = f"  {src}\n  {' ' * (self.column - 1)}^"
        where = (
            f"line {self.line}, column {self.column}" if "\n" in text else f"column {self.column}"
        )
        tail = f" ({hint})" if hint else ""
        super().__init__(f"filter: {detail} at {where}{tail}")

    def render(self) -> str:
        """The one-line message followed by the caret lines."""
        return f"{self.message}\n{self.caret}"


# ------------------------------------------------------------------------- lexer


@dataclass(frozen=True)
class _Tok:
    kind: str  # ident, string, number, "(", ")", ",", "[", "]", eof
    text: str  # source text of the token
    pos: int
    value: Any = None


_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: Deepest nesting of calls (``and(or(and(...)))``) a filter may have.
MAX_DEPTH = 64
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}


def _lex(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "(),[]":
            toks.append(_Tok(c, c, i))
            i += 1
        elif c in "\"'":
            value, end = _lex_string(text, i)
            toks.append(_Tok("string", text[i:end], i, value))
            i = end
        elif c == "-" or c in "0123456789":
            m = _NUMBER_RE.match(text, i)
            if not m:
                raise FilterError(f"bad number {_shorten(text[i : i + 12])!r}", text, i)
            end = m.end()
            if end < n and (text[end].isalnum() or text[end] in "._"):
                bad = re.match(r"[^\s(),\[\]]+", text[i:]).group(0)  # type: ignore[union-attr]
                raise FilterError(f"bad number {_shorten(bad)!r}", text, i)
            lit = m.group(0)
            try:
                num: int | float = float(lit) if any(ch in lit for ch in ".eE") else int(lit)
            except ValueError:  # more digits than int() converts
                num = math.inf
            if isinstance(num, float) and not math.isfinite(num):
                raise FilterError(f"number {_shorten(lit)!r} is out of range", text, i)
            toks.append(_Tok("number", lit, i, num))
            i = end
        elif c.isascii() and (c.isalpha() or c == "_"):
            m = _IDENT_RE.match(text, i)
            if m is None:  # pragma: no cover - an ASCII letter or _ always starts an identifier
                raise FilterError(f"unexpected character {c!r}", text, i)
            toks.append(_Tok("ident", m.group(0), i, m.group(0)))
            i = m.end()
        elif _SURROGATE.match(c):
            raise FilterError(f"not valid Unicode text: {c!r} (undecodable bytes?)", text, i)
        else:
            hint = "names are ASCII: letters, digits, _ . -" if c.isalpha() else ""
            raise FilterError(f"unexpected character {c!r}", text, i, hint)
    toks.append(_Tok("eof", "", n))
    return toks


def _lex_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            if i + 1 >= n:
                break
            e = text[i + 1]
            if _SURROGATE.match(e):
                raise FilterError(f"not valid Unicode text: {e!r} (undecodable bytes?)", text, i + 1)
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            if e == "u":
                code, i = _lex_unicode(text, i)
                out.append(code)
                continue
            raise FilterError(f"bad escape '\\{e}' in string", text, i)
        if _SURROGATE.match(c):
            raise FilterError(f"not valid Unicode text: {c!r} (undecodable bytes?)", text, i)
        out.append(c)
        i += 1
    raise FilterError("unterminated string", text, start)


def _lex_unicode(text: str, i: int) -> tuple[str, int]:
    """Decode ``\\uXXXX`` at ``i`` (joining a UTF-16 surrogate pair as JSON does)."""

    def hex4(at: int) -> int:
        digits = text[at + 2 : at + 6]
        if len(digits) != 4 or not all(ch in "0123456789abcdefABCDEF" for ch in digits):
            raise FilterError("bad \\u escape: expected 4 hex digits", text, at)
        return int(digits, 16)

    hi = hex4(i)
    if 0xD800 <= hi < 0xDC00 and text[i + 6 : i + 8] == "\\u":
        lo = hex4(i + 6)
        if 0xDC00 <= lo < 0xE000:
            return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)), i + 12
    if 0xD800 <= hi < 0xE000:  # a lone surrogate: no UTF-8 text (SQLite, LangSmith) can hold it
        raise FilterError(f"bad \\u escape: \\u{hi:04x} is half of a surrogate pair", text, i)
    return chr(hi), i + 6


def _shorten(s: str, limit: int = 24) -> str:
    return s if len(s) <= limit else s[: limit - 1] + "…"


# ------------------------------------------------------------------------ parser


def parse_filter(text: str) -> Filter:
    """Parse a LangSmith filter string; raises :class:`FilterError` pointing at the bad token.

    Total: any string gives a filter or a FilterError (never another exception).
    """
    if not isinstance(text, str):
        raise FilterError(f"a filter is text, got {type(text).__name__}", "", 0)
    if not text.strip():
        raise FilterError("empty filter", text, 0)
    try:
        return _Parser(text).parse()
    except FilterError:
        raise
    except (RecursionError, ValueError, OverflowError, UnicodeError) as exc:  # pragma: no cover - a safety net
        raise FilterError(f"cannot read this filter ({type(exc).__name__})", text, 0) from None


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _lex(text)
        self.i = 0
        self.depth = 0

    # -- token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def advance(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def error(self, detail: str, tok: _Tok | None = None, hint: str = "") -> FilterError:
        return FilterError(detail, self.text, (tok or self.tok).pos, hint)

    def describe(self, tok: _Tok) -> str:
        return "the end of the filter" if tok.kind == "eof" else repr(_shorten(tok.text))

    def expect(self, kind: str, what: str) -> _Tok:
        if self.tok.kind != kind:
            raise self.error(f"expected {what}, got {self.describe(self.tok)}")
        return self.advance()

    def close(self, name: str, opener: _Tok) -> None:
        """Expect the ')' closing ``name(`` opened at ``opener``."""
        if self.tok.kind == ")":
            self.advance()
            return
        col = opener.pos + 1
        if self.tok.kind == "eof":
            raise self.error(f"missing ')' to close {name}( (opened at column {col})")
        raise self.error(f"expected ',' or ')' in {name}(...), got {self.describe(self.tok)}")

    # -- grammar
    def parse(self) -> Filter:
        node = self.call()
        if self.tok.kind != "eof":
            raise self.error(f"unexpected {self.describe(self.tok)} after the end of the filter")
        return node

    def call(self) -> Filter:
        self.depth += 1
        try:
            return self._call()
        finally:
            self.depth -= 1

    def _call(self) -> Filter:
        tok = self.tok
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested deeper than {MAX_DEPTH} calls")
        if tok.kind != "ident":
            raise self.error(
                f"expected a comparator such as eq(...) or and(...), got {self.describe(tok)}"
            )
        name = tok.text
        if name not in _COMBINATORS and name not in COMPARATORS and name != "search":
            raise self.error(f"unknown comparator {name!r}", tok, _did_you_mean(name, _ALL_NAMES))
        self.advance()
        opener = self.tok
        if opener.kind != "(":
            raise self.error(f"expected '(' after {name}, got {self.describe(opener)}")
        self.advance()
        if name in _COMBINATORS:
            return self.combinator(name, opener)
        if name == "search":
            return self.search(opener)
        return self.comparison(name, opener)  # type: ignore[arg-type]

    def combinator(self, name: str, opener: _Tok) -> Filter:
        if self.tok.kind == ")":
            raise self.error(f"{name}() needs at least one condition")
        children = [self.call()]
        while self.tok.kind == ",":
            self.advance()
            children.append(self.call())
        self.close(name, opener)
        return And(tuple(children)) if name == "and" else Or(tuple(children))

    def search(self, opener: _Tok) -> Search:
        if self.tok.kind == ")":
            raise self.error("search() takes a string, or a field and a string")
        field_name: str | None = None
        spec: FieldSpec | None = None
        if self.tok.kind == "ident":
            ftok = self.tok
            field_name, spec = self.field()
            if not spec.searchable:
                raise self.error(
                    f"search() does not apply to {field_name}: it is not a text field", ftok
                )
            self.expect(",", "',' after the field")
        stok = self.tok
        if stok.kind != "string":
            raise self.error(f"search() expects a string, got {self.describe(stok)}")
        self.advance()
        if self.tok.kind == ",":
            raise self.error("search() takes at most a field and a string")
        self.close("search", opener)
        return Search(stok.value, field_name)

    def field(self) -> tuple[str, FieldSpec]:
        tok = self.tok
        if tok.kind != "ident":
            raise self.error(f"expected a field name, got {self.describe(tok)}")
        spec = field_spec(tok.text)
        if spec is None:
            hint = _did_you_mean(tok.text, [*FIELDS, "metadata.<key>"])
            raise self.error(f"unknown field {tok.text!r}", tok, hint)
        self.advance()
        return tok.text, spec

    def comparison(self, op: Op, opener: _Tok) -> Comparison:
        if self.tok.kind == ")":
            raise self.error(f"{op}() takes a field and a value, got nothing")
        ftok = self.tok
        name, spec = self.field()
        if op not in spec.ops:
            allowed = ", ".join(sorted(spec.ops))
            raise self.error(f"{op}() does not apply to {name} (it takes: {allowed})", ftok)
        if self.tok.kind == ")":
            raise self.error(f"{op}() takes a field and a value, got only the field")
        self.expect(",", f"',' after {name}")
        vtok = self.tok
        raw = self.value()
        value = _coerce(op, name, spec, raw, vtok, self)
        if self.tok.kind == ",":
            raise self.error(f"{op}() takes a field and a value, got more arguments")
        self.close(op, opener)
        return Comparison(op, name, value)

    def value(self) -> Any:
        tok = self.tok
        if tok.kind in ("string", "number"):
            self.advance()
            return tok.value
        if tok.kind == "ident":
            if tok.text in ("true", "false", "null"):
                self.advance()
                return {"true": True, "false": False, "null": None}[tok.text]
            raise self.error(
                f"expected a value (string, number, true, false or null), got {tok.text!r}",
                hint=f'quote text: "{tok.text}"',
            )
        if tok.kind == "[":
            self.advance()
            items: list[_Item] = []
            if self.tok.kind == "]":
                raise self.error("empty list")
            while True:
                itok = self.tok
                if itok.kind == "[":
                    raise self.error("lists cannot be nested")
                items.append(_Item(self.value(), itok))
                if self.tok.kind == ",":
                    self.advance()
                    continue
                if self.tok.kind == "]":
                    self.advance()
                    return items
                raise self.error(f"expected ',' or ']' in list, got {self.describe(self.tok)}")
        raise self.error(f"expected a value, got {self.describe(tok)}")


@dataclass(frozen=True)
class _Item:
    value: Any
    tok: _Tok


def _did_you_mean(word: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


# ----------------------------------------------------------------- value typing

_DURATION_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _coerce(op: str, name: str, spec: FieldSpec, raw: Any, tok: _Tok, p: _Parser) -> Value:
    """Type ``raw`` for ``spec`` or raise a FilterError at the value token."""
    if op == "in":
        if not isinstance(raw, list):
            raise p.error(f'in() expects a list like ["a", "b"] for {name}', tok)
        return tuple(_coerce_scalar("in", name, spec, it.value, it.tok, p) for it in raw)
    if isinstance(raw, list):
        raise p.error(f"a list is only allowed with in(), not {op}()", tok)
    return _coerce_scalar(op, name, spec, raw, tok, p)


def _type_name(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    return "a string"


def _coerce_scalar(op: str, name: str, spec: FieldSpec, v: Any, tok: _Tok, p: _Parser) -> Value:
    def bad(expected: str) -> FilterError:
        return p.error(f"{op}({name}, ...) expects {expected}, got {_type_name(v)}", tok)

    if v is None:
        if spec.nullable and op in ("eq", "neq"):
            return None
        raise bad("a non-null value" if spec.kind is not Kind.METADATA else "a JSON object string")
    k = spec.kind
    if k in (Kind.STRING, Kind.TAGS, Kind.PAIR_KEY):
        if not isinstance(v, str):
            raise bad("a string")
        return v
    if k is Kind.ENUM:
        if not isinstance(v, str):
            raise bad("a string")
        if v not in spec.choices:
            choices = ", ".join(sorted(spec.choices))
            close = _did_you_mean(v, sorted(spec.choices))
            raise p.error(f"{name} has no value {v!r}", tok, close or f"one of: {choices}")
        return v
    if k is Kind.UUID:
        if not isinstance(v, str):
            raise bad("a UUID string")
        try:
            return str(uuid.UUID(v))
        except ValueError:
            raise p.error(f"{name} expects a UUID, got {_shorten(v)!r}", tok) from None
    if k is Kind.DATETIME:
        if not isinstance(v, str):
            raise bad("an ISO 8601 datetime string")
        dt = _parse_datetime(v)
        if dt is None:
            raise p.error(
                f'{name} expects an ISO 8601 datetime like "2026-11-01T00:00:00Z",'
                f" got {_shorten(v)!r}",
                tok,
            )
        return dt
    if k is Kind.DURATION:
        if isinstance(v, str):
            m = _DURATION_RE.match(v)
            if not m:
                raise p.error(
                    f'{name} expects seconds or a duration like "5s", "250ms", "2m",'
                    f" got {_shorten(v)!r}",
                    tok,
                )
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number of seconds or a duration string")
        return float(v)
    if k in (Kind.INT, Kind.NUMBER):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise bad("a number")
        return v
    if k is Kind.BOOL:
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if k is Kind.METADATA:
        if not isinstance(v, str):
            raise bad('a JSON object string like \'{"key": "value"}\'')
        try:
            obj = json.loads(v)
        except json.JSONDecodeError as e:
            raise p.error(
                f"has(metadata, ...) expects a JSON object string: {e.msg}", tok
            ) from None
        except (ValueError, RecursionError):  # a number too long for int(), nesting too deep
            raise p.error("has(metadata, ...) expects a JSON object string it can read (too deep or too long)",
                          tok) from None
        if not isinstance(obj, dict) or not obj:
            raise p.error("has(metadata, ...) expects a non-empty JSON object string", tok)
        return obj
    # PAIR_VALUE, META_PATH: any scalar; ordering needs a number or a string.
    if op in _ORDERING and isinstance(v, bool):
        raise bad("a number or a string")
    return v


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _parse_datetime(s: str) -> datetime | None:
    if not re.match(r"^\d{4}-\d{2}-\d{2}", s.strip()):
        return None
    try:
        return _utc(datetime.fromisoformat(s.strip()))
    except ValueError:
        return None


# ---------------------------------------------------------------------- printer


def to_text(node: Filter) -> str:
    """The canonical text of a filter: ``parse_filter(to_text(f)) == f``."""
    if isinstance(node, And):
        return f"and({', '.join(to_text(c) for c in node.children)})"
    if isinstance(node, Or):
        return f"or({', '.join(to_text(c) for c in node.children)})"
    if isinstance(node, Search):
        text = _fmt_str(node.text)
        return f"search({node.field}, {text})" if node.field else f"search({text})"
    return f"{node.op}({node.field}, {_fmt_value(node.value)})"


def _fmt_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def _fmt_value(v: Value) -> str:
    if isinstance(v, tuple):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return _fmt_str(json.dumps(v, ensure_ascii=False))
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"filter numbers must be finite, got {v!r}")
        return repr(v)
    if isinstance(v, datetime):
        return _fmt_str(_utc(v).isoformat().replace("+00:00", "Z"))
    return _fmt_str(v)


# -------------------------------------------------------------------- pairs


@dataclass(frozen=True)
class PairGroup:
    """Pair comparisons of one family that must hold on the same entry.

    Entries are ``(key, value)`` pairs: metadata items, top-level input or output
    items, or ``(feedback.key, feedback.score)``. With ``key_pos``/``value_pos``
    the positive (eq, in, gt...) tests and ``key_neg``/``value_neg`` the ``neq``
    tests, the group holds iff

    * no entry has a key that a ``key_neg`` test names, and
    * if there is any positive test: some entry passes every positive key test,
      every positive value test, and differs from every ``value_neg`` value;
      otherwise: no entry has a value that a ``value_neg`` test names.

    So ``neq(metadata_key, "k")`` means "no key k", and
    ``and(eq(metadata_key, "k"), neq(metadata_value, "v"))`` means "key k
    present with a value other than v", as in LangSmith's docs.
    """

    family: str
    key_pos: tuple[Comparison, ...] = ()
    key_neg: tuple[Comparison, ...] = ()
    value_pos: tuple[Comparison, ...] = ()
    value_neg: tuple[Comparison, ...] = ()


def split_pairs(children: Sequence[Filter]) -> tuple[list[Filter], list[PairGroup]]:
    """Split the operands of one ``and`` into plain filters and per-family pair groups."""
    plain: list[Filter] = []
    parts: dict[str, dict[str, list[Comparison]]] = {}
    for c in children:
        spec = field_spec(c.field) if isinstance(c, Comparison) else None
        role = _pair_role(spec) if spec else None
        if not isinstance(c, Comparison) or spec is None or role is None:
            plain.append(c)
            continue
        bucket = parts.setdefault(spec.family or "", {"kp": [], "kn": [], "vp": [], "vn": []})
        slot = ("k" if role == "key" else "v") + ("n" if c.op == "neq" else "p")
        bucket[slot].append(c)
    groups = [
        PairGroup(fam, tuple(b["kp"]), tuple(b["kn"]), tuple(b["vp"]), tuple(b["vn"]))
        for fam, b in parts.items()
    ]
    return plain, groups


# -------------------------------------------------------------------- evaluator


def evaluate(node: Filter, run: Mapping[str, Any]) -> bool:
    """Whether a run (a dict with LangSmith's field names) matches the filter.

    Reads ``id``, ``name``, ``run_type``, ``start_time``/``end_time`` (datetime or
    ISO string; naive means UTC), ``error``, ``status`` (derived from error and
    end_time when absent), ``tags``, ``extra.metadata`` (or ``metadata``),
    ``inputs``, ``outputs``, ``*_tokens``, ``latency`` (else end - start),
    ``parent_run_id``, ``trace_id``, ``is_root`` (else parent_run_id is null)
    and ``feedback`` (a list of ``{key, score}``). This is the reference
    semantics the SQL compiler is tested against.
    """
    return _eval(node, _RunView(run))


class _RunView:
    def __init__(self, run: Mapping[str, Any]) -> None:
        self.run = run

    def get(self, name: str) -> Any:
        r = self.run
        if name.startswith(_META_PREFIX) and name not in FIELDS:
            md = self.metadata()
            key = name[len(_META_PREFIX) :]
            return md.get(key)
        if name in ("id", "trace_id", "parent_run_id"):
            v = r.get(name)
            return None if v is None else str(v).lower()
        if name in ("start_time", "end_time"):
            return _as_datetime(r.get(name))
        if name == "latency":
            v = r.get("latency")
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
            start, end = _as_datetime(r.get("start_time")), _as_datetime(r.get("end_time"))
            return (end - start).total_seconds() if start and end else None
        if name == "status":
            v = r.get("status")
            if v is not None:
                return v
            if r.get("error") is not None:
                return "error"
            return "success" if r.get("end_time") is not None else "pending"
        if name == "is_root":
            v = r.get("is_root")
            return v if isinstance(v, bool) else r.get("parent_run_id") is None
        return r.get(name)

    def metadata(self) -> Mapping[str, Any]:
        extra = self.run.get("extra")
        md = extra.get("metadata") if isinstance(extra, Mapping) else None
        if not isinstance(md, Mapping):
            md = self.run.get("metadata")
        return md if isinstance(md, Mapping) else {}

    def tags(self) -> list[Any]:
        t = self.run.get("tags")
        return list(t) if isinstance(t, (list, tuple)) else []

    def pairs(self, family: str) -> list[tuple[Any, Any]]:
        if family == "metadata":
            return list(self.metadata().items())
        if family == "feedback":
            out: list[tuple[Any, Any]] = []
            for fb in self.run.get("feedback") or ():
                if isinstance(fb, Mapping):
                    score = fb.get("score")
                    out.append((fb.get("key"), float(score) if isinstance(score, bool) else score))
            return out
        d = self.run.get(family)
        return list(d.items()) if isinstance(d, Mapping) else []

    def search_texts(self) -> Iterator[str]:
        for key in ("name", "error"):
            v = self.run.get(key)
            if isinstance(v, str):
                yield v
        for key in ("inputs", "outputs"):
            yield from _string_leaves(self.run.get(key))


def _string_leaves(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for v in obj.values():
            yield from _string_leaves(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _string_leaves(v)


def _as_datetime(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return _utc(v)
    if isinstance(v, str):
        try:
            return _utc(datetime.fromisoformat(v))
        except ValueError:
            return None
    return None


def _eval(node: Filter, view: _RunView) -> bool:
    if isinstance(node, And):
        plain, groups = split_pairs(node.children)
        return all(_eval(c, view) for c in plain) and all(_eval_group(g, view) for g in groups)
    if isinstance(node, Or):
        return any(_eval(c, view) for c in node.children)
    if isinstance(node, Search):
        needle = node.text.lower()
        if node.field is None:
            return any(needle in t.lower() for t in view.search_texts())
        v = view.get(node.field)
        return isinstance(v, str) and needle in v.lower()
    spec = field_spec(node.field)
    assert spec is not None, node.field
    if spec.family is not None:
        return _eval_group(split_pairs([node])[1][0], view)
    if spec.kind is Kind.TAGS:
        return node.value in view.tags()
    if spec.kind is Kind.METADATA:
        md = view.metadata()
        assert isinstance(node.value, dict)
        return all(k in md and _deep_eq(md[k], v) for k, v in node.value.items())
    return _compare(node.op, view.get(node.field), node.value)


def _eval_group(g: PairGroup, view: _RunView) -> bool:
    entries = view.pairs(g.family)
    for c in g.key_neg:
        if any(_scalar_eq(k, c.value) for k, _ in entries):
            return False
    if g.key_pos or g.value_pos:
        return any(
            all(_compare(c.op, k, c.value) for c in g.key_pos)
            and all(_compare(c.op, v, c.value) for c in g.value_pos)
            and all(not _scalar_eq(v, c.value) for c in g.value_neg)
            for k, v in entries
        )
    return not any(_scalar_eq(v, c.value) for c in g.value_neg for _, v in entries)


def _compare(op: str, actual: Any, expected: Value) -> bool:
    if op == "eq":
        return _scalar_eq(actual, expected)
    if op == "neq":
        return not _scalar_eq(actual, expected)
    if op == "in":
        assert isinstance(expected, tuple)
        return any(_scalar_eq(actual, e) for e in expected)
    a, b = _orderable(actual), _orderable(expected)
    if a is None or b is None or type(a) is not type(b):
        return False
    if op == "gt":
        return a > b  # type: ignore[operator]
    if op == "gte":
        return a >= b  # type: ignore[operator]
    if op == "lt":
        return a < b  # type: ignore[operator]
    return a <= b  # type: ignore[operator]


def _orderable(v: Any) -> float | str | datetime | None:
    """Numbers as float, strings and datetimes as themselves, anything else None."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, (str, datetime)):
        return v
    return None


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar_eq(actual: Any, expected: Any) -> bool:
    """Typed equality of a run value and a filter value (see module doc)."""
    if expected is None:
        return actual is None
    if actual is None:
        return False
    if isinstance(expected, str):
        if isinstance(actual, str):
            return actual == expected
        if isinstance(actual, (bool, int, float)):
            return json.dumps(actual) == expected
        return False
    if isinstance(expected, bool) or isinstance(actual, bool):
        return isinstance(expected, bool) and isinstance(actual, bool) and actual == expected
    if _is_num(expected) and _is_num(actual):
        return float(actual) == float(expected)
    if isinstance(expected, datetime):
        return isinstance(actual, datetime) and actual == expected
    return False


def _deep_eq(a: Any, b: Any) -> bool:
    """JSON equality where booleans never equal numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(_deep_eq(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_deep_eq(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
