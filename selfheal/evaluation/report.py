"""Evaluation reports: Markdown for a PR comment, JSON for machines, rich tables for a terminal.

The Markdown starts with a stable HTML marker so a CI job can find and update
its one comment instead of adding a new one per push. Every report ends with
provenance (model, dataset hash, versions, cache mode, refs): a number nobody
can reproduce is not evidence.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from selfheal.evaluation.compare import (
    ALL,
    Comparison,
    GroupComparison,
    Provenance,
    RateSummary,
    rate_summary,
)
from selfheal.evaluation.gate import GateDecision
from selfheal.evaluation.results import ExperimentResult
from selfheal.evaluation.stats import DeltaSummary, Interval

if TYPE_CHECKING:
    from rich.console import Console

MARKER = "<!-- selfheal-eval -->"
JSON_SCHEMA_VERSION = 1
DATASET_NOTE = (
    "Both sides ran the working tree's dataset (the dataset is the instrument);"
    " only the context and cheatsheet differ."
)


# -- formatting -----------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _ci(ci: Interval | None) -> str:
    return "-" if ci is None else f"[{ci.low * 100:.1f}%, {ci.high * 100:.1f}%]"


def _rate(s: RateSummary) -> str:
    return f"{_pct(s.rate)} ({s.passed}/{s.n})"


def _signed(x: float | None, fmt: str = "{:+.1f}", unit: str = "") -> str:
    return "-" if x is None else fmt.format(x) + unit


def _points(x: float) -> str:
    return f"{x * 100:+.1f} pts"


def _delta(d: DeltaSummary, fmt: str, unit: str) -> str:
    if d.n == 0:
        return "-"
    return f"{_signed(d.mean, fmt, unit)} mean, {_signed(d.median, fmt, unit)} median"


def _p(p: float) -> str:
    return f"{p:.3g}"


def _cell(text: Any) -> str:
    """A value safe inside a Markdown table cell."""
    return str(text if text is not None else "-").replace("|", "\\|").replace("\n", " ").strip() or "-"


def _code(text: str | None, n: int | None = None) -> str:
    if not text:
        return "-"
    return f"`{_cell(text[:n] if n else text)}`"


def _version(v: str) -> str:
    """A short version id that keeps the ``-dirty`` / ``nogit-`` marks a reviewer must see."""
    from selfheal.versioning import DIRTY_SUFFIX, NOGIT_PREFIX

    dirty = v.endswith(DIRTY_SUFFIX)
    core = v[: -len(DIRTY_SUFFIX)] if dirty else v
    keep = len(NOGIT_PREFIX) + 12 if core.startswith(NOGIT_PREFIX) else 12
    return core[:keep] + (DIRTY_SUFFIX if dirty else "")


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return out


def _side(p: Provenance, default: str) -> str:
    if p.git_ref:
        return f"{p.git_ref} @ {p.git_commit[:12]}" if p.git_commit else p.git_ref
    return default


def _verdict(decision: GateDecision | None) -> str:
    if decision is None:
        return "not gated"
    return "✅ passed" if decision.passed else "❌ failed"


NO_VERDICT = "errors / timeouts / cache misses"


def _status(passed: bool, status: str) -> str:
    if status != "ok":
        return status.replace("_", " ")  # "error", "timeout", "cache miss": never "pass" or "fail"
    return "pass" if passed else "fail"


def _no_verdict(s: RateSummary) -> str:
    return f"{s.errors} / {s.timeouts} / {s.cache_misses}"


def _side_no_verdict(c: Comparison, side: str) -> str:
    return " / ".join(str(getattr(c, f"{side}_{k}")) for k in ("errors", "timeouts", "cache_misses"))


# -- Markdown -------------------------------------------------------------------
def _provenance_md(sides: list[tuple[str, Provenance]]) -> list[str]:
    header = ["", *[label for label, _ in sides]]
    fields: list[tuple[str, Any]] = [
        ("model", lambda p: _code(p.model)),
        ("dataset", lambda p: f"{p.dataset} @ {_code(p.dataset_hash, 12)}"),
        ("split", lambda p: p.split),
        ("context version", lambda p: _code(_version(p.context_version))),
        ("cheatsheet version", lambda p: _code(_version(p.cheatsheet_version))),
        ("cache mode", lambda p: p.cache_mode + (f": {p.cache_note}" if p.cache_note else "")),
        ("git ref", lambda p: _side(p, "working tree")),
        ("experiment", lambda p: f"{p.name} ({_code(p.experiment_id)})"),
        ("started", lambda p: p.started_at.strftime("%Y-%m-%d %H:%M:%S")),
    ]
    return _table(header, [[name, *[f(p) for _, p in sides]] for name, f in fields])


def _comparison_md(c: Comparison, decision: GateDecision | None) -> list[str]:
    o = c.overall
    base_label = f"baseline ({_side(c.baseline, 'working tree')})"
    cand_label = f"candidate ({_side(c.candidate, 'working tree')})"
    lines = [f"**Verdict: {_verdict(decision)}**", ""]
    if decision is not None:
        lines += [f"- {r}" for r in decision.reasons] + [f"- {n}" for n in decision.notes]
        lines.append("")
    lines += [w for w in (f"> ⚠️ {w}" for w in c.warnings)]
    if c.warnings:
        lines.append("")
    lines += _table(
        ["", base_label, cand_label, "change"],
        [
            ["success rate", _rate(o.baseline), _rate(o.candidate), _points(o.difference)],
            ["95% CI (Wilson)", _ci(o.baseline.ci), _ci(o.candidate.ci), ""],
            ["McNemar p (paired)", "", "", f"{_p(o.mcnemar_p)} ({o.pass_to_fail} pass→fail, {o.fail_to_pass} fail→pass)"],
            ["mean score change (95% bootstrap CI)", "", "",
             f"{_signed(o.score_diff_mean, '{:+.3f}')} {_ci_plain(o.score_diff_ci)}"],
            [NO_VERDICT, _side_no_verdict(c, "baseline"), _side_no_verdict(c, "candidate"), ""],
            ["tokens per example", "", "", _delta(o.tokens, "{:+.0f}", "")],
            ["latency per example", "", "", _delta(o.latency_s, "{:+.2f}", " s")],
        ],
    )
    lines += ["", f"{o.n_paired} paired example(s). {DATASET_NOTE}", ""]

    flips = [("pass → fail", f) for f in c.pass_to_fail] + [("fail → pass", f) for f in c.fail_to_pass]
    lines.append(f"### Flips ({len(c.pass_to_fail)} pass → fail, {len(c.fail_to_pass)} fail → pass)")
    lines.append("")
    if flips:
        lines += _table(
            ["example", "task type", "change", "baseline run", "candidate run", "note"],
            [[f.name, f.task_type, kind, _code(f.baseline_run_id), _code(f.candidate_run_id),
              f.candidate_error or (f.candidate_status if f.candidate_status != "ok" else "")]
             for kind, f in flips],
        )
    else:
        lines.append("No example changed outcome.")
    lines.append("")
    if c.only_in_baseline or c.only_in_candidate:
        lines += ["### Not paired", ""]
        lines += _table(
            ["example", "task type", "only in"],
            [[u.name, u.task_type, "baseline"] for u in c.only_in_baseline]
            + [[u.name, u.task_type, "candidate"] for u in c.only_in_candidate],
        )
        lines.append("")
    lines += ["### By task type", ""]
    lines += _table(
        ["task type", "n", "baseline", "candidate", "change", "McNemar p", "Δ tokens (mean)", "Δ latency (mean)"],
        [[g.group, g.n_paired, _rate(g.baseline), _rate(g.candidate), _points(g.difference), _p(g.mcnemar_p),
          _signed(g.tokens.mean, "{:+.0f}"), _signed(g.latency_s.mean, "{:+.2f}", " s")] for g in c.by_task_type],
    )
    lines += ["", f"<details><summary>All {len(c.examples)} paired examples</summary>", ""]
    lines += _table(
        ["example", "task type", "baseline", "candidate", "score", "tokens", "latency", "candidate run"],
        [[e.name, e.task_type, _status(e.baseline_passed, e.baseline_status),
          _status(e.candidate_passed, e.candidate_status),
          f"{e.baseline_score:.2f} → {e.candidate_score:.2f}",
          f"{e.baseline_tokens} → {e.candidate_tokens}",
          f"{e.baseline_latency_s:.2f} → {e.candidate_latency_s:.2f} s",
          _code(e.candidate_run_id)] for e in c.examples],
    )
    lines += ["", "</details>", "", "### Provenance", ""]
    lines += _provenance_md([("baseline", c.baseline), ("candidate", c.candidate)])
    return lines


def _ci_plain(ci: Interval | None) -> str:
    return "" if ci is None else f"[{ci.low:+.3f}, {ci.high:+.3f}]"


def _by_type(result: ExperimentResult) -> list[tuple[str, RateSummary]]:
    types = sorted({r.task_type for r in result.results})
    return [(t, rate_summary(r for r in result.results if r.task_type == t)) for t in types]


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _single_md(r: ExperimentResult, decision: GateDecision | None) -> list[str]:
    s = rate_summary(r.results)
    lines = [f"**Verdict: {_verdict(decision)}**", ""]
    if decision is not None:
        lines += [f"- {x}" for x in decision.reasons] + [f"- {n}" for n in decision.notes]
        lines.append("")
    tokens = _mean([float(x.total_tokens) for x in r.results])
    latency = _mean([x.latency_s for x in r.results])
    score = _mean([x.score for x in r.results])
    lines += _table(
        ["", _side(Provenance.of(r), "working tree")],
        [
            ["success rate", _rate(s)],
            ["95% CI (Wilson)", _ci(s.ci)],
            ["mean score", "-" if score is None else f"{score:.3f}"],
            [NO_VERDICT, _no_verdict(s)],
            ["tokens per example (mean)", "-" if tokens is None else f"{tokens:.0f}"],
            ["latency per example (mean)", "-" if latency is None else f"{latency:.2f} s"],
        ],
    )
    lines += ["", "### By task type", ""]
    lines += _table(["task type", "n", "success rate", "95% CI", NO_VERDICT],
                    [[t, g.n, _rate(g), _ci(g.ci), _no_verdict(g)] for t, g in _by_type(r)])
    lines += ["", f"<details><summary>All {r.n} examples</summary>", ""]
    lines += _table(
        ["example", "task type", "outcome", "score", "tokens", "latency", "run", "error"],
        [[x.name, x.task_type, _status(x.passed, x.status), f"{x.score:.2f}", x.total_tokens,
          f"{x.latency_s:.2f} s", _code(x.run_id), x.error or ""] for x in r.results],
    )
    lines += ["", "</details>", "", "### Provenance", ""]
    lines += _provenance_md([("experiment", Provenance.of(r))])
    return lines


def to_markdown(
    single: ExperimentResult | None = None,
    comparison: Comparison | None = None,
    decision: GateDecision | None = None,
) -> str:
    """A PR-comment report of one experiment, or of a comparison (which wins when both are given)."""
    if comparison is None and single is None:
        raise ValueError("to_markdown needs an experiment or a comparison")
    title = "selfheal eval"
    if comparison is not None:
        title += f": {_side(comparison.candidate, 'working tree')} vs {_side(comparison.baseline, 'working tree')}"
        body = _comparison_md(comparison, decision)
    else:
        assert single is not None
        title += f": {single.dataset} ({single.split})"
        body = _single_md(single, decision)
    return "\n".join([MARKER, f"## {title}", "", *body]) + "\n"


# -- JSON -----------------------------------------------------------------------
def to_dict(
    single: ExperimentResult | None = None,
    comparison: Comparison | None = None,
    decision: GateDecision | None = None,
) -> dict[str, Any]:
    """The machine report: always the same top-level keys, ``null`` where not applicable."""
    summary = None
    if single is not None:
        s = rate_summary(single.results)
        summary = {
            "overall": s.model_dump(mode="json"),
            "by_task_type": {t: g.model_dump(mode="json") for t, g in _by_type(single)},
        }
    return {
        "schema_version": JSON_SCHEMA_VERSION,
        "verdict": None if decision is None else ("pass" if decision.passed else "fail"),
        "decision": None if decision is None else decision.model_dump(mode="json"),
        "experiment": None if single is None else single.model_dump(mode="json"),
        "summary": summary,
        "comparison": None if comparison is None else comparison.model_dump(mode="json"),
    }


def to_json(
    single: ExperimentResult | None = None,
    comparison: Comparison | None = None,
    decision: GateDecision | None = None,
) -> str:
    """:func:`to_dict` as indented JSON text."""
    return json.dumps(to_dict(single, comparison, decision), indent=2, ensure_ascii=False) + "\n"


# -- terminal -------------------------------------------------------------------
def _group_row(g: GroupComparison) -> list[str]:
    return [g.group, str(g.n_paired), _rate(g.baseline), _rate(g.candidate), _points(g.difference), _p(g.mcnemar_p)]


def render_table(
    console: Console,
    single: ExperimentResult | None = None,
    comparison: Comparison | None = None,
    decision: GateDecision | None = None,
) -> None:
    """The report as rich tables for a terminal."""
    from rich.markup import escape
    from rich.table import Table

    if comparison is not None:
        c = comparison
        o = c.overall
        t = Table(title=f"{escape(_side(c.candidate, 'working tree'))} vs {escape(_side(c.baseline, 'working tree'))}")
        for col in ("", "baseline", "candidate", "change"):
            t.add_column(col)
        t.add_row("success rate", _rate(o.baseline), _rate(o.candidate), _points(o.difference))
        t.add_row("95% CI", _ci(o.baseline.ci), _ci(o.candidate.ci), "")
        t.add_row("McNemar p", "", "", f"{_p(o.mcnemar_p)} ({o.pass_to_fail}↓ {o.fail_to_pass}↑)")
        t.add_row("mean score", "", "", f"{_signed(o.score_diff_mean, '{:+.3f}')} {_ci_plain(o.score_diff_ci)}")
        t.add_row(NO_VERDICT, _side_no_verdict(c, "baseline"), _side_no_verdict(c, "candidate"), "")
        t.add_row("tokens", "", "", _delta(o.tokens, "{:+.0f}", ""))
        t.add_row("latency", "", "", _delta(o.latency_s, "{:+.2f}", " s"))
        console.print(t)
        for w in c.warnings:
            console.print(f"[yellow]warning:[/] {escape(w)}")
        if c.pass_to_fail or c.fail_to_pass:
            ft = Table(title="Flips")
            for col in ("example", "task type", "change", "candidate run"):
                ft.add_column(col)
            for f in c.pass_to_fail:
                ft.add_row(escape(f.name), escape(f.task_type), "[red]pass → fail[/]", f.candidate_run_id or "-")
            for f in c.fail_to_pass:
                ft.add_row(escape(f.name), escape(f.task_type), "[green]fail → pass[/]", f.candidate_run_id or "-")
            console.print(ft)
        if c.by_task_type:
            bt = Table(title="By task type")
            for col in ("task type", "n", "baseline", "candidate", "change", "p"):
                bt.add_column(col)
            for g in c.by_task_type:
                bt.add_row(*[escape(x) for x in _group_row(g)])
            console.print(bt)
        for u in c.only_in_baseline:
            console.print(f"[dim]only in baseline: {escape(u.name)}[/]")
        for u in c.only_in_candidate:
            console.print(f"[dim]only in candidate: {escape(u.name)}[/]")
        sides = [("baseline", c.baseline), ("candidate", c.candidate)]
    elif single is not None:
        s = rate_summary(single.results)
        t = Table(title=f"{escape(single.dataset)} ({escape(single.split)})")
        for col in ("task type", "n", "success rate", "95% CI", NO_VERDICT):
            t.add_column(col)
        for name, g in _by_type(single):
            t.add_row(escape(name), str(g.n), _rate(g), _ci(g.ci), _no_verdict(g))
        t.add_row(f"[bold]{ALL}[/]", str(s.n), _rate(s), _ci(s.ci), _no_verdict(s))
        console.print(t)
        et = Table(title="Examples")
        for col in ("example", "task type", "outcome", "score", "tokens", "latency", "run"):
            et.add_column(col)
        for x in single.results:
            outcome = _status(x.passed, x.status)
            style = "green" if outcome == "pass" else "red"
            et.add_row(escape(x.name), escape(x.task_type), f"[{style}]{outcome}[/]", f"{x.score:.2f}",
                       str(x.total_tokens), f"{x.latency_s:.2f} s", x.run_id or "-")
        console.print(et)
        sides = [("experiment", Provenance.of(single))]
    else:
        raise ValueError("render_table needs an experiment or a comparison")
    for label, p in sides:
        console.print(
            f"[dim]{label}: model {escape(p.model)} · dataset {escape(p.dataset)}@{p.dataset_hash[:12]} · "
            f"split {escape(p.split)} · context {_version(p.context_version)} · cheatsheet {_version(p.cheatsheet_version)} · "
            f"cache {escape(p.cache_mode)} · {escape(_side(p, 'working tree'))} · experiment {p.experiment_id}[/]"
        )
        if p.cache_note:
            console.print(f"[dim]{label} cache: {escape(p.cache_note)}[/]")
    if decision is not None:
        colour = "green" if decision.passed else "red"
        console.print(f"[bold {colour}]gate {'passed' if decision.passed else 'failed'}[/]")
        for n in decision.notes:
            console.print(f"[dim]{escape(n)}[/]")
