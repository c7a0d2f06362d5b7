"""What ``selfheal report`` shows, gathered from where it already lives: traces, git history, counters, evals.

Each part reads one source and nothing here renders: success and tokens per
day from the root runs of the trace store; merged improvements and their
published before/after (with Wilson intervals) from the ``Selfheal-*``
trailers in git; cheatsheet growth from the history of the cheatsheet
directory; entry utility from the counters and the traces' lift; error
clusters from :func:`selfheal.tracing.analysis.analyze`; the latest stored
evaluation with its flips from the experiments table. A source that is missing
(no traces yet, not a git repository) gives an empty part, never an error: the
report of a fresh repository is a report of nothing yet.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from selfheal.errors import SelfhealError
from selfheal.evaluation.stats import Interval, wilson_interval
from selfheal.interact.review import EvalNumbers


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DayPoint(_M):
    day: date
    runs: int
    with_outcome: int
    successes: int

    @property
    def rate(self) -> float | None:
        return self.successes / self.with_outcome if self.with_outcome else None


class ImprovementPoint(_M):
    sha: str
    short: str
    day: date
    title: str
    kind: str
    merged: bool
    eval: EvalNumbers | None = None
    before_ci: Interval | None = None
    after_ci: Interval | None = None


class GrowthPoint(_M):
    day: date
    entries: int


class EntryUtility(_M):
    entry_id: str
    uses: int = 0
    helpful: int = 0
    harmful: int = 0
    success_rate: float | None = None
    lift: float | None = None


class ErrorRow(_M):
    signature: str
    count: int
    example: str
    run_ids: list[str] = Field(default_factory=list)


class TokenDay(_M):
    day: date
    runs: int
    prompt: int
    completion: int
    total: int


class FlipRow(_M):
    name: str
    task_type: str
    direction: str              # "pass -> fail" | "fail -> pass"
    baseline_run_id: str | None
    candidate_run_id: str | None


class TypeRate(_M):
    task_type: str
    n: int
    rate: float
    baseline_rate: float | None = None


class LatestEval(_M):
    name: str
    dataset: str
    split: str
    finished_at: datetime
    n: int
    success_rate: float
    ci: Interval
    baseline_name: str | None = None
    baseline_rate: float | None = None
    p_value: float | None = None
    by_task_type: list[TypeRate] = Field(default_factory=list)
    flips: list[FlipRow] = Field(default_factory=list)


class ReportData(_M):
    agent: str
    project: str
    generated_at: datetime
    since: datetime
    runs: int = 0
    success_by_type: dict[str, list[DayPoint]] = Field(default_factory=dict)
    improvements: list[ImprovementPoint] = Field(default_factory=list)
    growth: list[GrowthPoint] = Field(default_factory=list)
    entries: list[EntryUtility] = Field(default_factory=list)
    errors: list[ErrorRow] = Field(default_factory=list)
    tokens: list[TokenDay] = Field(default_factory=list)
    cost_usd: float | None = None
    latest_eval: LatestEval | None = None


# -- traces ------------------------------------------------------------------------
def _day(when: datetime) -> date:
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC).date()


def _traces(settings: Any, since: datetime, data: ReportData, top: int) -> None:
    path = Path(settings.trace_store_path)
    if not path.is_file():
        return
    from selfheal.tracing.analysis import analyze
    from selfheal.tracing.store import LocalTraceStore

    with LocalTraceStore(path) as store:
        roots = store.list_runs(settings.tracing.project, is_root=True, since=since, limit=None)
        analysis = analyze(store, project=settings.tracing.project, since=since, top=top) if roots else None
    data.runs = len(roots)
    buckets: dict[str, dict[date, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    tokens: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for r in roots:
        md = r.metadata
        day = _day(r.start_time)
        b = buckets[str(md.get("task_type") or "unknown")][day]
        b[0] += 1
        if isinstance(md.get("success"), bool):
            b[1] += 1
            b[2] += int(md["success"])
        t = tokens[day]
        t[0] += 1
        t[1] += r.prompt_tokens or 0
        t[2] += r.completion_tokens or 0
        t[3] += r.total_tokens or ((r.prompt_tokens or 0) + (r.completion_tokens or 0))
    data.success_by_type = {
        tt: [DayPoint(day=d, runs=v[0], with_outcome=v[1], successes=v[2]) for d, v in sorted(days.items())]
        for tt, days in sorted(buckets.items())
    }
    data.tokens = [TokenDay(day=d, runs=v[0], prompt=v[1], completion=v[2], total=v[3]) for d, v in sorted(tokens.items())]
    if analysis is not None:
        data.errors = [ErrorRow(signature=c.signature, count=c.count, example=c.example,
                                run_ids=[str(x) for x in c.run_ids[:3]]) for c in analysis.overall.errors[:top]]
        data.entries = [EntryUtility(entry_id=e.entry_id, uses=e.used, success_rate=e.success_rate_used, lift=e.lift)
                        for e in analysis.overall.entries]


def _counters(settings: Any, data: ReportData) -> None:
    """helpful/harmful tags and uses from the counter store, merged into the traces' entry rows."""
    from selfheal.cheatsheet.counters import STATE_FILENAME, CounterStore

    path = Path(settings.state_dir) / STATE_FILENAME
    if not path.is_file():
        return
    rows = {e.entry_id: e for e in data.entries}
    with CounterStore(path) as store:
        for entry_id, st in store.all().items():
            row = rows.setdefault(entry_id, EntryUtility(entry_id=entry_id))
            row.helpful, row.harmful = st.helpful, st.harmful
            row.uses = max(row.uses, st.uses)
            if row.success_rate is None:
                row.success_rate = st.success_rate
    data.entries = sorted(rows.values(), key=lambda e: (-e.uses, e.entry_id))


# -- git ---------------------------------------------------------------------------------
def _git_parts(settings: Any, data: ReportData) -> None:
    import git

    from selfheal.gitops.history import improvement_history
    from selfheal.gitops.repo import open_repo, toplevel

    try:
        repo = open_repo(Path(settings.root))
        top = toplevel(repo)
        items = improvement_history(settings)
    except (SelfhealError, git.GitCommandError, ValueError):  # not a repository, no commits: no history
        return
    for it in reversed(items):  # oldest first
        try:
            merged = repo.is_ancestor(it.sha, "HEAD")
        except git.GitCommandError:
            merged = False
        ev = EvalNumbers.parse(it.eval)
        point = ImprovementPoint(sha=it.sha, short=it.short, day=_day(it.date), title=it.title, kind=it.kind,
                                 merged=merged, eval=ev)
        if ev is not None and ev.n:
            point.before_ci = wilson_interval(round(ev.baseline_rate * ev.n), ev.n)
            point.after_ci = wilson_interval(round(ev.candidate_rate * ev.n), ev.n)
        data.improvements.append(point)
    data.growth = cheatsheet_growth(repo, top, Path(settings.cheatsheet_dir))


def cheatsheet_growth(repo: Any, top: Path, cheatsheet_dir: Path) -> list[GrowthPoint]:
    """Entry files in the cheatsheet directory after each day that changed it (first-parent history of HEAD)."""
    import git

    try:
        rel = cheatsheet_dir.resolve().relative_to(top.resolve()).as_posix()
    except ValueError:
        return []
    try:
        out = str(repo.git.log("--reverse", "--first-parent", "--format=@%cI", "--name-status", "--no-renames",
                               "HEAD", "--", rel))
    except git.GitCommandError:
        return []
    count, per_day = 0, {}
    day: date | None = None
    for line in out.splitlines():
        if line.startswith("@"):
            day = _day(datetime.fromisoformat(line[1:]))
            continue
        parts = line.split("\t")
        if len(parts) == 2 and parts[1].endswith(".yaml") and day is not None:
            count += {"A": 1, "D": -1}.get(parts[0][:1], 0)
            per_day[day] = count
    now = sum(1 for _ in cheatsheet_dir.rglob("*.yaml")) if cheatsheet_dir.is_dir() else count
    today = datetime.now(UTC).date()
    if now != count or not per_day:
        per_day[today] = now
    return [GrowthPoint(day=d, entries=n) for d, n in sorted(per_day.items())]


# -- evaluations ---------------------------------------------------------------------------
def _latest_eval(settings: Any, data: ReportData) -> None:
    path = Path(settings.trace_store_path)
    if not path.is_file():
        return
    from selfheal.evaluation.compare import compare, rate_summary
    from selfheal.evaluation.experiments import list_experiments
    from selfheal.tracing.store import LocalTraceStore

    with LocalTraceStore(path) as store:
        experiments = list_experiments(store)  # newest first
    candidates = [e for e in experiments if e.git_ref is None and e.results]
    if not candidates:
        return
    cand = candidates[0]
    base = next((e for e in experiments if e.git_ref is not None and e.dataset == cand.dataset
                 and e.split == cand.split and e.started_at <= cand.started_at and e.results), None)
    s = rate_summary(cand.results)
    latest = LatestEval(name=cand.name, dataset=cand.dataset, split=cand.split, finished_at=cand.finished_at,
                        n=s.n, success_rate=s.rate, ci=s.ci)
    types = sorted({r.task_type for r in cand.results})
    if base is not None:
        try:
            comp = compare(base, cand)
        except ValueError:
            comp = None
        if comp is not None:
            latest.baseline_name, latest.baseline_rate = base.name, comp.overall.baseline.rate
            latest.p_value = comp.overall.mcnemar_p
            latest.flips = [FlipRow(name=f.name, task_type=f.task_type, direction=d, baseline_run_id=f.baseline_run_id,
                                    candidate_run_id=f.candidate_run_id)
                            for d, flips in (("pass -> fail", comp.pass_to_fail), ("fail -> pass", comp.fail_to_pass))
                            for f in flips]
            by_type = {g.group: g for g in comp.by_task_type}
            latest.by_task_type = [TypeRate(task_type=g.group, n=g.n_paired, rate=g.candidate.rate,
                                            baseline_rate=g.baseline.rate) for g in by_type.values()]
    if not latest.by_task_type:
        for tt in types:
            rs = rate_summary(r for r in cand.results if r.task_type == tt)
            latest.by_task_type.append(TypeRate(task_type=tt, n=rs.n, rate=rs.rate))
    data.latest_eval = latest


def collect(
    settings: Any,
    *,
    days: int = 30,
    top: int = 8,
    prompt_price: float | None = None,
    completion_price: float | None = None,
    now: datetime | None = None,
) -> ReportData:
    """Everything the report shows for the last ``days`` days; prices are USD per million tokens."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=days)
    data = ReportData(agent=str(settings.agent), project=settings.tracing.project, generated_at=now, since=since)
    _traces(settings, since, data, top)
    _counters(settings, data)
    _git_parts(settings, data)
    _latest_eval(settings, data)
    if prompt_price is not None or completion_price is not None:
        p = sum(t.prompt for t in data.tokens)
        c = sum(t.completion for t in data.tokens)
        data.cost_usd = (p * (prompt_price or 0.0) + c * (completion_price or 0.0)) / 1_000_000
    return data
