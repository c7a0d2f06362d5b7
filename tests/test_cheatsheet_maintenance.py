"""Maintenance: merge near-duplicates, prune, decay, promote, fit the token budget -- with reasons."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import selfheal.cheatsheet.store as store_mod
from selfheal.cheatsheet.counters import CounterStore, EntryStats
from selfheal.cheatsheet.maintenance import (
    MaintenanceAction,
    MaintenancePolicy,
    apply_maintenance,
    plan_maintenance,
)
from selfheal.cheatsheet.model import Heuristic, Source, Strategy
from selfheal.cheatsheet.store import load_cheatsheet, save_entry
from selfheal.models.embeddings import FakeEmbedder
from selfheal.tokens import count_tokens

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 3, 1, tzinfo=UTC)
RECENT = NOW - timedelta(days=1)
LEARNED = datetime(2026, 2, 20, tzinfo=UTC)


def learned(created: datetime = LEARNED, runs: tuple[str, ...] = ("r1",)) -> Source:
    return Source(kind="curator", runs=list(runs), created=created)


@pytest.fixture
def sheet(tmp_path: Path) -> Path:
    root = tmp_path / "cheatsheet"
    shutil.copytree(REPO / "cheatsheet", root)
    return root


def fresh(sheet: Path) -> dict[str, EntryStats]:
    """Every entry of ``sheet`` used yesterday with neutral marks: no decay, no other rule fires."""
    return {e.id: EntryStats(e.id, neutral=1, uses=1, successes=1, last_used=RECENT) for e in load_cheatsheet(sheet)}


def plan(sheet: Path, counters: dict[str, EntryStats], **policy: object) -> list[MaintenanceAction]:
    return plan_maintenance(
        load_cheatsheet(sheet), counters, embedder=FakeEmbedder(), policy=MaintenancePolicy(**policy), now=NOW
    )


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_unchanged_cheatsheet_needs_nothing(sheet: Path) -> None:
    assert plan(sheet, fresh(sheet)) == []


# -- merge -----------------------------------------------------------------------------------


def add_duplicates(sheet: Path) -> None:
    cond = "Timeouts with low Max Memory Used and p99 {} the timeout"
    rule = "Raise the timeout to about twice the p99 duration"
    save_entry(sheet, Heuristic(id="heur-timeout-raise-a", task_type="lambda_timeout", condition=cond.format("near"),
                                rule=rule, source=learned(runs=("ra",))))
    save_entry(sheet, Heuristic(id="heur-timeout-raise-b", task_type="lambda_timeout",
                                condition=cond.format("close to"), rule=rule,
                                source=learned(created=LEARNED - timedelta(days=3), runs=("rb",))))
    # Same words, other section: never merged across sections.
    save_entry(sheet, Strategy(id="strat-timeout-raise-c", task_type="lambda_timeout", pattern=cond.format("near"),
                               action=rule, source=learned(runs=("rc",))))


def test_near_duplicates_merge_into_the_more_helpful_entry(sheet: Path, tmp_path: Path) -> None:
    add_duplicates(sheet)
    counters = fresh(sheet)
    counters["heur-timeout-raise-a"] = replace(counters["heur-timeout-raise-a"], helpful=2, neutral=0, uses=2)
    actions = plan(sheet, counters, duplicate_threshold=0.85)
    (merge,) = actions
    assert merge.action == "MERGE" and merge.entry_id == "heur-timeout-raise-b" and merge.keeper == "heur-timeout-raise-a"
    assert merge.line.startswith("MERGE heur-timeout-raise-b: near-duplicate of heur-timeout-raise-a (similarity 0.8")
    assert "kept heur-timeout-raise-a (2 helpful vs 0 helpful)" in merge.line

    store = CounterStore(tmp_path / "state.sqlite")
    store.record_use("heur-timeout-raise-b", run_id="rb", tag="helpful", success=True, at=RECENT)
    store.record_use("heur-timeout-raise-a", run_id="ra", tag="helpful", success=True, at=RECENT)
    changes = apply_maintenance(sheet, actions, now=NOW, counter_store=store)
    assert [c.line for c in changes] == [merge.line]

    after = load_cheatsheet(sheet)
    gone, keeper = after["heur-timeout-raise-b"], after["heur-timeout-raise-a"]
    assert gone.status == "retired" and "merged-into:heur-timeout-raise-a" in gone.tags
    assert keeper.status == "candidate" and keeper.source.runs == ["ra", "rb"]
    assert after["strat-timeout-raise-c"].status == "candidate"
    assert store.get("heur-timeout-raise-a").uses == 2 and store.get("heur-timeout-raise-b").uses == 2  # renamed
    store.close()


def test_merge_tie_keeps_the_older_entry(sheet: Path) -> None:
    add_duplicates(sheet)
    (merge,) = plan(sheet, fresh(sheet), duplicate_threshold=0.85)
    assert (merge.entry_id, merge.keeper) == ("heur-timeout-raise-a", "heur-timeout-raise-b")


# -- prune -----------------------------------------------------------------------------------


def test_prune_retires_entries_that_keep_failing(sheet: Path) -> None:
    counters = fresh(sheet)
    counters["strat-errors-read-logs"] = EntryStats("strat-errors-read-logs", neutral=6, uses=6, successes=1,
                                                    failures=5, last_used=RECENT)
    counters["heur-oom-raise-memory"] = EntryStats("heur-oom-raise-memory", neutral=4, uses=4, successes=0,
                                                   failures=4, last_used=RECENT)  # too few uses to judge
    counters["heur-vpc-before-memory"] = EntryStats("heur-vpc-before-memory", neutral=6, uses=6, successes=2,
                                                    failures=4, last_used=RECENT)  # 33% >= 30%
    actions = plan(sheet, counters)
    assert [a.line for a in actions] == ["RETIRE strat-errors-read-logs: success 1/6 (17%) after 6 uses, below 30%"]
    apply_maintenance(sheet, actions, now=NOW)
    assert load_cheatsheet(sheet)["strat-errors-read-logs"].status == "retired"
    assert (sheet / "strategies" / "strat-errors-read-logs.yaml").exists()


# -- decay -----------------------------------------------------------------------------------


def test_decay_lowers_confidence_and_retires_stale_candidates(sheet: Path, tmp_path: Path) -> None:
    save_entry(sheet, Heuristic(id="heur-stale-candidate", condition="Weird cold starts in a rare region",
                                rule="Try a different runtime", source=learned(created=NOW - timedelta(days=90))))
    counters = fresh(sheet)
    del counters["heur-stale-candidate"]  # never used
    counters["heur-oom-raise-memory"] = replace(counters["heur-oom-raise-memory"], last_used=NOW - timedelta(days=30))
    counters["heur-vpc-before-memory"] = replace(counters["heur-vpc-before-memory"], last_used=NOW - timedelta(days=90))
    actions = plan(sheet, counters)
    assert [a.line for a in actions] == [
        "DECAY heur-oom-raise-memory: confidence 1.00 -> 0.50 (0 helpful, 0 harmful, 30 days since last use, half-life 30 d)",
        "RETIRE heur-stale-candidate: unused for 90 days since creation, confidence 0.12 below floor 0.20",
        "DECAY heur-vpc-before-memory: confidence 1.00 -> 0.20 (0 helpful, 0 harmful, 90 days since last use, half-life 30 d)",
    ]
    store = CounterStore(tmp_path / "state.sqlite")
    apply_maintenance(sheet, actions, now=NOW, counter_store=store)
    after = load_cheatsheet(sheet)
    assert after["heur-stale-candidate"].status == "retired"
    assert after["heur-vpc-before-memory"].status == "active"  # active entries only lose rank
    assert store.get("heur-oom-raise-memory").confidence == pytest.approx(0.5)

    # Decay is a function of the counters and time: planning again does not decay twice.
    for eid in ("heur-oom-raise-memory", "heur-vpc-before-memory"):
        counters[eid] = replace(counters[eid], confidence=store.get(eid).confidence)
    assert plan(sheet, counters) == []
    store.close()


def test_harmful_marks_lower_confidence(sheet: Path) -> None:
    counters = fresh(sheet)
    counters["heur-oom-raise-memory"] = replace(counters["heur-oom-raise-memory"], helpful=1, harmful=3)
    (action,) = plan(sheet, counters)
    assert action.action == "DECAY" and action.confidence == pytest.approx(3 / 6 * 0.5 ** (1 / 30))


# -- promote ---------------------------------------------------------------------------------


def test_promote_after_enough_helpful_uses(sheet: Path) -> None:
    for name, helpful, harmful in (("ready", 3, 1), ("contested", 3, 3), ("young", 2, 0)):
        save_entry(sheet, Heuristic(id=f"heur-{name}", condition=f"{name} condition here",
                                    rule=f"{name} rule for the agent", source=learned()))
    counters = fresh(sheet)
    for name, helpful, harmful in (("ready", 3, 1), ("contested", 3, 3), ("young", 2, 0)):
        counters[f"heur-{name}"] = EntryStats(f"heur-{name}", helpful=helpful, harmful=harmful,
                                              uses=helpful + harmful, successes=helpful + harmful, last_used=RECENT,
                                              confidence=(helpful + 2) / (helpful + harmful + 2))
    actions = plan(sheet, counters)
    assert [a.line for a in actions] == [
        "PROMOTE heur-ready: helpful 3x, harmful 1x (needs 3 helpful, more than harmful)"
    ]
    apply_maintenance(sheet, actions, now=NOW)
    statuses = {e.id: e.status for e in load_cheatsheet(sheet) if e.id.startswith("heur-") and e.source.kind == "curator"}
    assert statuses == {"heur-ready": "active", "heur-contested": "candidate", "heur-young": "candidate"}


# -- token budget ----------------------------------------------------------------------------


def test_budget_retires_candidates_then_weakest_learned_entries_and_spares_seeds(sheet: Path) -> None:
    save_entry(sheet, Heuristic(id="heur-learned-good", condition="Throttles during a traffic burst",
                                rule="Raise reserved concurrency to the burst peak", status="active", source=learned()))
    save_entry(sheet, Heuristic(id="heur-learned-weak", condition="Throttles during a nightly batch",
                                rule="Spread the batch over an hour", status="active", source=learned()))
    save_entry(sheet, Heuristic(id="heur-learned-candidate", condition="Throttles on a brand-new function",
                                rule="Check the account concurrency first", source=learned()))
    counters = fresh(sheet)
    counters["heur-learned-good"] = replace(counters["heur-learned-good"], uses=4, successes=4)
    counters["heur-learned-weak"] = replace(counters["heur-learned-weak"], uses=4, successes=2, failures=2)
    counters["heur-learned-candidate"] = replace(counters["heur-learned-candidate"], uses=4, successes=4)
    failing_seed = "strat-cost-right-size-memory"  # 1/4 success: below threshold, so not protected
    counters[failing_seed] = replace(counters[failing_seed], uses=4, successes=1, failures=3)

    sheet_now = load_cheatsheet(sheet)
    sizes = {e.id: count_tokens(e.text()) for e in sheet_now}
    total = sum(sizes.values())
    # Room for everything but the candidate, the failing seed and the weak learned entry.
    keep = total - sizes["heur-learned-candidate"] - sizes[failing_seed] - sizes["heur-learned-weak"]
    actions = plan(sheet, counters, token_budget=keep)
    assert [(a.entry_id, a.rule) for a in actions] == [
        ("heur-learned-candidate", "budget"),  # candidates first, even with 100% success
        (failing_seed, "budget"),  # 0.25 success: the lowest confidence x success of the active ones
        ("heur-learned-weak", "budget"),  # 0.5
    ]
    assert actions[0].line.startswith(f"RETIRE heur-learned-candidate: over token budget ({total} > {keep} tokens)")
    # One more token short: the good learned entry goes before any seed that has not failed.
    actions = plan(sheet, counters, token_budget=keep - 1)
    assert actions[-1].entry_id == "heur-learned-good"
    assert all(a.entry_id.startswith("heur-learned") or a.entry_id == failing_seed for a in actions)


# -- applying --------------------------------------------------------------------------------


def mixed_plan(sheet: Path) -> list[MaintenanceAction]:
    add_duplicates(sheet)
    counters = fresh(sheet)
    counters["strat-errors-read-logs"] = EntryStats("strat-errors-read-logs", neutral=6, uses=6, successes=1,
                                                    failures=5, last_used=RECENT)
    counters["heur-timeout-raise-c"] = EntryStats("heur-timeout-raise-c", helpful=3, uses=3, successes=3,
                                                  last_used=RECENT)
    return plan(sheet, counters, duplicate_threshold=0.85)


def test_same_input_same_plan_and_same_files(tmp_path: Path) -> None:
    trees, plans = [], []
    for name in ("a", "b"):
        root = tmp_path / name
        shutil.copytree(REPO / "cheatsheet", root)
        actions = mixed_plan(root)
        plans.append(actions)
        apply_maintenance(root, actions, now=NOW)
        trees.append(snapshot(root))
    assert plans[0] == plans[1] and len(plans[0]) == 2
    assert trees[0] == trees[1]


def test_failed_write_restores_files_and_leaves_counters(sheet: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    actions = mixed_plan(sheet)  # MERGE writes the retiree and the keeper, RETIRE a third file
    before = snapshot(sheet)
    store = CounterStore(tmp_path / "state.sqlite")
    store.record_use("heur-timeout-raise-a", run_id="r9", tag="helpful", success=True, at=RECENT)
    real = store_mod.atomic_write_text
    calls = {"n": 0}

    def flaky(path: Path, text: str) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real(path, text)

    monkeypatch.setattr(store_mod, "atomic_write_text", flaky)
    with pytest.raises(OSError, match="disk full"):
        apply_maintenance(sheet, actions, now=NOW, counter_store=store)
    assert snapshot(sheet) == before
    assert store.get("heur-timeout-raise-a").uses == 1  # not renamed
    store.close()


# -- prune by lift over the task type's baseline -----------------------------------------


def _runs(task_type: str, successes: int, n: int, entries: frozenset[str] = frozenset()) -> list:
    from selfheal.cheatsheet.maintenance import TaskRun

    return [TaskRun(task_type, i < successes, entries) for i in range(n)]


def test_lift_keeps_an_entry_at_0_of_7_when_its_task_type_fails_without_it_too(sheet: Path) -> None:
    entry = load_cheatsheet(sheet)["strat-errors-read-logs"]
    counters = fresh(sheet)
    counters[entry.id] = EntryStats(entry.id, neutral=7, uses=7, successes=0, failures=7, last_used=RECENT)
    runs = _runs(entry.task_type, 0, 20) + _runs(entry.task_type, 0, 7, frozenset({entry.id}))
    # The raw rule would retire it (0/7 < 30%); judged by lift, 0/7 against 0/20 is no evidence against it.
    assert [a.entry_id for a in plan(sheet, counters)] == [entry.id]
    assert plan_maintenance(load_cheatsheet(sheet), counters, embedder=FakeEmbedder(), now=NOW, runs=runs) == []


def test_lift_retires_an_entry_that_does_worse_than_its_task_type_without_it(sheet: Path) -> None:
    entry = load_cheatsheet(sheet)["strat-errors-read-logs"]
    counters = fresh(sheet)
    counters[entry.id] = EntryStats(entry.id, neutral=7, uses=7, successes=1, failures=6, last_used=RECENT)
    good = _runs(entry.task_type, 12, 20)
    (action,) = plan_maintenance(load_cheatsheet(sheet), counters, embedder=FakeEmbedder(), now=NOW, runs=good)
    assert action.line == (
        f"RETIRE {entry.id}: success 1/7 (14%) with it vs 12/20 (60%) without it in task type "
        f"{entry.task_type}: lift -46 points, below -10"
    )
    # Too few runs without it to know the baseline: kept.
    few = _runs(entry.task_type, 3, 4)
    assert plan_maintenance(load_cheatsheet(sheet), counters, embedder=FakeEmbedder(), now=NOW, runs=few) == []
    # A low raw rate that matches its baseline is not below it: kept.
    same = _runs(entry.task_type, 3, 20)
    assert plan_maintenance(load_cheatsheet(sheet), counters, embedder=FakeEmbedder(), now=NOW, runs=same) == []
