"""``selfheal report``: one self-contained HTML file that shows how the agent is doing and what changed it.

Self-contained means viewable offline from a CI artifact: the CSS, the one
small script, every chart (inline SVG from :mod:`selfheal.interact.svg`) and
the data behind them (a JSON block) are inside the file; it references no URL.
The file is written atomically.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from selfheal.interact.report_data import ReportData, collect
from selfheal.interact.svg import Bar, Marker, Series, bar_chart, interval_chart, line_chart

PLOTS = ("success_over_time", "improvements", "cheatsheet_growth", "entry_utility", "error_clusters", "tokens",
         "latest_eval")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:980px;color:#222;
background:#fff}
h1{font-size:22px;margin-bottom:4px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f5f5f5}
code{font-size:12px}.empty{color:#888;font-style:italic}figure{margin:8px 0}svg.plot{max-width:100%;height:auto}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:8px 14px}
.card b{display:block;font-size:20px}
"""

# Counts the charts once the page is laid out (a test reads data-plots-rendered from the DOM).
_JS = """
(function(){
  var plots = document.querySelectorAll('svg.plot');
  var drawn = 0;
  plots.forEach(function(p){ if (p.childElementCount > 0 && p.getBBox().width > 0) { drawn++; } });
  document.body.setAttribute('data-plots-rendered', String(drawn));
  var data = JSON.parse(document.getElementById('report-data').textContent);
  document.body.setAttribute('data-runs', String(data.runs));
})();
"""


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:.1f}%"


def _table(header: list[str], rows: list[list[str]], empty: str) -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(svg: str) -> str:
    return f"<figure>{svg}</figure>"


def _success(data: ReportData) -> str:
    series = [Series(name=tt, points=[(p.day, p.rate) for p in pts]) for tt, pts in data.success_by_type.items()]
    markers = [Marker(when=i.day, label=i.title) for i in data.improvements if i.merged]
    svg = line_chart("success_over_time", "Success rate per day and task type", series, markers=markers,
                     percent=True, y_max=1.0)
    rows = [[escape(tt), str(sum(p.runs for p in pts)), _pct(
        (sum(p.successes for p in pts) / n) if (n := sum(p.with_outcome for p in pts)) else None)]
        for tt, pts in data.success_by_type.items()]
    return (_figure(svg) + '<p class="meta">Dashed lines: merged improvements.</p>'
            + _table(["task type", "runs", "success rate"], rows, "No runs traced in this window."))


def _improvements(data: ReportData) -> str:
    with_eval = [i for i in data.improvements if i.eval is not None]
    rows3 = [(f"{i.short} {i.title}",
              Bar(label="before", value=i.eval.baseline_rate, low=i.before_ci.low if i.before_ci else None,
                  high=i.before_ci.high if i.before_ci else None),
              Bar(label="after", value=i.eval.candidate_rate, low=i.after_ci.low if i.after_ci else None,
                  high=i.after_ci.high if i.after_ci else None))
             for i in with_eval if i.eval is not None]
    svg = interval_chart("improvements", "Before and after each improvement (Wilson 95% CI)", rows3)

    def ci(c: Any) -> str:
        return "" if c is None else f" [{c.low * 100:.0f}–{c.high * 100:.0f}%]"

    rows = [[f"<code>{escape(i.short)}</code>", str(i.day), escape(i.kind), escape(i.title),
             "merged" if i.merged else "open",
             (_pct(i.eval.baseline_rate) + ci(i.before_ci)) if i.eval else "—",
             (_pct(i.eval.candidate_rate) + ci(i.after_ci)) if i.eval else "—",
             str(i.eval.n) if i.eval else "—",
             (f"{i.eval.p_value:.3g}" if i.eval and i.eval.p_value is not None else "—")]
            for i in reversed(data.improvements)]
    return _figure(svg) + _table(["commit", "date", "kind", "title", "state", "before", "after", "n", "p"], rows,
                                 "No improvement commits yet.")


def _cheatsheet(data: ReportData) -> str:
    growth = line_chart("cheatsheet_growth", "Cheatsheet entries over time",
                        [Series(name="entries", points=[(g.day, float(g.entries)) for g in data.growth])])
    top = data.entries[:12]
    utility = bar_chart("entry_utility", "Entry utility: uses, helpful and harmful tags",
                        [Bar(label=e.entry_id, value=float(e.uses), extra={
                            "uses": float(e.uses), "helpful": float(e.helpful), "harmful": float(e.harmful)})
                         for e in top], keys=("uses", "helpful", "harmful"))
    rows = [[f"<code>{escape(e.entry_id)}</code>", str(e.uses), str(e.helpful), str(e.harmful),
             _pct(e.success_rate), "—" if e.lift is None else f"{e.lift * 100:+.1f} pts"] for e in data.entries]
    return (_figure(growth) + _figure(utility) + _table(["entry", "uses", "helpful", "harmful", "success when used", "lift"], rows,
                                    "No entry has been used yet."))


def _errors(data: ReportData) -> str:
    svg = bar_chart("error_clusters", "Top error clusters", [Bar(label=e.signature, value=float(e.count))
                                                             for e in data.errors])
    rows = [[str(e.count), f"<code>{escape(e.signature)}</code>", escape(e.example),
             " ".join(f"<code>{escape(r[:8])}</code>" for r in e.run_ids)] for e in data.errors]
    return _figure(svg) + _table(["count", "signature", "example", "runs"], rows, "No errors in this window.")


def _tokens(data: ReportData) -> str:
    svg = line_chart("tokens", "Tokens per day", [
        Series(name="prompt", points=[(t.day, float(t.prompt)) for t in data.tokens]),
        Series(name="completion", points=[(t.day, float(t.completion)) for t in data.tokens]),
    ])
    total = sum(t.total for t in data.tokens)
    runs = sum(t.runs for t in data.tokens)
    cost = "—" if data.cost_usd is None else f"${data.cost_usd:,.4f}"
    cards = (f'<div class="cards"><div class="card">total tokens<b>{total:,}</b></div>'
             f'<div class="card">per run<b>{(total / runs if runs else 0):,.0f}</b></div>'
             f'<div class="card">cost<b>{escape(cost)}</b></div></div>')
    if data.cost_usd is None:
        cards += ('<p class="meta">Cost is computed when prices are given: <code>selfheal report --prompt-price '
                  "USD --completion-price USD</code> (per million tokens).</p>")
    return _figure(svg) + cards


def _latest(data: ReportData) -> str:
    ev = data.latest_eval
    if ev is None:
        return _figure(bar_chart("latest_eval", "Latest evaluation", [])) + \
            '<p class="empty">No evaluation stored yet: run <code>selfheal eval</code>.</p>'
    keys = ("baseline", "candidate") if ev.baseline_rate is not None else ("value",)
    bars = [Bar(label=t.task_type, value=t.rate,
                extra={"candidate": t.rate, "baseline": t.baseline_rate or 0.0}) for t in ev.by_task_type]
    svg = bar_chart("latest_eval", "Latest evaluation: success rate per task type", bars, keys=keys, percent=True)
    head = (f"<p><b>{escape(ev.name)}</b> · {escape(ev.dataset)}/{escape(ev.split)} · {ev.n} examples · "
            f"success {_pct(ev.success_rate)} [{ev.ci.low * 100:.0f}–{ev.ci.high * 100:.0f}%]")
    if ev.baseline_rate is not None:
        head += (f" · baseline {escape(ev.baseline_name or '')} {_pct(ev.baseline_rate)}"
                 + (f" · McNemar p = {ev.p_value:.3g}" if ev.p_value is not None else ""))
    head += "</p>"
    rows = [[escape(f.name), escape(f.task_type), escape(f.direction),
             f"<code>{escape(f.baseline_run_id or '—')}</code>", f"<code>{escape(f.candidate_run_id or '—')}</code>"]
            for f in ev.flips]
    return head + _figure(svg) + "<h3>Flips</h3>" + _table(
        ["example", "task type", "flip", "baseline run", "candidate run"], rows,
        "No example changed outcome." if ev.baseline_rate is not None else "No baseline to compare with.")


def render_html(data: ReportData) -> str:
    """The whole page: sections in reading order, data as inline JSON, no external reference."""
    payload = data.model_dump_json().replace("</", "<\\/")
    sections = [
        ("Success rate over time", _success(data)),
        ("Improvements: before and after", _improvements(data)),
        ("Cheatsheet", _cheatsheet(data)),
        ("Top error clusters", _errors(data)),
        ("Tokens and cost", _tokens(data)),
        ("Latest evaluation", _latest(data)),
    ]
    body = "\n".join(f"<section><h2>{escape(title)}</h2>\n{html}</section>" for title, html in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>selfheal report · {escape(data.agent)}</title><style>{_CSS}</style></head>\n<body>\n"
        f"<h1>selfheal report · {escape(data.agent)}</h1>"
        f'<p class="meta">project {escape(data.project)} · runs since {data.since:%Y-%m-%d %H:%M} UTC: {data.runs}'
        f" · generated {data.generated_at:%Y-%m-%d %H:%M} UTC</p>\n{body}\n"
        f'<script type="application/json" id="report-data">{payload}</script>\n'
        f"<script>{_JS}</script>\n</body></html>\n"
    )


def write_report(settings: Any, out: Path | None = None, *, days: int = 30, prompt_price: float | None = None,
                 completion_price: float | None = None, now: datetime | None = None) -> tuple[Path, ReportData]:
    """Collect, render and write atomically (default ``<state>/report.html``); returns the path and the data."""
    from selfheal.yamlio import atomic_write_text

    data = collect(settings, days=days, prompt_price=prompt_price, completion_price=completion_price, now=now)
    path = Path(out) if out is not None else Path(settings.state_dir) / "report.html"
    atomic_write_text(path, render_html(data))
    return path, data


def summary_line(path: Path, data: ReportData) -> str:
    """One line for a terminal or chat: where the report is and what it covers."""
    return (f"wrote {path}: {data.runs} runs, {len(data.improvements)} improvement(s), "
            f"{len(data.entries)} entries with stats, {len(data.errors)} error cluster(s)"
            + (f", latest eval {data.latest_eval.name}" if data.latest_eval else ""))


def to_json(data: ReportData) -> str:
    return json.dumps(json.loads(data.model_dump_json()), indent=2)
