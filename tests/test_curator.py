"""The Curator: delta operations only, ids it was shown only, malformed replies applied nowhere."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.curation import LESSON_ADD, TIMEOUT_ENTRY, curator_json, entry_files, make_repo

from selfheal.cheatsheet.ops import CurationRejected, apply_operations
from selfheal.cheatsheet.store import load_cheatsheet, load_entry
from selfheal.models.fakes import ScriptedChatModel
from selfheal.optimize.curator import curate, curate_with_report
from selfheal.optimize.digest import EntryDigest, RunDigest
from selfheal.optimize.reflector import Reflection


@pytest.fixture()
def cheatsheet_dir(tmp_path: Path) -> Path:
    return make_repo(tmp_path) / "cheatsheet"


def _digest() -> RunDigest:
    return RunDigest(
        run_id="0192aaaa-run-1",
        task="checkout-api times out",
        task_type="lambda_timeout",
        success=False,
        verified=True,
        retrieved_entries=[EntryDigest(id=TIMEOUT_ENTRY, text="...")],
        used_entries=[TIMEOUT_ENTRY],
    )


REFLECTION = Reflection(
    error="raised memory", root_cause="timeout too short", correct_approach="raise the timeout",
    key_insight="Timeouts with low memory use need a longer timeout.", entry_tags={TIMEOUT_ENTRY: "harmful"},
)


def test_add_creates_a_candidate_entry_with_its_source_run(cheatsheet_dir: Path) -> None:
    sheet = load_cheatsheet(cheatsheet_dir)
    model = ScriptedChatModel([curator_json(LESSON_ADD, {"op": "TAG", "id": TIMEOUT_ENTRY, "tag": "harmful"})])
    batch = curate(model, REFLECTION, _digest(), sheet)
    assert [op.op for op in batch.operations] == ["ADD", "TAG"]

    result = apply_operations(cheatsheet_dir, batch, source_runs=["0192aaaa-run-1"], existing=sheet)
    (change,) = result.changes
    assert change.op == "ADD" and change.path is not None and change.path.exists()
    entry = load_entry(change.path, cheatsheet_dir)
    assert entry.status == "candidate" and entry.section == "failure_patterns"
    assert entry.task_type == "lambda_timeout"
    assert entry.source.kind == "curator" and entry.source.runs == ["0192aaaa-run-1"]
    assert "twice the slowest duration" in entry.text()
    assert [t.id for t in result.tags] == [TIMEOUT_ENTRY]

    # The Curator saw the schema, a worked example and the relevant entry with its id and fields.
    system, human = (m.content for m in model.calls[0]["messages"])
    assert '"operations"' in system and "failure_patterns: pattern, lesson" in system
    assert f'"id": "{TIMEOUT_ENTRY}"' in human and "Key insight: Timeouts with low memory" in human


def test_update_of_an_id_the_curator_was_not_shown_is_rejected(cheatsheet_dir: Path) -> None:
    sheet = load_cheatsheet(cheatsheet_dir)
    before = entry_files(cheatsheet_dir)
    shown_update = {"op": "UPDATE", "id": TIMEOUT_ENTRY, "fields": {"rule": "Raise the timeout first, never memory."},
                    "reason": "clearer order"}
    model = ScriptedChatModel([curator_json(
        {"op": "UPDATE", "id": "heur-throttle-raise-reserved", "fields": {"rule": "Always raise it."}, "reason": "x"},
        {"op": "REMOVE", "id": "no-such-entry", "reason": "made up"},
        shown_update,
    )])
    out = curate_with_report(model, REFLECTION, _digest(), sheet)
    assert [op.id for op in out.batch.operations] == [TIMEOUT_ENTRY]
    reasons = [r for _, r in out.rejected]
    assert len(reasons) == 2 and all("unknown id" in r for r in reasons)
    assert "heur-throttle-raise-reserved" in reasons[0]

    apply_operations(cheatsheet_dir, out.batch, source_runs=["r1"], existing=sheet)
    after = entry_files(cheatsheet_dir)
    throttle = "heuristics/heur-throttle-raise-reserved.yaml"
    assert after[throttle] == before[throttle]  # the unshown entry is untouched
    assert "never memory" in after[f"heuristics/{TIMEOUT_ENTRY}.yaml"]


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("I would add a lesson about timeouts.", "no JSON object"),
        (json.dumps({"ops": []}), "no 'operations'"),
        (curator_json({"op": "ADD", "section": "recipes", "fields": {"x": "y"}, "reason": "r"}), "operation 0"),
        (curator_json({"op": "ADD", "section": "heuristics", "fields": {"condition": "c"}, "reason": "r"}), "rule"),
        (curator_json({"op": "MERGE", "id": TIMEOUT_ENTRY, "reason": "r"}), "unknown op"),
    ],
)
def test_malformed_curator_output_is_rejected_and_nothing_is_written(
    cheatsheet_dir: Path, reply: str, reason: str
) -> None:
    sheet = load_cheatsheet(cheatsheet_dir)
    before = entry_files(cheatsheet_dir)
    with pytest.raises(CurationRejected) as info:
        curate(ScriptedChatModel([reply]), REFLECTION, _digest(), sheet)
    assert reason in info.value.reason
    assert entry_files(cheatsheet_dir) == before


def test_a_proposed_id_for_a_new_entry_is_ignored_and_the_task_type_defaults_to_the_runs(
    cheatsheet_dir: Path,
) -> None:
    sheet = load_cheatsheet(cheatsheet_dir)
    add = {k: v for k, v in LESSON_ADD.items() if k != "task_type"} | {"id": "../../etc/passwd"}
    batch = curate(ScriptedChatModel([curator_json(add)]), REFLECTION, _digest(), sheet)
    result = apply_operations(cheatsheet_dir, batch, source_runs=["r1"], existing=sheet)
    (change,) = result.changes
    assert change.entry_id.startswith("fail-") and change.path.parent == cheatsheet_dir / "failure_patterns"
    assert load_entry(change.path, cheatsheet_dir).task_type == "lambda_timeout"


@pytest.mark.parametrize(("proposed", "filed"), [("database_error", "lambda_timeout"), ("general", "general"),
                                                ("lambda_timeout", "lambda_timeout")])
def test_a_new_entry_is_filed_where_runs_of_its_task_type_will_retrieve_it(
    cheatsheet_dir: Path, proposed: str, filed: str,
) -> None:
    """An invented task type would hide the lesson from every run: it is filed under the run's (or general)."""
    from selfheal.cheatsheet.ranking import retrieve_entries
    from selfheal.models.embeddings import FakeEmbedder

    sheet = load_cheatsheet(cheatsheet_dir)
    batch = curate(ScriptedChatModel([curator_json(LESSON_ADD | {"task_type": proposed})]), REFLECTION, _digest(), sheet)
    result = apply_operations(cheatsheet_dir, batch, source_runs=["r1"], existing=sheet)
    (change,) = result.changes
    assert load_entry(change.path, cheatsheet_dir).task_type == filed
    # a new lesson is a candidate: the next run of the task type gets it in its candidate slot
    shown = retrieve_entries(load_cheatsheet(cheatsheet_dir), _digest().task, task_type="lambda_timeout", top_k=3,
                             embedder=FakeEmbedder(), min_similarity=-1.0)
    assert [r.entry.id for r in shown if r.candidate] == [change.entry_id]


def test_the_decoding_schema_admits_valid_operations_and_nothing_else() -> None:
    """The grammar a local model decodes under: wrong fields or unseen ids cannot be produced."""
    jsonschema = pytest.importorskip("jsonschema")
    from pathlib import Path

    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.optimize.curator import curator_schema

    cheatsheet = load_cheatsheet(Path(__file__).resolve().parents[1] / "cheatsheet")
    shown = [cheatsheet["heur-timeout-low-memory"], cheatsheet["strat-cost-right-size-memory"]]
    schema = curator_schema(shown)
    ok = {"operations": [
        {"op": "ADD", "section": "strategies", "task_type": "lambda_cost",
         "fields": {"pattern": "idle provisioned concurrency", "action": "remove it"}, "reason": "r"},
        {"op": "UPDATE", "id": "heur-timeout-low-memory", "fields": {"rule": "raise the timeout"}, "reason": "r"},
        {"op": "TAG", "id": "strat-cost-right-size-memory", "tag": "harmful", "reason": "r"},
    ]}
    jsonschema.validate(ok, schema)
    bad = [
        {"op": "ADD", "section": "strategies", "task_type": "x", "fields": {"rule": "no such field"}, "reason": "r"},
        {"op": "UPDATE", "id": "strat-cost-right-size-memory", "fields": {"rule": "strategies have no rule"},
         "reason": "r"},
        {"op": "REMOVE", "id": "heur-vpc-before-memory", "reason": "not shown to the curator"},
    ]
    for op in bad:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"operations": [op]}, schema)


@pytest.mark.parametrize(("runs_types", "proposed", "filed"), [
    (["revenue", "staff"], "database_error", "general"),   # several types, none named: shown to all (on a match)
    (["revenue", "staff"], "staff", "staff"),
    (["revenue"], "database_query_failure", "revenue"),
])
def test_a_batch_of_runs_files_new_entries_under_one_of_its_task_types(
    runs_types: list[str], proposed: str, filed: str,
) -> None:
    from selfheal.optimize.curator import screen_operations

    batch, rejected = screen_operations([LESSON_ADD | {"task_type": proposed}], set(), task_type=runs_types)
    assert not rejected and [op.task_type for op in batch.operations] == [filed]
