"""The pull request description: the evidence and the change in a reviewer's terms.

Order follows the review: why (summary, evaluation), what (entries and
instructions added/changed/removed, text before/after), evidence (runs), then
the raw diff collapsed. A hidden marker carries the change's fingerprint so the
same change never gets a second PR.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

from selfheal import __version__
from selfheal.gitops.changes import ItemChange
from selfheal.gitops.changeset import ChangeSet
from selfheal.redact import make_redactor

MAX_BODY = 60_000  # GitHub refuses bodies over 65,536 characters
_TITLES = {"entry": "Cheatsheet", "instruction": "Instructions", "example": "Few-shot examples",
           "tool": "Tool descriptions", "template": "Templates", "file": "Other files"}


def change_marker(fingerprint: str) -> str:
    return f"<!-- selfheal-change: {fingerprint} -->"


def _cell(text: str | None) -> str:
    if text is None:
        return "—"
    return " ".join(text.strip().replace("|", "\\|").splitlines()).strip() or "—"


def _item(c: ItemChange) -> list[str]:
    where = f" · {c.section}" if c.section else ""
    lines = [f"**`{c.id}`**{where} — {c.action}"]
    if c.status is not None and c.kind == "entry":
        before, after = c.status
        if c.action == "added":
            lines.append(f"- status: `{after}`")
        elif c.action == "removed":
            lines.append(f"- status was: `{before}`")
        else:
            lines.append(f"- status: `{before}` → `{after}`")
    if c.fields:
        if c.action == "changed":
            lines += ["", "| field | before | after |", "|---|---|---|"]
            lines += [f"| {name} | {_cell(b)} | {_cell(a)} |" for name, b, a in c.fields]
        else:
            lines += [f"- {name}: {_cell(a if c.action == 'added' else b)}" for name, b, a in c.fields]
    elif c.action == "changed" and c.status is None:
        lines.append("- comments or formatting only")
    return lines + [""]


def render_changes(items: Sequence[ItemChange]) -> list[str]:
    """Markdown per kind of item, each with its section, status change and text before/after."""
    out: list[str] = []
    for kind, title in _TITLES.items():
        group = [c for c in items if c.kind == kind]
        if not group:
            continue
        out += [f"#### {title}", ""]
        for c in group:
            if kind in ("template", "file") and not c.fields:
                out += [f"- `{c.path}` — {c.action}", ""]
            else:
                out += _item(c)
    return out


def unified_diff(diffs: Sequence[tuple[str, str | None, str | None]]) -> str:
    chunks: list[str] = []
    for path, old, new in diffs:
        chunks += difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            fromfile="/dev/null" if old is None else f"a/{path}",
            tofile="/dev/null" if new is None else f"b/{path}",
        )
    return "".join(c if c.endswith("\n") else c + "\n" for c in chunks)


def render_pr_body(
    change: ChangeSet,
    items: Sequence[ItemChange],
    diffs: Sequence[tuple[str, str | None, str | None]],
    *,
    fingerprint: str,
    run_url: Callable[[str], str | None] | None = None,
) -> str:
    """The whole PR description (markdown) for a change set."""
    lines = [change_marker(fingerprint), f"**selfheal {change.kind}** — {change.title}", ""]
    if change.summary:
        lines += [f"- {' '.join(s.split())}" for s in change.summary] + [""]
    lines += ["### Evaluation", ""]
    ev = change.eval_summary
    if ev is None:
        lines += ["_No evaluation is attached to this change; the PR's eval check runs one._", ""]
    else:
        where = " · ".join(x for x in (ev.dataset, ev.split) if x)
        lines += [f"{ev.trailer()}" + (f" on {where}" if where else ""), ""]
        if ev.report_markdown.strip():
            lines += [ev.report_markdown.strip(), ""]
    lines += ["### What changes", ""] + (render_changes(items) or ["_No content changes._", ""])
    if change.trace_ids:
        lines += ["### Evidence (runs)", ""]
        for rid in change.trace_ids:
            url = run_url(rid) if run_url else None
            lines.append(f"- [`{rid}`]({url})" if url else f"- `{rid}`")
        lines.append("")
    raw = unified_diff(diffs)
    footer = [
        "---",
        f"_Opened by selfheal {__version__}"
        + (f" · model `{change.model}`" if change.model else "")
        + " · approve by review; undo with `selfheal rollback <commit>`._",
    ]
    body_so_far = "\n".join(lines)
    room = MAX_BODY - len(body_so_far) - 500
    if len(raw) > room:
        raw = raw[: max(room, 0)] + "\n... (diff truncated; see the PR's Files tab)\n"
    lines += [f"<details><summary>Raw diff ({len(diffs)} file{'s' if len(diffs) != 1 else ''})</summary>", "",
              "```diff", raw.rstrip("\n"), "```", "", "</details>", ""]
    # A PR body is published: whatever an eval report or a summary quoted is redacted.
    return make_redactor().redact_text("\n".join(lines + footer) + "\n")
