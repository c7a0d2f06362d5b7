"""Cheatsheet entries on disk: loading, errors with lines, round-trip saving, retrieval."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from selfheal.cheatsheet.model import (
    ENTRY_ADAPTER,
    CodeSnippet,
    FailurePattern,
    Heuristic,
    Source,
    Strategy,
    make_entry_id,
)
from selfheal.cheatsheet.retrieval import BM25Retriever, retrieve
from selfheal.cheatsheet.store import delete_entry, load_cheatsheet, save_entry
from selfheal.errors import FileFormatError

REPO = Path(__file__).resolve().parents[1]
SOURCE = Source(kind="seed", created=datetime(2026, 1, 5, 9, tzinfo=UTC))

HEURISTIC = """\
# Reviewed by the on-call team.
id: heur-vpc-before-memory
section: heuristics
task_type: lambda_latency
condition: High latency in Lambda  # observed in Q3
rule: Check VPC configuration before memory adjustment
status: active
source: {kind: curator, runs: [r1], created: 2026-11-20T10:30:00Z}
"""


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def load_error(root: Path) -> FileFormatError:
    with pytest.raises(FileFormatError) as info:
        load_cheatsheet(root)
    return info.value


# -- model -------------------------------------------------------------------------


def test_entry_text_per_section() -> None:
    h = Heuristic(id="heur-a", condition="High latency in Lambda", rule="Check VPC first", source=SOURCE)
    s = Strategy(id="strat-a", pattern="memory > 80%", action="Add 128 MB", source=SOURCE)
    f = FailurePattern(
        id="fail-a", pattern="Query over 7 days times out", lesson="Split into 24-hour chunks", source=SOURCE
    )
    c1 = CodeSnippet(id="code-a", purpose="p99", snippet="sorted(v)[-1]", source=SOURCE)
    c2 = CodeSnippet(id="code-b", purpose="p99", snippet="import math\nx = 1\n", source=SOURCE)
    assert h.text() == "When high latency in Lambda: Check VPC first"
    assert s.text() == "When memory > 80%: Add 128 MB"
    assert f.text() == "Known failure: Query over 7 days times out. Instead: Split into 24-hour chunks"
    assert c1.text() == "p99 (python): `sorted(v)[-1]`"
    assert c2.text() == "p99 (python):\n    import math\n    x = 1"
    indented = CodeSnippet(id="code-c", purpose="loop", snippet="for x in v:\n    total += x\n", source=SOURCE)
    assert indented.text().endswith("\n    for x in v:\n        total += x")
    with pytest.raises(ValidationError):
        CodeSnippet(id="code-d", purpose="p", snippet=" \n", source=SOURCE)
    assert "\n" not in h.text()
    assert "vpc" in h.search_text().lower() and "general" in h.search_text()


def test_discriminated_union_on_section() -> None:
    entry = ENTRY_ADAPTER.validate_python(
        {"id": "fail-a", "section": "failure_patterns", "pattern": "p", "lesson": "l", "source": SOURCE}
    )
    assert isinstance(entry, FailurePattern)
    with pytest.raises(ValidationError):
        ENTRY_ADAPTER.validate_python(
            {"id": "x", "section": "heuristics", "pattern": "p", "lesson": "l", "source": SOURCE}
        )


def test_make_entry_id_is_readable_and_unique() -> None:
    assert make_entry_id("heuristics", "VPC before memory!") == "heur-vpc-before-memory"
    assert make_entry_id("heuristics", "VPC before memory", {"heur-vpc-before-memory"}) == "heur-vpc-before-memory-2"


# -- loading -------------------------------------------------------------------------


def test_load_good_cheatsheet(tmp_path: Path) -> None:
    write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", HEURISTIC)
    write(tmp_path, "README.md", "not an entry")
    write(tmp_path, "heuristics/.heur-x.yaml.abc.tmp", "left by a crash")
    cs = load_cheatsheet(tmp_path)
    assert cs.ids == {"heur-vpc-before-memory"}
    entry = cs["heur-vpc-before-memory"]
    assert isinstance(entry, Heuristic) and entry.source.runs == ["r1"]
    assert entry.source.created == datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
    assert cs.get("nope") is None and len(cs.active()) == 1


def test_missing_directory_is_an_empty_cheatsheet(tmp_path: Path) -> None:
    assert len(load_cheatsheet(tmp_path / "absent")) == 0


def test_file_name_must_equal_id(tmp_path: Path) -> None:
    write(tmp_path, "heuristics/heur-other.yaml", HEURISTIC)
    err = load_error(tmp_path)
    assert err.line == 2 and "does not match the file name 'heur-other.yaml'" in err.detail


def test_folder_must_equal_section(tmp_path: Path) -> None:
    write(tmp_path, "strategies/heur-vpc-before-memory.yaml", HEURISTIC)
    err = load_error(tmp_path)
    assert err.line == 3 and "does not match its folder 'strategies'" in err.detail


def test_section_value_must_be_a_section(tmp_path: Path) -> None:
    write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", HEURISTIC.replace("section: heuristics", "section: [a]"))
    err = load_error(tmp_path)
    assert err.line == 3 and "must be one of strategies, code_snippets, heuristics, failure_patterns" in err.detail


def test_unknown_section_folder(tmp_path: Path) -> None:
    write(tmp_path, "tips/heur-vpc-before-memory.yaml", HEURISTIC)
    assert "section one of" in str(load_error(tmp_path))


def test_unknown_key_names_its_line(tmp_path: Path) -> None:
    text = HEURISTIC.replace("status: active", "status: active\nhelpful: 3")
    write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", text)
    err = load_error(tmp_path)
    assert err.line == 8 and "unknown key 'helpful'" in err.detail


def test_bad_status_names_its_line(tmp_path: Path) -> None:
    write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", HEURISTIC.replace("status: active", "status: live"))
    err = load_error(tmp_path)
    assert err.line == 7 and "status" in err.detail


def test_duplicate_id_across_sections(tmp_path: Path) -> None:
    write(tmp_path, "heuristics/dup.yaml", HEURISTIC.replace("heur-vpc-before-memory", "dup"))
    write(
        tmp_path,
        "strategies/dup.yaml",
        "id: dup\nsection: strategies\npattern: p\naction: a\nsource: {kind: seed, created: 2026-01-01}\n",
    )
    err = load_error(tmp_path)
    assert err.line == 1 and "duplicate id 'dup'" in err.detail and "heuristics" in err.detail


# -- saving --------------------------------------------------------------------------


def test_update_keeps_comments_order_and_untouched_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", HEURISTIC)
    entry = load_cheatsheet(tmp_path)["heur-vpc-before-memory"]
    updated = entry.model_copy(update={"rule": "Check VPC subnets and NAT before memory", "status": "retired"})
    assert save_entry(tmp_path, updated) == path
    text = path.read_text()
    assert text == (
        HEURISTIC.replace("configuration before memory adjustment", "subnets and NAT before memory").replace(
            "status: active", "status: retired"
        )
    )
    assert load_cheatsheet(tmp_path)["heur-vpc-before-memory"] == updated


def test_update_nested_source_and_tags(tmp_path: Path) -> None:
    path = write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", HEURISTIC)
    entry = load_cheatsheet(tmp_path)["heur-vpc-before-memory"]
    src = entry.source.model_copy(update={"runs": ["r1", "r2"]})
    save_entry(tmp_path, entry.model_copy(update={"source": src, "tags": ["vpc"]}))
    text = path.read_text()
    assert text.startswith("# Reviewed by the on-call team.\n")
    assert "# observed in Q3" in text
    assert "runs: [r1, r2]" in text and "created: 2026-11-20T10:30:00Z" in text
    assert "status: active\ntags: [vpc]\nsource:" in text  # a new key lands in its place
    assert load_cheatsheet(tmp_path)["heur-vpc-before-memory"].tags == ["vpc"]


def test_new_entry_file_reads_well(tmp_path: Path) -> None:
    entry = CodeSnippet(
        id="code-p99",
        task_type="cloudwatch_query",
        purpose="p99 from raw datapoints",
        snippet="import math\nv = sorted(v)\n",
        status="candidate",
        source=Source(kind="curator", runs=["run-1"], created=datetime(2026, 2, 3, 4, 5, 6, 789, tzinfo=UTC)),
    )
    path = save_entry(tmp_path, entry)
    assert path == tmp_path / "code_snippets" / "code-p99.yaml"
    text = path.read_text()
    keys = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith(" ")]
    assert keys == ["id", "section", "task_type", "purpose", "snippet", "language", "status", "source"]
    assert "snippet: |\n  import math\n  v = sorted(v)\n" in text
    assert "created: 2026-02-03T04:05:06Z" in text
    assert load_cheatsheet(tmp_path)["code-p99"] == entry.model_copy(
        update={"source": entry.source.model_copy(update={"created": datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)})}
    )


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", HEURISTIC)
    entry = load_cheatsheet(tmp_path)["heur-vpc-before-memory"]
    save_entry(tmp_path, entry.model_copy(update={"rule": "new rule"}))
    assert sorted(p.name for p in path.parent.iterdir()) == ["heur-vpc-before-memory.yaml"]

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    before = path.read_text()
    with pytest.raises(OSError):
        save_entry(tmp_path, entry.model_copy(update={"rule": "another rule"}))
    assert path.read_text() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["heur-vpc-before-memory.yaml"]


def test_section_change_moves_the_file(tmp_path: Path) -> None:
    write(tmp_path, "heuristics/heur-vpc-before-memory.yaml", HEURISTIC)
    moved = Strategy(id="heur-vpc-before-memory", pattern="high latency", action="check VPC", source=SOURCE)
    save_entry(tmp_path, moved)
    assert not (tmp_path / "heuristics" / "heur-vpc-before-memory.yaml").exists()
    assert load_cheatsheet(tmp_path)["heur-vpc-before-memory"].section == "strategies"
    assert delete_entry(tmp_path, "heur-vpc-before-memory") is not None
    assert len(load_cheatsheet(tmp_path)) == 0


# -- retrieval -----------------------------------------------------------------------


def _h(id: str, task_type: str, condition: str, rule: str, status: str = "active") -> Heuristic:
    return Heuristic(id=id, task_type=task_type, condition=condition, rule=rule, status=status, source=SOURCE)  # type: ignore[arg-type]


def test_seed_cheatsheet_ranks_the_obvious_entry_first() -> None:
    cs = load_cheatsheet(REPO / "cheatsheet")
    cases = {
        ("orders-worker is being throttled during the sale", "lambda_throttling"): "heur-throttle-raise-reserved",
        ("checkout-api times out after 3 seconds", "lambda_timeout"): "heur-timeout-low-memory",
        ("payments-api has been failing since yesterday's deploy", "lambda_errors"): "fail-deploy-error-spike",
        ("thumbnailer crashes: Runtime exited with error", "lambda_memory"): "heur-oom-raise-memory",
        ("reduce the monthly cost of report-builder", "lambda_cost"): "strat-cost-right-size-memory",
    }
    for (task, task_type), expected in cases.items():
        hits = retrieve(cs, task, task_type=task_type, top_k=3)
        assert hits and hits[0].entry.id == expected, (task, [h.entry.id for h in hits])


def test_retrieval_filters_status_and_task_type() -> None:
    from selfheal.cheatsheet.store import Cheatsheet

    entries = [
        _h("heur-timeout", "lambda_timeout", "function times out", "raise timeout"),
        _h("heur-timeout-old", "lambda_timeout", "function times out often", "raise timeout", status="retired"),
        _h("heur-timeout-new", "lambda_timeout", "function times out", "raise timeout", status="candidate"),
        _h("heur-memory", "lambda_memory", "function times out out of memory", "raise memory"),
        _h("heur-general", "general", "function times out in a VPC", "check VPC"),
        _h("heur-blank", "", "timeout everywhere", "look at logs"),
    ]
    cs = Cheatsheet(root=Path("."), entries=entries)  # type: ignore[arg-type]
    ids = [h.entry.id for h in retrieve(cs, "my function times out", task_type="lambda_timeout", top_k=10)]
    assert set(ids) == {"heur-timeout", "heur-general", "heur-blank"}
    every_type = [h.entry.id for h in retrieve(cs, "my function times out", task_type=None, top_k=10)]
    assert "heur-memory" in every_type and "heur-timeout-old" not in every_type
    assert retrieve(cs, "anything", task_type="lambda_timeout", top_k=0) == []


def test_retrieval_ties_break_by_id_and_own_type_without_overlap() -> None:
    entries = [
        _h("heur-q2", "lambda_timeout", "words same", "words same"),  # the same bag of words, another text
        _h("heur-q1", "lambda_timeout", "same words", "same words"),
        _h("heur-general", "general", "unrelated", "unrelated"),
    ]
    retriever = BM25Retriever(entries)
    hits = retriever.retrieve("same words", task_type="lambda_timeout", top_k=5)
    assert [h.entry.id for h in hits] == ["heur-q1", "heur-q2"]
    assert hits[0].score == hits[1].score > 0
    # No lexical overlap: the run's own task type still shows, general entries need a match.
    hits = retriever.retrieve("zzz", task_type="lambda_timeout", top_k=5)
    assert [h.entry.id for h in hits] == ["heur-q1", "heur-q2"] and hits[0].score == 0.0
