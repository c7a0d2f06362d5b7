"""``selfheal report``: one self-contained HTML file whose plots all render in a real (headless) browser.

The repository gets traces over several days, a merged improvement commit with
its evaluation trailer, counters, and a stored baseline/candidate evaluation;
then the page is opened in Chromium: screenshot not blank, every plot's SVG in
the DOM with elements, the page's script ran, no console message, and nothing
in the file points at the network. Shown on both reference agents.
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import date, timedelta
from pathlib import Path

import pytest
from helpers.chromium import chromium_path, dump_dom, non_white_pixels, screenshot
from helpers.eval_results import example, experiment
from helpers.gitrepo import WorkRepo, isolate_git, make_repo
from helpers.trace_fixtures import Tool, TraceSpec, make_trace

from selfheal.cli.main import main
from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange
from selfheal.gitops.publish import publish_change
from selfheal.interact.report import PLOTS, write_report
from selfheal.tracing.schema import utcnow
from selfheal.tracing.store import LocalTraceStore

REPO = Path(__file__).resolve().parents[1]
AGENTS = {
    "lambda_ops": {"types": ("lambda_timeout", "lambda_memory"), "tool": "update_memory",
                   "entry_dir": "cheatsheet/heuristics", "entries": ("heur-vpc-before-memory", "heur-timeout-low-memory")},
    "sql_analyst": {"types": ("customers", "orders"), "tool": "run_sql",
                    "entry_dir": "cheatsheet/sql_analyst/code_snippets", "entries": ("code-net-revenue",)},
}
SQL_ENTRY = """id: code-net-revenue
section: code_snippets
task_type: orders
purpose: every business figure starts from net, real orders
language: sql
snippet: "FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.status != 'X'"
status: active
source: {kind: curator, runs: [], created: 2026-03-01T09:00:00Z}
"""


def _repo(tmp_path: Path, agent: str) -> WorkRepo:
    repo = make_repo(tmp_path, origin=False, name=agent)
    if agent == "sql_analyst":
        shutil.copytree(REPO / "prompts" / "sql_analyst", repo.root / "prompts" / "sql_analyst")
        shutil.copytree(REPO / "cheatsheet" / "sql_analyst", repo.root / "cheatsheet" / "sql_analyst")
        repo.write("selfheal.yaml", "agent: sql_analyst\nembeddings: {provider: none}\n")
        repo.commit_all("sql_analyst agent")
    return repo


def _improve(repo: WorkRepo, agent: str) -> None:
    """A curate commit with its evaluation trailer, merged into main."""
    if agent == "sql_analyst":
        files = [FileChange(path="cheatsheet/sql_analyst/code_snippets/code-net-revenue.yaml", content=SQL_ENTRY)]
    else:
        path = "cheatsheet/heuristics/heur-vpc-before-memory.yaml"
        files = [FileChange(path=path, content=(repo.root / path).read_text() + "# sharper\n")]
    change = ChangeSet(kind="curate", title="Learn the revenue convention" if agent == "sql_analyst" else
                       "Sharper VPC rule", files=files,
                       eval_summary=EvalSummary(baseline_rate=0.25, candidate_rate=0.75, n=8, p_value=0.13))
    branch = publish_change(repo.settings(), change, today=date.today()).branch
    repo.git("merge", "-q", "--ff-only", branch)


def _traces(repo: WorkRepo, agent: str) -> None:
    spec = AGENTS[agent]
    settings = repo.settings()
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    # one minute before today's midnight (UTC): day d's runs, d days and 1-3 hours earlier, fall on
    # five different dates whatever the time of day the test runs at, and none in the future
    now = utcnow().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(minutes=1)
    with LocalTraceStore.from_settings(settings) as store:
        session = store.ensure_project(settings.tracing.project).id
        runs = []
        for day in range(5):
            for i, tt in enumerate(spec["types"]):
                for k in range(3):
                    ok = (k + day + i) % 3 != 0
                    tool = Tool(spec["tool"], {"x": 1}, message_error=None if ok else f"timeout after {k + 2}.00 seconds")
                    runs += make_trace(TraceSpec(f"{day}-{tt}-{k}", tt, ok, 1.0 + k, [tool], tokens=(900 + 10 * k, 120),
                                                 retrieved=list(spec["entries"]), used=list(spec["entries"][:1]),
                                                 error_type=None if ok else "timeout",
                                                 age=timedelta(days=day, hours=k + 1)), session, now)
        store.write_runs(runs)
        base = experiment([example("a", True, task_type=spec["types"][0]), example("b", False, task_type=spec["types"][1]),
                           example("c", True, task_type=spec["types"][1])], experiment_id=str(uuid.uuid4()), git_ref="main",
                          name=f"{agent}-test-base")
        cand = experiment([example("a", False, task_type=spec["types"][0]), example("b", True, task_type=spec["types"][1]),
                           example("c", True, task_type=spec["types"][1])], experiment_id=str(uuid.uuid4()),
                          name=f"{agent}-test-cand")
        cand.started_at = base.started_at + timedelta(minutes=1)
        for e in (base, cand):
            store.put_experiment(id=e.experiment_id, name=e.name, dataset=e.dataset, split=e.split,
                                 started_at=e.started_at.isoformat(), result=e.model_dump_json())
    from selfheal.cheatsheet.counters import CounterStore

    with CounterStore.from_settings(settings) as counters:
        for n, entry in enumerate(spec["entries"]):
            for k in range(4 - n):
                counters.record_use(entry, run_id=f"r{k}", tag="helpful" if k else "harmful", success=bool(k))


@pytest.fixture(params=sorted(AGENTS))
def populated(request, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[WorkRepo, str]:
    isolate_git(monkeypatch, tmp_path)
    agent = request.param
    repo = _repo(tmp_path, agent)
    _improve(repo, agent)
    _traces(repo, agent)
    return repo, agent


def test_report_data_has_every_part(populated) -> None:
    repo, agent = populated
    path, data = write_report(repo.settings(), repo.root / "out" / "report.html", prompt_price=1.0,
                              completion_price=2.0)
    spec = AGENTS[agent]
    assert set(data.success_by_type) == set(spec["types"]) and data.runs == 30
    assert all(len(points) == 5 for points in data.success_by_type.values())
    (imp,) = data.improvements
    assert imp.merged and imp.eval is not None and imp.eval.n == 8
    assert imp.before_ci is not None and imp.before_ci.low < 0.25 < imp.before_ci.high
    assert imp.after_ci is not None and imp.after_ci.low < 0.75 < imp.after_ci.high
    assert data.growth[-1].entries >= 1
    if agent == "sql_analyst":  # the entry was added by the improvement: growth 0 -> 1
        assert [g.entries for g in data.growth][-1] == 1
    used = {e.entry_id: e for e in data.entries}
    assert used[spec["entries"][0]].helpful == 3 and used[spec["entries"][0]].harmful == 1
    assert data.errors and data.errors[0].signature == "timeout after <n> seconds"
    assert sum(t.total for t in data.tokens) == sum(t.prompt + t.completion for t in data.tokens) > 0
    assert data.cost_usd == pytest.approx(sum(t.prompt for t in data.tokens) / 1e6 + sum(
        t.completion for t in data.tokens) * 2 / 1e6)
    ev = data.latest_eval
    assert ev is not None and ev.name == f"{agent}-test-cand" and ev.baseline_rate == pytest.approx(2 / 3)
    assert sorted((f.name, f.direction) for f in ev.flips) == [("a", "pass -> fail"), ("b", "fail -> pass")]
    html = path.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the report references the network"
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert html.count('class="plot"') == len(PLOTS)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("populated", ["sql_analyst"], indirect=True)  # rendering does not depend on the agent
def test_every_plot_renders_in_headless_chromium(populated, tmp_path: Path) -> None:
    if chromium_path() is None:
        pytest.skip("chromium is not installed (scripts/_venv.sh installs Debian's chromium in CI)")
    repo, agent = populated
    page = tmp_path / "report.html"
    code = _cli(["-C", str(repo.root), "report", "--out", str(page)])
    assert code == 0
    dom, console = dump_dom(page)
    assert console == [], console
    assert 'data-plots-rendered="7"' in dom, "the page's script did not see every plot drawn"
    for name in PLOTS:
        m = re.search(rf'<svg class="plot" data-plot="{name}".*?</svg>', dom, re.S)
        assert m, f"plot {name} missing from the DOM"
        marks = re.findall(r"<(path|circle|rect|line)\b", m.group(0))[1:]  # [0] is the white background
        assert marks, f"plot {name} has no marks"
    png = tmp_path / "shot.png"
    assert screenshot(page, png) == []
    dark, size = non_white_pixels(png)
    width, height = (int(x) for x in size.split("x"))
    assert width == 1000 and dark > 0.01 * width * height, (dark, size)


def test_a_page_with_a_script_error_is_caught(tmp_path: Path) -> None:
    """The console check can fail: a broken page shows up."""
    if chromium_path() is None:
        pytest.skip("chromium is not installed (scripts/_venv.sh installs Debian's chromium in CI)")
    page = tmp_path / "broken.html"
    page.write_text("<html><body><script>undefinedFunction();</script></body></html>")
    _, console = dump_dom(page)
    assert any("undefinedFunction" in line for line in console)


def test_an_empty_repository_still_gets_a_report(tmp_path: Path, monkeypatch, capsys) -> None:
    isolate_git(monkeypatch, tmp_path)
    repo = make_repo(tmp_path, origin=False)
    code = _cli(["-C", str(repo.root), "report"])
    out = capsys.readouterr().out
    assert code == 0 and "report.html: 0 runs, 0 improvement(s)" in out
    html = (repo.root / ".selfheal" / "report.html").read_text()
    assert html.count('class="plot"') == len(PLOTS) and "no data yet" in html


def _cli(args: list[str]) -> int:
    with pytest.raises(SystemExit) as info:
        main(args)
    return int(info.value.code or 0)
