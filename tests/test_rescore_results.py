"""scripts/rescore_results.py: committed results re-judged under the dataset's current rules, runs untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from scripts.rescore_results import main

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "evals" / "lambda_ops" / "experiments" / "learning" / "seed" / "test.json"


def test_a_question_answered_wrong_is_re_judged_a_failure_and_nothing_else_moves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(SEED.read_text())
    # as it was recorded before lambda_ops required the answer: the output score only weighed in
    for r in data["candidate"]["results"]:
        if r["name"] == "query_declined_count":
            r["passed"] = True
            for s in r["scores"]:
                if s["key"] == "output":
                    s["required"] = False
    path = tmp_path / "test.json"
    path.write_text(json.dumps(data))
    before = {r["name"]: r for r in json.loads(path.read_text())["candidate"]["results"]}

    assert main([str(REPO / "evals" / "lambda_ops"), str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith("candidate: query_declined_count: pass -> fail")
    after = {r["name"]: r for r in json.loads(path.read_text())["candidate"]["results"]}
    assert not after["query_declined_count"]["passed"]
    assert [s["score"] for s in after["query_declined_count"]["scores"]] == \
        [s["score"] for s in before["query_declined_count"]["scores"]]  # the scores are kept
    assert all(after[n]["passed"] == before[n]["passed"] for n in after if n != "query_declined_count")
    assert sum(r["passed"] for r in after.values()) == 3

    # a second pass changes nothing and writes nothing
    copy = tmp_path / "again.json"
    shutil.copy(path, copy)
    assert main([str(REPO / "evals" / "lambda_ops"), str(copy)]) == 0
    assert capsys.readouterr().out == "" and copy.read_text() == path.read_text()
