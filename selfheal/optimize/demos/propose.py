"""``selfheal optimize --demos``: bootstrap, select on dev, and propose the chosen demos as one change.

The change is ``context.yaml`` with its bootstrapped examples replaced by the
chosen set (hand-written examples untouched, ``version`` bumped), checked by
lint before it leaves; it goes through gitops (branch + PR with the dev
scores of every candidate and the cost of each phase), or into the working
tree. Nothing is proposed when no demo set beats the hand-written examples
on dev, and the report says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.context.model import CONTEXT_FILENAME
from selfheal.optimize.demos.bootstrap import DEFAULT_MAX_DEMO_TOKENS, ModelFactory, bootstrap_demos
from selfheal.optimize.demos.context_file import bootstrapped_examples, context_with_demos
from selfheal.optimize.demos.model import Attempt, DemoPool, PhaseCost
from selfheal.optimize.demos.select import Candidate, DevEval, Selection, experiment_dev_eval, select_demos

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings

DEFAULT_BUDGET_TOKENS = 800


@dataclass
class DemoReport:
    """What bootstrapping found, what selection chose and why, and where the change went."""

    pool: DemoPool
    selection: Selection | None
    files: dict[str, str] = field(default_factory=dict)   # repo-relative path -> new content
    reasons: list[str] = field(default_factory=list)      # why nothing was proposed (empty when something was)
    markdown: str = ""
    applied: bool = False
    publish: Any = None  # selfheal.gitops.publish.PublishResult

    @property
    def costs(self) -> list[PhaseCost]:
        return [self.pool.cost] + ([self.selection.cost] if self.selection is not None else [])

    @property
    def chosen(self) -> Candidate | None:
        return self.selection.chosen if self.selection is not None else None


def _markdown(pool: DemoPool, selection: Selection, dataset: str, dev_split: str) -> str:
    verified = sum(a.success for a in pool.attempts)
    lines = [
        "## Bootstrapped demonstrations",
        "",
        f"{verified}/{len(pool.attempts)} attempts were verified by the environment; "
        f"they became {len(pool.demos)} distinct demonstration(s).",
        "",
        f"### Candidate sets on `{dataset}` / `{dev_split}` (budget {selection.budget_tokens} prompt tokens)",
        "",
        "| set | demos | +tokens | dev passed | dev rate | chosen |",
        "|---|---|---|---|---|---|",
    ]
    for c in selection.candidates:
        s = c.score
        passed, rate = (f"{s.passed}/{s.n}", f"{s.rate:.1%}") if s is not None else ("-", "-")
        lines.append(f"| {c.label} | {len(c.demos)} | {c.tokens} | {passed} | {rate} | "
                     f"{'**yes**' if c is selection.chosen else ''} |")
    lines += ["", "### Chosen demonstrations", ""]
    for d in selection.chosen.demos:
        p = d.provenance
        lines.append(f"- `{d.id}` ({d.task_type}) from run `{p.run_id}` on `{p.example}` "
                     f"(seed {p.seed}, temperature {p.temperature:g}, {p.model}); {len(d.calls)} call(s) kept, "
                     f"{d.dropped_calls} dropped")
    lines += ["", "### Cost", "", "| phase | runs | model calls | tokens | wall time |", "|---|---|---|---|---|"]
    for c in (pool.cost, selection.cost):
        lines.append(f"| {c.phase} | {c.runs} | {c.model_calls} | {c.tokens} | {c.wall_s:.1f}s |")
    return "\n".join(lines) + "\n"


def _lint_errors(settings: Settings, text: str) -> list[str]:
    """Lint the candidate context in a scratch copy of the prompts (errors only)."""
    import shutil
    import tempfile

    from selfheal.agents.registry import get_agent
    from selfheal.lint import lint_repository
    from selfheal.optimize.demos.select import variant_settings

    with tempfile.TemporaryDirectory(prefix="selfheal-demos-lint-") as tmp:
        target = Path(tmp) / "prompts" / settings.agent
        shutil.copytree(settings.prompts_dir, target)
        (target / CONTEXT_FILENAME).write_text(text, encoding="utf-8")
        scratch = variant_settings(settings, Path(tmp) / "prompts")
        known = set(get_agent(settings).tool_names())
        issues = lint_repository(scratch, known_tools=known)
    return [str(i) for i in issues if i.severity == "error"]


def optimize_demos(
    settings: Settings,
    *,
    dataset: str | None = None,
    train_split: str = "train",
    dev_split: str = "dev",
    names: Sequence[str] | None = None,
    dev_names: Sequence[str] | None = None,
    k: int = 2,
    temperature: float = 0.7,
    seeds: Sequence[int] | None = None,
    budget_tokens: int = DEFAULT_BUDGET_TOKENS,
    max_demos: int | None = None,
    max_demo_tokens: int = DEFAULT_MAX_DEMO_TOKENS,
    model_factory: ModelFactory | None = None,
    dev_model_factory: Callable[[], BaseChatModel] | None = None,
    dev_eval: DevEval | None = None,
    jobs: int = 1,
    apply: bool = False,
    publish: bool = False,
    progress: bool = False,
    on_attempt: Callable[[Attempt], None] | None = None,
    on_candidate: Callable[[Candidate], None] | None = None,
) -> DemoReport:
    """Bootstrap demos on ``train_split``, choose a set on ``dev_split``, then apply or publish it."""
    from selfheal.evaluation.dataset import load_dataset

    ds = load_dataset(settings, dataset)
    pool = bootstrap_demos(settings, dataset=ds.name, split=train_split, names=names, k=k, temperature=temperature,
                           seeds=seeds, model_factory=model_factory, max_demo_tokens=max_demo_tokens,
                           on_attempt=on_attempt)
    if not pool.demos:
        return DemoReport(pool, None, reasons=[
            f"no attempt on '{train_split}' was verified by the environment "
            f"(0/{len(pool.attempts)}): there is no demonstration to propose"])
    evaluate = dev_eval or experiment_dev_eval(dataset=ds.name, split=dev_split, names=dev_names,
                                               model_factory=dev_model_factory, jobs=jobs, progress=progress)
    selection = select_demos(settings, pool, budget_tokens=budget_tokens, dev_eval=evaluate, max_demos=max_demos,
                             on_candidate=on_candidate)
    report = DemoReport(pool, selection, markdown=_markdown(pool, selection, ds.name, dev_split))
    chosen = selection.chosen
    path = settings.prompts_dir / CONTEXT_FILENAME
    current = path.read_text(encoding="utf-8")
    if not chosen.demos:
        report.reasons.append("no demo set scored better on dev than the hand-written examples alone")
        return report
    if [e.id for e in bootstrapped_examples(current)] == chosen.ids:
        report.reasons.append("the context already holds exactly the chosen demonstrations")
        return report
    text = context_with_demos(current, chosen.demos, bump_version=True, path=path)
    errors = _lint_errors(settings, text)
    if errors:
        report.reasons += [f"the context with the chosen demos does not lint: {e}" for e in errors]
        return report
    rel = path.relative_to(settings.root).as_posix() if path.is_relative_to(settings.root) else path.name
    report.files = {rel: text}
    if publish:
        report.publish = _publish(settings, report, ds.name, dev_split)
    elif apply:
        from selfheal.yamlio import atomic_write_text

        atomic_write_text(path, text)
        report.applied = True
    return report


def _publish(settings: Settings, report: DemoReport, dataset: str, dev_split: str) -> Any:
    from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange
    from selfheal.gitops.publish import publish_change

    selection = report.selection
    assert selection is not None
    chosen = selection.chosen
    baseline = next((c for c in selection.candidates if not c.demos), None)
    summary = [f"demo {d.id} ({d.task_type}) from run {d.provenance.run_id} on {d.provenance.example}"
               for d in chosen.demos]
    summary += [line.strip() for line in selection.lines()] + [c.line() for c in report.costs]
    eval_summary = None
    if baseline is not None and baseline.score is not None and chosen.score is not None:
        eval_summary = EvalSummary(
            baseline_rate=baseline.score.rate, candidate_rate=chosen.score.rate, n=chosen.score.n,
            dataset=dataset, split=dev_split, report_markdown=report.markdown,
        )  # fmt: skip
    change = ChangeSet(
        kind="optimize",
        title=f"selfheal: {len(chosen.demos)} bootstrapped demonstration(s) for {settings.agent}",
        summary=summary,
        files=[FileChange(path=p, content=c) for p, c in report.files.items()],
        trace_ids=[d.provenance.run_id for d in chosen.demos],
        eval_summary=eval_summary,
        model=chosen.demos[0].provenance.model if chosen.demos else "",
    )
    return publish_change(settings, change)
