"""The selfheal plug-in: ``make_agent()`` is the ``selfheal.agents`` entry point.

The only module of this package that imports selfheal (its public API:
``Verdict``, ``CheckResult`` and the ``FileFormatError`` a bad file raises).
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

from selfheal import CheckResult, Verdict
from selfheal.errors import FileFormatError
from selfheal.yamlio import parse_yaml

from sql_analyst.compare import compare_results
from sql_analyst.generate import DEFAULT_SEED, database_path, default_cache_dir
from sql_analyst.questions import Question, QuestionError, gold_line, load_question
from sql_analyst.tools import TOOL_NAMES, SqlDatabase

CHECK = "result matches gold"
NO_QUERY_NUDGE = (
    "You have not run a successful query yet, and your answer must be the result of one. Write one SQLite "
    "SELECT that computes the answer and run it with run_sql now."
)
EMPTY_RESULT_NUDGE = (
    "Your last query returned no rows. Check its filters and the values they compare with (describe_table "
    "shows sample rows), then run a corrected query."
)
#: Environment variable naming the folder of the built database (default: $XDG_CACHE_HOME/selfheal/sql_analyst).
#: Not SELFHEAL_*: selfheal reads every SELFHEAL_* variable as one of its own settings.
CACHE_ENV = "SQL_ANALYST_CACHE_DIR"

# task type -> keyword patterns (word prefixes; the first family with a hit wins, in this order)
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("refunds", r"\brefund|\b(paid|give|gave|given|money) back\b|\breimburs"),
    ("subscriptions", r"\bsubscri|\bmrr\b|\brecurring\b|\bplans?\b|\binvoic|\bbill(ed|ing|s)?\b|\bterm"),
    ("staff", r"\breps?\b|\baccount executive|\bemployee|\bstaff|\bsales ?(person|people|man|woman)|\bteam\b"),
    ("revenue", r"\brevenue|\btake in\b|\btook in\b|\bincome|\bearn|\bturnover|\bsales\b|\bmoney|\border value"),
    ("customers", r"\bcustomers? (do|are|have|signed|who)|\bsign(ed)?[- ]?ups?\b|\baccounts\b|\bclients?\b"),
    ("orders", r"\border|\bunits?\b|\bsold\b|\bsell|\bpa(y|id) by\b|\bchannel"),
    ("customers", r"\bcustomer"),
)


def classify_task(task: str) -> str:
    text = " ".join(re.sub(r"[^a-z0-9 -]+", " ", task.lower()).split())
    for task_type, pattern in _KEYWORDS:
        if re.search(pattern, text):
            return task_type
    return "general"


class SqlAnalystSession:
    """One run: a read-only connection, its tools, and the verdict against the question's gold SQL."""

    def __init__(self, db_path: Path, task: str, task_type: str, question: Question | None) -> None:
        self.db_path = db_path
        self.task = task
        self.task_type = task_type
        self.question = question
        self.scenario = question.name if question else None
        self.db = SqlDatabase(db_path)
        self.tools = self.db.tools()

    @property
    def results(self) -> list[Any]:
        """Every successful run_sql result of this run (columns and all rows), oldest first."""
        return self.db.results

    def gold_rows(self) -> list[tuple[Any, ...]]:
        if self.question is None:
            raise ValueError("no scenario: no gold query")
        conn = sqlite3.connect(f"{self.db_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return [tuple(r) for r in conn.execute(self.question.gold_sql).fetchall()]
        finally:
            conn.close()

    def verify(self, answer: str = "") -> Verdict:
        """Execution accuracy of the last successful run_sql result (the answer text is not judged)."""
        if self.question is None:
            return Verdict(passed=None, checks=[], summary="no scenario: no gold answer to compare with")
        if not self.db.results:
            detail = "no successful run_sql query in this run: there is no result to compare with the gold answer"
            return Verdict(False, [CheckResult(CHECK, False, detail)], summary="no query result")
        last = self.db.results[-1]
        gold = self.gold_rows()
        cmp = compare_results(gold, last.rows, ordered=self.question.ordered, tolerance=self.question.tolerance)
        detail = cmp.detail + f"\nquery compared (the last successful run_sql):\n{last.query}"
        summary = "the last query's result matches the gold answer" if cmp.equal else \
            "the last query's result differs from the gold answer"
        return Verdict(cmp.equal, [CheckResult(CHECK, cmp.equal, detail)], summary=summary)

    def premature_answer(self, tool_calls: list[dict[str, Any]]) -> str | None:
        """selfheal's nudge hook: the answer must be the result of a successful query, and an empty one is suspect."""
        if not self.db.results:
            return NO_QUERY_NUDGE
        if not self.db.results[-1].rows:
            return EMPTY_RESULT_NUDGE
        return None

    def close(self) -> None:
        self.db.close()


class SqlAnalystAgent:
    name = "sql_analyst"

    def __init__(self, cache_dir: Path | str | None = None, seed: int = DEFAULT_SEED) -> None:
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._seed = seed

    # -- the database ------------------------------------------------------------
    def database(self, settings: Any = None) -> Path:
        """The built database (built once per generator version and seed)."""
        if self._cache_dir is not None:
            return database_path(self._cache_dir, self._seed)
        env = os.environ.get(CACHE_ENV)
        if env:
            return database_path(Path(env), self._seed)
        try:
            return database_path(default_cache_dir(), self._seed)
        except OSError:
            if settings is None:
                raise
            return database_path(Path(settings.state_dir) / "sql_analyst", self._seed)

    # -- protocol ------------------------------------------------------------------
    def classify(self, task: str) -> str:
        return classify_task(task)

    def tool_names(self) -> list[str]:
        return list(TOOL_NAMES)

    def _scenario_files(self, settings: Any) -> list[Path]:
        folder = Path(settings.scenarios_dir)
        return sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("."))

    def _question(self, path: Path) -> Question:
        try:
            return load_question(path, parse=parse_yaml)
        except QuestionError as exc:
            raise FileFormatError(exc.path, exc.line, exc.message) from None

    def list_scenarios(self, settings: Any) -> list[str]:
        return [p.stem for p in self._scenario_files(settings)]

    def describe_scenarios(self, settings: Any) -> list[dict[str, str]]:
        out = []
        for p in self._scenario_files(settings):
            q = self._question(p)
            out.append({"name": q.name, "task_type": q.task_type, "split": q.split, "task": q.task, "success": q.success})
        return out

    def ground_truth(self, settings: Any, name: str) -> str | None:
        """What the optimizer's Reflector may see as ground truth: the success text, gold SQL and its result."""
        path = Path(settings.scenarios_dir) / f"{name}.yaml"
        if not path.is_file():
            return None
        q = self._question(path)
        db = SqlDatabase(self.database(settings))
        try:
            out = db.execute(q.gold_sql)
        finally:
            db.close()
        if isinstance(out, str):
            result = out
        else:
            rows = "; ".join(", ".join(str(v) for v in row) for row in out.rows[:10])
            result = f"{', '.join(out.columns)} = {rows}" + (" …" if len(out.rows) > 10 else "")
        return f"success: {q.success}\ngold SQL:\n{q.gold_sql.strip()}\ngold result: {result}"

    def validate_scenario(self, path: Path) -> int:
        """Validate one question file, including that its gold SQL runs read-only and returns rows."""
        path = Path(path)
        q = self._question(path)
        db = SqlDatabase(self.database())
        try:
            out = db.execute(q.gold_sql)
        finally:
            db.close()
        if isinstance(out, str):
            raise FileFormatError(path, gold_line(path, parse=parse_yaml), f"gold_sql does not run: {out}")
        if not out.rows:
            raise FileFormatError(path, gold_line(path, parse=parse_yaml), "gold_sql returns no rows")
        return 1

    def open(self, settings: Any, *, task: str | None = None, scenario: str | None = None) -> SqlAnalystSession:
        question = None
        if scenario is not None:
            path = Path(settings.scenarios_dir) / f"{scenario}.yaml"
            if not path.is_file():
                known = ", ".join(self.list_scenarios(settings)) or "none"
                raise FileFormatError(path, None, f"no scenario '{scenario}' (known: {known})")
            question = self._question(path)
        if task is None:
            if question is None:
                raise ValueError("open() needs a task or a scenario")
            task = question.task
        task_type = question.task_type if question and task == question.task else self.classify(task)
        return SqlAnalystSession(self.database(settings), task, task_type, question)


def make_agent(cache_dir: Path | str | None = None) -> SqlAnalystAgent:
    """Entry point of the ``selfheal.agents`` group."""
    return SqlAnalystAgent(cache_dir=cache_dir)
