"""Question files: ``evals/sql_analyst/scenarios/<name>.yaml``, one business question each.

Shared header (read by selfheal's evaluation too): ``name`` (= file stem),
``task``, ``task_type``, ``split``, ``success``; optional ``description``,
``expect``, ``metadata``, ``id``. Keys this agent owns:

``gold_sql``      the query whose result is the correct answer (must run and return rows)
``conventions``   ids from :mod:`sql_analyst.conventions` the gold SQL applies
``ordered``       compare rows in order (only when the question asks for an order); default false
``tolerance``     a number (absolute) or ``{abs: .., rel: ..}``; default abs 0.005, rel 1e-4

Errors name the file and line (:class:`QuestionError`); this module has no
selfheal import, the plug-in turns the error into selfheal's FileFormatError
and hands in selfheal's guarded YAML parser (``parse``: alias bombs, deep
nesting and impossible values refused as ``file:line`` errors).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from sql_analyst.compare import Tolerance
from sql_analyst.conventions import BY_ID

TASK_TYPES = ("revenue", "orders", "customers", "subscriptions", "refunds", "staff")
SPLITS = ("train", "dev", "test")
SHARED_KEYS = {"name", "task", "task_type", "split", "success", "description", "expect", "metadata", "id"}
OWN_KEYS = {"gold_sql", "conventions", "ordered", "tolerance"}


class QuestionError(Exception):
    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path, self.line, self.message = Path(path), line, message
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class Question:
    name: str
    task: str
    task_type: str
    split: str
    success: str
    gold_sql: str
    conventions: tuple[str, ...]
    ordered: bool
    tolerance: Tolerance
    path: Path


def _line(data: Any, key: str) -> int | None:
    try:
        return data.lc.key(key)[0] + 1
    except Exception:  # noqa: BLE001 - plain dicts have no line info
        return None


#: text, path -> round-trip YAML data (the plug-in passes ``selfheal.yamlio.parse_yaml``).
Parse = Callable[[str, Path], Any]


def _rt_load(text: str, path: Path) -> Any:
    return YAML(typ="rt").load(text)


def load_question(path: Path | str, *, parse: Parse | None = None) -> Question:
    path = Path(path)
    try:
        data = (parse or _rt_load)(path.read_text(encoding="utf-8"), path)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise QuestionError(path, mark.line + 1 if mark else None, f"not valid YAML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionError(path, None, f"cannot read: {exc}") from None
    if not isinstance(data, dict):
        raise QuestionError(path, 1, "a question file must be a mapping")
    unknown = sorted(set(data) - SHARED_KEYS - OWN_KEYS, key=str)  # a key may be null or a number
    if unknown:
        raise QuestionError(path, _line(data, unknown[0]), f"unknown key '{unknown[0]}'")

    def text(key: str, required: bool = True) -> str:
        v = data.get(key)
        if v is None and not required:
            return ""
        if not isinstance(v, str) or not v.strip():
            raise QuestionError(path, _line(data, key) or 1, f"'{key}' must be a non-empty string")
        return str(v).strip()

    name = text("name")
    if name != path.stem:
        raise QuestionError(path, _line(data, "name"), f"name '{name}' must match the file name '{path.stem}'")
    task_type = text("task_type")
    if task_type not in TASK_TYPES:
        raise QuestionError(path, _line(data, "task_type"), f"task_type must be one of {', '.join(TASK_TYPES)}")
    split = text("split")
    if split not in SPLITS:
        raise QuestionError(path, _line(data, "split"), f"split must be one of {', '.join(SPLITS)}")
    gold = text("gold_sql")
    convs = data.get("conventions", [])
    if not isinstance(convs, list) or not all(isinstance(c, str) for c in convs):
        raise QuestionError(path, _line(data, "conventions"), "'conventions' must be a list of convention ids")
    for c in convs:
        if c not in BY_ID:
            raise QuestionError(path, _line(data, "conventions"), f"unknown convention '{c}' (known: {', '.join(BY_ID)})")
    ordered = data.get("ordered", False)
    if not isinstance(ordered, bool):
        raise QuestionError(path, _line(data, "ordered"), "'ordered' must be true or false")
    tol_raw = data.get("tolerance")
    if tol_raw is None:
        tol = Tolerance()
    elif isinstance(tol_raw, (int, float)) and not isinstance(tol_raw, bool) and tol_raw >= 0:
        tol = Tolerance(abs=float(tol_raw))
    elif isinstance(tol_raw, dict) and set(tol_raw) <= {"abs", "rel"} and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in tol_raw.values()
    ):
        tol = Tolerance(**{k: float(v) for k, v in tol_raw.items()})
    else:
        raise QuestionError(path, _line(data, "tolerance"), "'tolerance' must be a number >= 0 or {abs: .., rel: ..}")
    return Question(name, text("task"), task_type, split, text("success", required=False), gold,
                    tuple(convs), ordered, tol, path)


def gold_line(path: Path, *, parse: Parse | None = None) -> int | None:
    """Line of the ``gold_sql`` key (for errors about the query itself)."""
    try:
        return _line((parse or _rt_load)(path.read_text(encoding="utf-8"), path), "gold_sql")
    except Exception:  # noqa: BLE001
        return None


def load_questions(directory: Path | str) -> list[Question]:
    return [load_question(p) for p in sorted(Path(directory).glob("*.yaml"))]
