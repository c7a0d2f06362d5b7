from __future__ import annotations

import re
import sqlite3
from collections import Counter
from pathlib import Path

import pytest

from sql_analyst.compare import compare_results
from sql_analyst.conventions import BY_ID, CONVENTIONS
from sql_analyst.generate import TABLES
from sql_analyst.questions import TASK_TYPES, QuestionError, load_question

STOP = {"the", "a", "an", "of", "in", "on", "did", "do", "does", "we", "our", "us", "how", "what", "which", "many",
        "much", "was", "were", "is", "are", "and", "for", "to", "each", "by", "with", "during", "there", "have"}
# Words that would give a convention away in a task.
REVEALING = ["cent", "cancel", "status", "test account", "internal", "brightcart", "load", "import", "duplicate",
             "utc", "time zone", "timezone", "local", "valid_to", "erase", "delete", "legacy", "region_id", "state",
             "void", "february", "net of", "trial", "paused", "per term"]


def _tables(sql: str) -> frozenset[str]:
    return frozenset(t for t in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", sql, flags=re.I) if t in TABLES)


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in STOP}


def test_enough_questions_in_every_split(questions) -> None:
    assert len(questions) >= 60
    splits = Counter(q.split for q in questions)
    assert splits["train"] >= 36 and splits["dev"] >= 12 and splits["test"] >= 12
    assert {q.task_type for q in questions} == set(TASK_TYPES)
    assert len({q.name for q in questions}) == len(questions)


def test_every_gold_query_runs_and_returns_rows(db_path: Path, questions) -> None:
    conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    for q in questions:
        rows = conn.execute(q.gold_sql).fetchall()
        assert rows and any(v is not None for v in rows[0]), q.name


def test_every_convention_changes_the_answer_of_every_question_that_lists_it(db_path: Path, questions) -> None:
    """Ignoring a convention (its `naive` rewrite of the gold SQL) must give a different result."""
    conn = sqlite3.connect(f"{db_path.as_uri()}?mode=ro", uri=True)
    used: Counter[str] = Counter()
    for q in questions:
        gold = conn.execute(q.gold_sql).fetchall()
        for cid in q.conventions:
            conv = BY_ID[cid]
            assert conv.applies_to(q.gold_sql), f"{q.name} lists {cid} but its gold SQL has no `{conv.sql}`"
            naive = conn.execute(conv.neutralize(q.gold_sql)).fetchall()
            out = compare_results(gold, naive, ordered=q.ordered, tolerance=q.tolerance)
            assert not out.equal, f"{q.name}: ignoring {cid} gives the same answer"
            used[cid] += 1
    assert len(CONVENTIONS) >= 8
    assert set(used) == set(BY_ID), f"conventions no question needs: {set(BY_ID) - set(used)}"


def test_held_out_conventions_are_taught_by_other_train_questions(questions) -> None:
    """Each convention a dev/test question needs appears in a train question on other tables, in other words."""
    train = [q for q in questions if q.split == "train"]
    for q in questions:
        if q.split == "train":
            continue
        for cid in q.conventions:
            teachers = [t for t in train if cid in t.conventions and _tables(t.gold_sql) != _tables(q.gold_sql)]
            teachers = [t for t in teachers if len(_words(t.task) & _words(q.task)) / len(_words(t.task) | _words(q.task)) < 0.5]
            assert teachers, f"{q.name} ({q.split}) needs {cid}, taught by no train question on other tables/words"


def test_tasks_do_not_reveal_the_conventions(questions) -> None:
    for q in questions:
        text = q.task.lower()
        assert not [w for w in REVEALING if re.search(r"\b" + w, text)], (q.name, q.task)


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("name: x\ntask: t\ntask_type: revenue\nsplit: train\ngold_sql: SELECT 1\nbogus: 1\n", 6, "unknown key 'bogus'"),
        ("name: x\ntask: t\ntask_type: revenue\nsplit: later\ngold_sql: SELECT 1\n", 4, "split must be one of"),
        ("name: x\ntask: t\ntask_type: weather\nsplit: dev\ngold_sql: SELECT 1\n", 3, "task_type must be one of"),
        ("name: y\ntask: t\ntask_type: revenue\nsplit: dev\ngold_sql: SELECT 1\n", 1, "must match the file name"),
        ("name: x\ntask: t\ntask_type: revenue\nsplit: dev\ngold_sql: SELECT 1\nconventions: [cents]\n", 6,
         "unknown convention 'cents'"),
        ("name: x\ntask: t\ntask_type: revenue\nsplit: dev\ngold_sql: SELECT 1\ntolerance: fast\n", 6, "'tolerance'"),
        ("name: x\ntask: t\ntask_type: revenue\nsplit: dev\n", 1, "'gold_sql' must be a non-empty string"),
    ],
)
def test_bad_question_files_name_the_line(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(body)
    with pytest.raises(QuestionError) as err:
        load_question(path)
    assert err.value.line == line and message in err.value.message
