"""Entry counters in local state: idempotent per run, safe under concurrency, folded in batches."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from selfheal.cheatsheet.counters import STATE_FILENAME, CounterStore
from selfheal.config import load_settings

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> CounterStore:
    with CounterStore(tmp_path / "state.sqlite") as s:
        yield s


def test_counts_and_success_rate(store: CounterStore) -> None:
    assert store.get("heur-a").uses == 0 and store.get("heur-a").success_rate is None
    store.record_use("heur-a", run_id="r1", tag="helpful", success=True, at=T0)
    store.record_use("heur-a", run_id="r2", tag="harmful", success=False, at=T0 + timedelta(hours=1))
    store.record_use("heur-a", run_id="r3", tag="neutral", success=True, at=T0 + timedelta(hours=2))
    s = store.get("heur-a")
    assert (s.helpful, s.harmful, s.neutral, s.uses, s.successes, s.failures) == (1, 1, 1, 3, 2, 1)
    assert s.success_rate == pytest.approx(2 / 3)
    assert s.last_used == T0 + timedelta(hours=2)
    with pytest.raises(ValueError, match="tag must be one of"):
        store.record_use("heur-a", run_id="r4", tag="great", success=True)  # type: ignore[arg-type]


def test_record_use_is_idempotent_per_run(store: CounterStore) -> None:
    for _ in range(3):  # a retried / resumed run reports again
        store.record_use("heur-a", run_id="r1", tag="helpful", success=True)
    store.record_use("heur-b", run_id="r1", tag="harmful", success=True)
    assert store.get("heur-a").uses == 1 and store.get("heur-a").helpful == 1
    assert set(store.all()) == {"heur-a", "heur-b"}


def test_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    stores = [CounterStore(path), CounterStore(path)]  # two connections: like two processes

    def work(worker: int) -> None:
        s = stores[worker % 2]
        for i in range(40):
            s.record_use(f"heur-{i % 4}", run_id=f"w{worker}-r{i}", tag="helpful", success=i % 2 == 0)
            s.record_use(f"heur-{i % 4}", run_id=f"w{worker}-r{i}", tag="helpful", success=True)  # dup

    threads = [threading.Thread(target=work, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = stores[0].all()
    assert sum(s.uses for s in totals.values()) == 6 * 40
    assert {k: (s.uses, s.successes) for k, s in totals.items()} == {
        "heur-0": (60, 60), "heur-1": (60, 0), "heur-2": (60, 60), "heur-3": (60, 0)  # first report wins
    }
    for s in stores:
        s.close()


def test_fold_starts_a_new_batch(store: CounterStore) -> None:
    store.record_use("heur-a", run_id="r1", tag="helpful", success=True, at=T0)
    store.record_use("heur-b", run_id="r1", tag="harmful", success=True, at=T0)
    assert set(store.pending_since_fold()) == {"heur-a", "heur-b"}

    store.mark_folded(["heur-a"], at=T0 + timedelta(minutes=5))
    pending = store.pending_since_fold()
    assert set(pending) == {"heur-b"}  # heur-b was not part of that batch
    assert store.get("heur-a").uses == 1  # all-time totals keep folded history

    # A run recorded while curation was running (after its cut-off) stays pending.
    store.record_use("heur-a", run_id="r2", tag="harmful", success=False, at=T0 + timedelta(minutes=10))
    store.mark_folded(["heur-a"], at=T0 + timedelta(minutes=7))
    pending = store.pending_since_fold()
    assert pending["heur-a"].uses == 1 and pending["heur-a"].harmful == 1
    # Replaying an already folded run does not resurrect it.
    store.record_use("heur-a", run_id="r1", tag="helpful", success=True, at=T0)
    assert store.pending_since_fold()["heur-a"].uses == 1


def test_rename_keeps_history_and_redirects_late_reports(store: CounterStore) -> None:
    store.record_use("heur-old", run_id="r1", tag="helpful", success=True)
    store.record_use("heur-old", run_id="r2", tag="helpful", success=True)
    store.record_use("heur-new", run_id="r2", tag="harmful", success=False)  # both used in r2
    store.set_confidence("heur-old", 0.4)
    store.rename("heur-old", "heur-new")
    merged = store.get("heur-new")
    assert merged.uses == 2  # r2 counts once
    assert merged.confidence == 0.4
    assert "heur-old" not in store.all()
    # A run that retrieved the old id before the merge reports after it.
    store.record_use("heur-old", run_id="r3", tag="helpful", success=True)
    assert store.get("heur-new").uses == 3
    assert store.get("heur-old").entry_id == "heur-new"


def test_confidence_persists_and_settings_path(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={})
    with CounterStore.from_settings(settings) as s:
        assert s.path == settings.state_dir / STATE_FILENAME
        assert s.get("heur-a").confidence == 1.0
        s.set_confidence("heur-a", 0.25)
        with pytest.raises(ValueError):
            s.set_confidence("heur-a", 1.5)
    with CounterStore.from_settings(settings) as s:
        assert s.get("heur-a").confidence == 0.25
        assert s.all()["heur-a"].uses == 0
