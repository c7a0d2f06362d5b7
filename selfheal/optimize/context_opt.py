"""``selfheal optimize``: optimize the whole context from traces, select on dev, confirm on test, propose.

The optimizer the original design calls ``optimize_context``, built the way
ACE's offline mode works and DSPy users expect of an optimizer they can trust:

1. **collect** -- the train split runs with the current context (learning
   off); its traces are the evidence (plus stored runs, ``since``).
2. **reflect** -- a Reflector (``model.roles.reflector``) reads the runs in
   batches: per task type successes vs failures, error clusters, entries used,
   feedback, and a failed and a successful trajectory of the same task type
   side by side, with the example's ground truth when the dataset has one.
3. **curate** -- a Curator (``model.roles.curator``) turns each batch's
   insights into delta operations on the context (instructions, examples,
   tool descriptions) and the cheatsheet. A candidate variant is the best
   variant so far plus those deltas: a set of deltas, never a rewrite.
4. **vet** -- every variant must render, lint clean, and not collapse the
   context (``optimize.max_shrink`` / ``max_rewrite`` / ``strong_helpful``);
   a rejected variant carries its reasons and is never scored.
5. **select** -- variants are scored on the dev split; the best is kept.
   Each further epoch re-runs the train split with the best variant so far
   and reflects on what still fails (ACE's offline epochs); it stops early
   after ``patience`` variants without a dev gain, or when nothing fails.
6. **confirm** -- the best variant runs on the test split against the
   current context (paired, the eval gate); it is proposed (branch + PR
   through gitops, or ``apply`` to the working tree) only when it is
   significantly better and no task type regresses beyond the gate's margin.
   Otherwise the report says why nothing was proposed.

Model calls, tokens and wall time are accounted per phase; each role's model
identity is recorded on its traced calls and in the report and PR body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfheal.errors import SelfhealError
from selfheal.scratch import scratch_dir

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from selfheal.config import Settings
    from selfheal.evaluation.results import ExperimentResult
    from selfheal.optimize.variants import Materialized, Variant


@dataclass
class VariantRecord:
    """One candidate variant: what it changes, why it was rejected or how it scored on dev."""

    name: str
    parent: str | None
    epoch: int
    lines: list[str] = field(default_factory=list)
    rejected_ops: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    dev_score: float | None = None
    dev_passed: int = 0
    dev_n: int = 0
    kept: bool = False
    runs: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.problems:
            return "rejected"
        return "best" if self.kept else "scored"


@dataclass
class ContextOptReport:
    """Everything ``selfheal optimize`` did and decided."""

    dataset: str
    roles: dict[str, str]
    train_passed: int = 0
    train_n: int = 0
    evidence_runs: int = 0
    batches: int = 0
    baseline_dev: float | None = None
    variants: list[VariantRecord] = field(default_factory=list)
    best: str = "current"
    early_stop: str | None = None
    comparison: Any = None
    decision: Any = None
    proposed: bool = False
    reasons: list[str] = field(default_factory=list)  # why nothing was proposed (empty when proposed)
    errors: list[str] = field(default_factory=list)
    failed_calls: list[str] = field(default_factory=list)  # Reflector/Curator calls that failed (model errors)
    files: dict[str, str | None] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)
    cost: Any = None  # selfheal.optimize.cost.CostMeter
    markdown: str = ""
    applied: bool = False
    publish: Any = None
    reason: str | None = None  # why it ran (``--reason``: a user request, or "schedule")

    def add_error(self, message: str, *, failed_call: str | None = None) -> None:
        """Record a problem on the way, redacted: model errors and rejected operations quote model
        output, and the report goes to stdout, the PR body and ``optimize-runs.jsonl``."""
        from selfheal.redact import make_redactor

        redact = make_redactor().redact_text
        self.errors.append(redact(message))
        if failed_call is not None:
            self.failed_calls.append(redact(failed_call))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset, "roles": self.roles, "train": {"passed": self.train_passed, "n": self.train_n},
            "evidence_runs": self.evidence_runs, "batches": self.batches, "baseline_dev": self.baseline_dev,
            "variants": [{**v.__dict__, "status": v.status} for v in self.variants], "best": self.best,
            "early_stop": self.early_stop, "proposed": self.proposed, "reasons": self.reasons,
            "errors": self.errors, "files": sorted(self.files), "changes": self.changes,
            "cost": self.cost.to_dict() if self.cost is not None else [],
            "gate": {"passed": self.decision.passed, "reasons": self.decision.reasons} if self.decision else None,
            "applied": self.applied, "reason": self.reason,
            "pr": getattr(self.publish, "pr_url", None) or getattr(self.publish, "branch", None),
        }


def _identity(settings: Settings, role: str, model: Any) -> str:
    from selfheal.optimize.roles import role_identity

    if model is None:
        return role_identity(settings, role)  # type: ignore[arg-type]
    return str(getattr(model, "model_name", None) or getattr(model, "identity", None) or type(model).__name__)


def _rate(result: ExperimentResult) -> tuple[float, int, int]:
    from selfheal.evaluation.compare import rate_summary

    s = rate_summary(result.results)
    return s.rate, s.passed, s.n


def _entry_evidence(settings: Settings) -> dict[str, tuple[int, int]]:
    """id -> (helpful, harmful) from the entries' counters (the user's state)."""
    from selfheal.cheatsheet.counters import CounterStore

    try:
        with CounterStore.from_settings(settings) as counters:
            return {k: (v.helpful, v.harmful) for k, v in counters.all().items()}
    except Exception:  # no state yet
        return {}


#: At most this many stored runs (``since``) join the evidence.
STORED_RUNS = 200


def stored_runs(store: Any, settings: Settings, ds: Any, *, since: Any, train_split: str,
                exclude: set[str]) -> list[tuple[str, str | None]]:
    """(run id, scenario) of stored root runs in the window that may be learned from.

    Runs with a verdict only; never an optimizer's own runs, and never a run of
    a dev or test example (learning from them would leak the held-out splits
    into the variants they are meant to judge).
    """
    held_out = {ex.name for ex in ds.examples if ex.split != train_split}
    roots = store.query_runs(None, project=settings.tracing.project, since=since, is_root=True, limit=STORED_RUNS)
    out = []
    for r in roots:
        md = r.metadata or {}
        scenario = md.get("scenario")
        if ("success" not in md or str(r.id) in exclude or "optimize_run" in md or "optimize" in (r.tags or [])
                or scenario in held_out):
            continue
        out.append((str(r.id), str(scenario) if scenario else None))
    return out


def optimize_context(
    settings: Settings,
    *,
    dataset: str | None = None,
    train_split: str = "train",
    dev_split: str = "dev",
    test_split: str = "test",
    names: list[str] | None = None,
    epochs: int | None = None,
    jobs: int = 1,
    model_factory: Callable[[], BaseChatModel] | None = None,
    reflector_model: BaseChatModel | None = None,
    curator_model: BaseChatModel | None = None,
    apply: bool = False,
    publish: bool = False,
    progress: bool = False,
    on_event: Callable[[str], None] | None = None,
    since: str | None = None,
    now: datetime | None = None,
    base: str | None = None,
    reason: str | None = None,
    keep_dir: Path | None = None,
) -> ContextOptReport:
    """Optimize the context on ``train_split`` traces, select on ``dev_split``, confirm on ``test_split``.

    ``model_factory`` builds the agent's model (default: settings); the roles'
    models default to ``model.roles.*``. ``since`` (``7d``, ``all``, a date)
    adds the stored runs of that window to the evidence (train examples and
    unlabelled production runs; never dev/test examples). ``apply`` writes an accepted variant
    into the working tree, ``publish`` opens it as a branch + PR (against ``base``) instead; with
    ``publish`` the base branch, remote, token and rate limit are checked before any model call.
    ``reason`` (why it runs: a user's request, "schedule") heads the report and so the PR body.
    """
    plan = None
    if publish:
        from selfheal.gitops.preflight import plan_publish

        plan = plan_publish(settings, "optimize", base=base)
    from selfheal.cheatsheet.store import load_cheatsheet
    from selfheal.context.loader import load_context
    from selfheal.evaluation.dataset import load_dataset
    from selfheal.evaluation.runner import run_experiment
    from selfheal.optimize.batch_reflect import RunEvidence, build_batches, ground_truths, reflect_batch
    from selfheal.optimize.context_curator import lessons_as_entries, propose_deltas
    from selfheal.optimize.cost import CostMeter
    from selfheal.optimize.digest import digest_from_store
    from selfheal.optimize.roles import make_role_model
    from selfheal.optimize.variants import Variant, context_size, materialize, tool_pairs
    from selfheal.tracing.store import LocalTraceStore

    opt = settings.optimize
    epochs = epochs or opt.epochs
    now = now or datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S")
    say = on_event or (lambda _m: None)
    ds = load_dataset(settings, dataset)
    train = ds.select(train_split, names=names)
    if not train:
        raise SelfhealError(f"dataset '{ds.name}' has no examples in split '{train_split}'")
    if not ds.select(dev_split):
        raise SelfhealError(f"dataset '{ds.name}' has no examples in split '{dev_split}' to select variants on")
    built: dict[str, Any] = {"reflector": reflector_model, "curator": curator_model}

    def role_model(role: str) -> Any:
        """Built on first use: a run whose train split all succeeds never loads a learning model."""
        if built[role] is None:
            built[role] = make_role_model(settings, role)  # type: ignore[arg-type]
        return built[role]

    from selfheal.models.providers import model_identity

    roles = {"agent": model_identity(settings) if model_factory is None else "custom agent model",
             "reflector": _identity(settings, "reflector", reflector_model),
             "curator": _identity(settings, "curator", curator_model)}
    report = ContextOptReport(dataset=ds.name, roles=roles, reason=reason)
    meter = report.cost = CostMeter()
    tools = tool_pairs(settings)

    def experiment(run_settings: Settings, split: str, label: str, phase: str) -> ExperimentResult:
        result = run_experiment(run_settings, ds, split=split, names=names if split == train_split else None,
                                jobs=jobs, model_factory=model_factory, progress=progress, git_ref=label,
                                experiment_name=f"optimize-{ds.name}-{split}-{label}-{stamp}".replace(" ", "-"))
        meter.add_experiment(result, phase)
        return result

    store = LocalTraceStore.from_settings(settings)
    try:
        from selfheal.tracing.tracer import LocalTracer

        def role_config(role: str) -> dict[str, Any]:
            tracer = LocalTracer(store, settings.tracing.project, background=False, tags=["optimize", role],
                                 metadata={"selfheal_role": role, "role_model": roles[role], "optimize_run": stamp})
            return {"callbacks": [tracer, meter], "run_name": f"optimize-{role}"}

        # 1. collect ------------------------------------------------------------------------
        truths = ground_truths(settings, train)

        def collect(run_settings: Settings, label: str) -> list[RunEvidence]:
            """Run the train split with ``run_settings``' context; its runs as evidence."""
            say(f"collect: running {len(train)} {train_split} example(s) with the {label} context")
            result = experiment(run_settings, train_split, label, "collect")
            sheet = load_cheatsheet(run_settings.cheatsheet_dir)
            out = []
            for r in result.results:
                if not r.run_id:
                    continue
                store.merge_metadata(r.run_id, {"optimize_run": stamp})  # not "stored evidence" later
                try:
                    ex = ds.get(r.name)
                    digest = digest_from_store(store, r.run_id, reference=ex.success if ex else None, cheatsheet=sheet)
                except SelfhealError as exc:
                    report.add_error(f"run {r.run_id}: {exc.message}")
                    continue
                out.append(RunEvidence(digest, r.name, truths.get(r.name)))
            if label == "current":
                _r, report.train_passed, report.train_n = _rate(result)
            return out

        stored: list[RunEvidence] = []
        with meter.phase("collect"):
            evidence = collect(settings, "current")
            if since:
                from selfheal.optimize.offline import parse_since

                sheet = load_cheatsheet(settings.cheatsheet_dir)
                seen = {e.run_id for e in evidence}
                for run_id, scenario in stored_runs(store, settings, ds, since=parse_since(since),
                                                    train_split=train_split, exclude=seen):
                    try:
                        digest = digest_from_store(store, run_id, cheatsheet=sheet)
                    except SelfhealError as exc:
                        report.add_error(f"run {run_id}: {exc.message}")
                        continue
                    stored.append(RunEvidence(digest, scenario, truths.get(scenario) if scenario else None))
            report.evidence_runs = len(evidence) + len(stored)
            batches = build_batches([*evidence, *stored], batch_size=opt.batch_size)
            report.batches = len(batches)
        if not batches:
            report.reasons.append(f"nothing to learn from: all {report.train_n} {train_split} run(s) succeeded")
            return report

        counters = _entry_evidence(settings)
        tag_evidence: dict[str, list[int]] = {}
        base_size = context_size(settings, tools)
        with scratch_dir(settings.state_dir, "selfheal-ctxopt-", "optimize") as tmp:
            work = Path(tmp)
            with meter.phase("select"):
                base_dev = experiment(settings, dev_split, "current", "select")
            best_score, passed, n = _rate(base_dev)
            report.baseline_dev = best_score
            say(f"dev: current context {passed}/{n}")
            best_variant: Variant = Variant("current")
            best_mat: Materialized | None = None
            stale = 0
            count = 0
            scored: dict[tuple[str, ...], str] = {}  # a variant's deltas -> the variant that had them
            stop = False
            collected_with = "current"
            for epoch in range(1, epochs + 1):
                if best_variant.name != collected_with and best_mat is not None:
                    # ACE's next epoch: the generator runs the train split again with the evolved context.
                    with meter.phase("collect"):
                        evidence = collect(best_mat.settings, best_variant.name)
                        batches = build_batches([*evidence, *stored], batch_size=opt.batch_size)
                    collected_with = best_variant.name
                    report.evidence_runs += len(evidence)
                    report.batches += len(batches)
                    if not batches:
                        report.early_stop = (f"stopped after epoch {epoch - 1}: every {train_split} run succeeds "
                                             f"with {best_variant.name}, nothing left to learn")
                        break
                for batch in batches:
                    if count >= opt.max_variants:
                        report.early_stop = f"reached optimize.max_variants ({opt.max_variants})"
                        stop = True
                        break
                    best_ctx = load_context((best_mat.settings if best_mat else settings).prompts_dir)
                    shown_sheet = load_cheatsheet((best_mat.settings if best_mat else settings).cheatsheet_dir)
                    with meter.phase("reflect"):
                        try:
                            reflection = reflect_batch(role_model("reflector"), batch, config=role_config("reflector"))
                        except SelfhealError as exc:
                            report.add_error(f"epoch {epoch}: reflection failed: {exc.message}",
                                             failed_call=exc.message)
                            continue
                    for entry_id, tag in reflection.entry_tags.items():
                        h = tag_evidence.setdefault(entry_id, [0, 0])
                        h[0] += tag == "helpful"
                        h[1] += tag == "harmful"
                    entries = [e for i in batch.entry_ids if (e := shown_sheet.get(i)) is not None]
                    with meter.phase("curate"):
                        try:
                            proposal = propose_deltas(role_model("curator"), reflection, batch, best_ctx, entries,
                                                      [t for t, _ in tools], config=role_config("curator"))
                        except SelfhealError as exc:
                            report.add_error(f"epoch {epoch}: curation failed: {exc.message}",
                                             failed_call=exc.message)
                            continue
                    for r in proposal.rejected:
                        report.add_error(f"epoch {epoch}: rejected op {r}")
                    if proposal.empty:
                        continue
                    count += 1
                    candidate = best_variant.extend(proposal, f"v{count}")
                    evidence_ids = {k: (v[0] + t[0], v[1] + t[1]) for k in set(counters) | set(tag_evidence)
                                    for v in [counters.get(k, (0, 0))] for t in [tag_evidence.get(k, [0, 0])]}
                    mat = materialize(settings, candidate, work / candidate.name, tools=tools, base_size=base_size,
                                      evidence=evidence_ids, now=now)
                    if not _applied_beyond(mat, best_mat):
                        fallback = lessons_as_entries(reflection, batch)
                        if not fallback.empty:  # the Curator's deltas changed nothing: keep the lessons instead
                            report.add_error(f"{candidate.name}: the Curator's {len(mat.rejected_ops)} "
                                             "operation(s) changed nothing; the Reflector's lessons were "
                                             "proposed as entries instead")
                            candidate = best_variant.extend(fallback, candidate.name)
                            mat = materialize(settings, candidate, work / f"{candidate.name}-lessons", tools=tools,
                                              base_size=base_size, evidence=evidence_ids, now=now)
                    if best_mat is not None and mat.ok and not _applied_beyond(mat, best_mat):
                        mat.problems.append("changes nothing beyond its parent: every new delta was rejected")
                    # at temperature 0 an epoch that changed nothing reflects the same runs the same way
                    same = scored.get(tuple(sorted(mat.lines)))
                    if mat.ok and same is not None:
                        mat.problems.append(f"the same deltas as {same}, already scored on {dev_split}")
                    elif mat.ok:
                        scored[tuple(sorted(mat.lines))] = candidate.name
                    rec = VariantRecord(candidate.name, candidate.parent, epoch, mat.lines, mat.rejected_ops,
                                        mat.problems, runs=candidate.runs)
                    report.variants.append(rec)
                    if not mat.ok:
                        say(f"{candidate.name}: rejected — {'; '.join(mat.problems)}")
                        stale += 1
                    else:
                        with meter.phase("select"):
                            dev = experiment(mat.settings, dev_split, candidate.name, "select")
                        rec.dev_score, rec.dev_passed, rec.dev_n = _rate(dev)
                        say(f"{candidate.name}: dev {rec.dev_passed}/{rec.dev_n} ({len(mat.lines)} delta(s))")
                        if rec.dev_score > best_score + 1e-9:
                            best_score, best_variant, best_mat, stale = rec.dev_score, candidate, mat, 0
                        else:
                            stale += 1
                    if stale >= opt.patience:
                        report.early_stop = (f"stopped early in epoch {epoch}: {stale} variant(s) in a row did not "
                                             f"improve the dev score (optimize.patience {opt.patience})")
                        stop = True
                        break
                if stop:
                    break
            for rec in report.variants:
                rec.kept = rec.name == best_variant.name
            report.best = best_variant.name
            if best_mat is None:
                if report.failed_calls and not report.variants:  # not a verdict on the method: its calls failed
                    report.reasons.append(
                        f"no variant to score: {len(report.failed_calls)} learning call(s) failed and none produced "
                        f"a delta ({report.failed_calls[0]})"
                    )
                else:
                    report.reasons.append(
                        f"no variant beat the current context on the {dev_split} split "
                        f"(current {report.baseline_dev:.0%}; {len(report.variants)} variant(s) tried, "
                        f"{sum(1 for v in report.variants if v.problems)} rejected)"
                    )
                report.markdown = render_markdown(report)
                return report
            report.changes = list(best_mat.lines)
            report.files = _changed(settings, best_mat)
            if keep_dir is not None:
                keep_variant(settings, best_mat, keep_dir)
            _confirm(settings, report, best_mat, ds, test_split, experiment, meter)
            report.markdown = render_markdown(report)
            if report.proposed and publish:
                report.publish = _publish(settings, report, best_variant, test_split, plan)
            elif report.proposed and apply:
                from selfheal.optimize.offline import _write_working_tree

                _write_working_tree(settings.root, report.files)
                report.applied = True
            return report
    finally:
        store.close()


def _changed(settings: Settings, mat: Materialized) -> dict[str, str | None]:
    from selfheal.optimize.offline import changed_files

    def rel(p: Path) -> Path:
        return p.relative_to(settings.root) if p.is_relative_to(settings.root) else Path(p.name)

    files = changed_files(settings.prompts_dir, mat.settings.prompts_dir, rel(settings.prompts_dir))
    files.update(changed_files(settings.cheatsheet_dir, mat.settings.cheatsheet_dir, rel(settings.cheatsheet_dir)))
    return files


def _applied_beyond(mat: Materialized, parent: Materialized | None) -> bool:
    """Whether ``mat`` applied any delta its parent variant did not."""
    return bool(mat.lines) and (parent is None or mat.lines != parent.lines)


def keep_variant(settings: Settings, mat: Materialized, keep_dir: Path) -> None:
    """Copy the best dev variant's prompts and cheatsheet under ``keep_dir`` (for review, or to evaluate it
    elsewhere), whether or not the test split confirms it; replaced whole, never half-written."""
    import shutil
    import tempfile

    keep_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{keep_dir.name}-", dir=keep_dir.parent))
    try:
        pairs = ((mat.settings.prompts_dir, settings.prompts_dir), (mat.settings.cheatsheet_dir, settings.cheatsheet_dir))
        for src, where in pairs:  # laid out as in the repository: prompts/<agent>, cheatsheet/<agent>
            if src.is_dir():
                shutil.copytree(src, tmp / where.resolve().relative_to(settings.root.resolve()))
        if keep_dir.exists():
            shutil.rmtree(keep_dir)
        tmp.rename(keep_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _confirm(settings: Settings, report: ContextOptReport, mat: Materialized, ds: Any, test_split: str,
             experiment: Callable[..., Any], meter: Any) -> None:
    """Best variant vs the current context on the test split: the gate, significance, per task type."""
    from selfheal.evaluation.compare import compare
    from selfheal.evaluation.gate import GateConfig, decide

    if not ds.select(test_split):
        report.reasons.append(f"dataset '{ds.name}' has no '{test_split}' split to confirm the best variant on")
        return
    with meter.phase("confirm"):
        baseline = experiment(settings, test_split, "current", "confirm")
        candidate = experiment(mat.settings, test_split, report.best, "confirm")
    comparison = report.comparison = compare(baseline, candidate)
    config = GateConfig.from_settings(settings)
    decision = report.decision = decide(comparison, config)
    o = comparison.overall
    reasons = [f"the eval gate failed: {r}" for r in decision.reasons]
    if not (o.candidate.rate > o.baseline.rate and o.mcnemar_p < config.alpha):
        reasons.append(
            f"not significantly better on {test_split}: {o.baseline.passed}/{o.baseline.n} -> "
            f"{o.candidate.passed}/{o.candidate.n}, {o.fail_to_pass} fail->pass vs {o.pass_to_fail} pass->fail, "
            f"McNemar p = {o.mcnemar_p:.3g} (needs < {config.alpha:g})"
        )
    for g in comparison.by_task_type:
        if g.n_paired and -g.difference > config.margin + 1e-9:
            reasons.append(
                f"task type {g.group} regresses {-g.difference * 100:.0f} points ({g.baseline.passed}/{g.baseline.n} "
                f"-> {g.candidate.passed}/{g.candidate.n}), beyond the {config.margin * 100:.0f}-point margin"
            )
    report.reasons += reasons
    report.proposed = not reasons


def render_markdown(report: ContextOptReport) -> str:
    """The report (and PR body): roles, variants with their deltas and dev scores, the test gate, cost."""
    from selfheal.evaluation.report import to_markdown

    lines = ["## Context optimization", ""]
    if report.reason:
        lines.append(f"- trigger: {report.reason}")
    lines += [f"- {role}: `{ident}`" for role, ident in report.roles.items()]
    lines += [f"- evidence: {report.evidence_runs} train run(s) ({report.train_passed}/{report.train_n} passed), "
              f"{report.batches} reflection batch(es)"]
    if report.baseline_dev is not None:
        lines.append(f"- dev: current context {report.baseline_dev:.0%}; best variant: {report.best}")
    if report.early_stop:
        lines.append(f"- {report.early_stop}")
    lines += ["", "### Variants", "", "| variant | parent | epoch | dev | status |", "|---|---|---|---|---|"]
    for v in report.variants:
        dev = f"{v.dev_passed}/{v.dev_n}" if v.dev_score is not None else "-"
        status = v.status + (f": {'; '.join(v.problems)}" if v.problems else "")
        lines.append(f"| {v.name} | {v.parent or '-'} | {v.epoch} | {dev} | {status} |")
    if report.changes:
        lines += ["", "### Deltas of the best variant (with provenance)", ""]
        lines += [f"- {c}" for c in report.changes]
    lines += ["", "### Decision", ""]
    lines += [f"- proposed: {'yes' if report.proposed else 'no'}"] + [f"- {r}" for r in report.reasons]
    if report.comparison is not None:
        lines += ["", to_markdown(comparison=report.comparison, decision=report.decision)]
    if report.errors:
        lines += ["", "### Problems on the way", ""] + [f"- {e}" for e in report.errors]
    if report.cost is not None:
        lines += ["", "### Cost", "", report.cost.markdown()]
    return "\n".join(lines) + "\n"


def _publish(settings: Settings, report: ContextOptReport, variant: Variant, split: str, plan: Any = None) -> Any:
    from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange
    from selfheal.gitops.publish import publish_change

    o = report.comparison.overall
    change = ChangeSet(
        kind="optimize",
        title=f"selfheal: context optimized ({len(report.changes)} deltas, {split} "
              f"{o.baseline.rate:.0%} -> {o.candidate.rate:.0%})",
        summary=report.changes or [f"{len(report.files)} files changed"],
        files=[FileChange(path=p, content=c) for p, c in report.files.items()],
        trace_ids=variant.runs,
        eval_summary=EvalSummary(baseline_rate=o.baseline.rate, candidate_rate=o.candidate.rate, n=o.n_paired,
                                 p_value=o.mcnemar_p, dataset=report.dataset, split=split,
                                 report_markdown=report.markdown),
        model="; ".join(f"{k}: {v}" for k, v in report.roles.items()),
    )
    return publish_change(settings, change, plan=plan)
