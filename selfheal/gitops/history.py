"""``selfheal history`` and ``selfheal blame``: the audit trail read back from git.

History lists improvement commits (those with a ``Selfheal-Kind`` trailer)
with their evaluation delta and PR. Blame answers "where did this entry come
from": every commit that created or changed an entry file or a context
instruction (selfheal's or a human's), with the runs behind it.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import BaseModel, Field

from selfheal.errors import SelfhealError
from selfheal.gitops.changes import context_items, describe_file
from selfheal.gitops.changeset import (
    T_ENTRIES,
    T_EVAL,
    T_KIND,
    T_PR,
    T_REVERTS,
    T_TRACES,
    parse_trailers,
    split_list,
)
from selfheal.gitops.github import parse_repo_slug
from selfheal.gitops.ledger import read_records
from selfheal.gitops.repo import open_repo, remote_url, show_file, toplevel
from selfheal.gitops.settings import gitops_settings
from selfheal.yamlio import parse_yaml, to_plain

_RS, _US = "\x1e", "\x1f"
_MERGE_PR = re.compile(r"^Merge pull request #(\d+)\b")
_SQUASH_PR = re.compile(r"\(#(\d+)\)\s*$")
_PR_URL = re.compile(r"/pull/(\d+)\b")


class UnknownEntryError(SelfhealError):
    """No entry file or context instruction with that id in the history."""


class HistoryItem(BaseModel):
    sha: str
    short: str
    kind: str
    date: datetime
    title: str
    eval: str | None = None
    entries: list[str] = Field(default_factory=list)
    traces: list[str] = Field(default_factory=list)
    reverts: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None


class BlameCommit(BaseModel):
    sha: str
    short: str
    date: datetime
    author: str
    subject: str
    change: str                  # "created", "changed: status candidate -> active", "removed", ...
    kind: str | None = None      # Selfheal-Kind when selfheal made it
    traces: list[str] = Field(default_factory=list)
    eval: str | None = None
    path: str = ""


class BlameResult(BaseModel):
    id: str
    kind: Literal["entry", "instruction", "example"]
    path: str
    exists: bool
    commits: list[BlameCommit] = Field(default_factory=list)   # newest first
    source_runs: list[str] = Field(default_factory=list)
    status: str | None = None


def _log(repo: git.Repo, *args: str, fmt: str) -> list[list[str]]:
    try:
        out = str(repo.git.log(f"--format={_RS}{fmt}", *args, strip_newline_in_stdout=False))
    except git.GitCommandError:
        return []   # e.g. no commits yet
    # The separator opens each record, so --name-status output stays with its commit.
    return [rec.split(_US) for rec in out.split(_RS)[1:]]


def _pr_from_merges(repo: git.Repo, refs: list[str]) -> dict[str, int]:
    """sha -> PR number for the commits GitHub merge commits ("Merge pull request #N") brought in."""
    found: dict[str, int] = {}
    for _sha, parents, subject in (r[:3] for r in _log(repo, *refs, "--merges", fmt=f"%H{_US}%P{_US}%s")):
        m = _MERGE_PR.match(subject.strip())
        ps = parents.split()
        if m and len(ps) == 2:
            for c in str(repo.git.rev_list(f"{ps[0]}..{ps[1]}")).split():
                found.setdefault(c, int(m.group(1)))
    return found


def _pr_url(slug: str | None, number: int) -> str | None:
    return f"https://github.com/{slug}/pull/{number}" if slug else None


def improvement_history(settings: Any, *, limit: int | None = None) -> list[HistoryItem]:
    """Improvement commits on every local branch and HEAD, newest first, each once."""
    repo = open_repo(Path(settings.root))
    cfg = gitops_settings(settings)
    refs = ["--branches", "HEAD"]
    url = remote_url(repo, cfg.remote)
    slug = cfg.github_repo or (parse_repo_slug(url) if url else None)
    rows = _log(repo, *refs, "--date-order", f"--notes={'refs/notes/selfheal'}", f"--grep={T_KIND}:",
                fmt=f"%H{_US}%h{_US}%cI{_US}%s{_US}%B{_US}%N")
    merges = _pr_from_merges(repo, refs)
    records = {r.commit: r for r in read_records(settings) if r.commit}
    items: list[HistoryItem] = []
    seen: dict[tuple[str, ...], HistoryItem] = {}
    for sha, short, when, subject, body, notes in (r[:6] for r in rows):
        notes = notes.strip()
        t = parse_trailers(body)
        if T_KIND not in t:
            continue
        item = HistoryItem(sha=sha, short=short, kind=t[T_KIND], date=datetime.fromisoformat(when), title=subject,
                           eval=t.get(T_EVAL), entries=split_list(t.get(T_ENTRIES)),
                           traces=split_list(t.get(T_TRACES)), reverts=t.get(T_REVERTS))
        note = next((line.split(":", 1)[1].strip() for line in notes.splitlines() if line.startswith(f"{T_PR}:")), None)
        pr_link = t.get(T_PR) or note
        if pr_link:
            m = _PR_URL.search(pr_link)
            item.pr_url, item.pr_number = pr_link, int(m.group(1)) if m else None
        elif sha in records and records[sha].pr_number:
            item.pr_number, item.pr_url = records[sha].pr_number, records[sha].pr_url
        elif sha in merges or _SQUASH_PR.search(subject):
            squash = _SQUASH_PR.search(subject)
            item.pr_number = merges[sha] if sha in merges else int(squash.group(1))  # type: ignore[union-attr]
            item.pr_url = _pr_url(slug, item.pr_number)
        # a squash-merged copy of a branch commit is the same improvement: show it once
        key = (_SQUASH_PR.sub("", subject).strip(), item.kind, t.get(T_ENTRIES, ""), t.get(T_TRACES, ""),
               t.get(T_EVAL, ""))
        twin = seen.get(key)
        if twin is not None:
            if twin.pr_number is None and item.pr_number is not None:
                twin.pr_number, twin.pr_url = item.pr_number, item.pr_url
            continue
        seen[key] = item
        items.append(item)
        if limit is not None and len(items) >= limit:
            break
    return items


# -- blame ---------------------------------------------------------------------------


def _rel(repo: git.Repo, path: Path) -> str:
    return Path(path).resolve().relative_to(toplevel(repo).resolve()).as_posix()


def _summary(changes: list[Any]) -> str:
    if not changes:
        return "touched (no content change)"
    c = changes[0]
    if c.action != "changed":
        return "created" if c.action == "added" else "removed"
    parts = []
    if c.status and c.status[0] != c.status[1]:
        parts.append(f"status {c.status[0]} -> {c.status[1]}")
    parts += [name for name, _, _ in c.fields]
    return "changed: " + ", ".join(parts) if parts else "changed (comments or formatting)"


def _commit_info(row: list[str]) -> dict[str, Any]:
    sha, short, when, author, subject, body = row[:6]
    t = parse_trailers(body)
    return dict(sha=sha, short=short, date=datetime.fromisoformat(when), author=author, subject=subject,
                kind=t.get(T_KIND), traces=split_list(t.get(T_TRACES)), eval=t.get(T_EVAL))


_FMT = f"%H{_US}%h{_US}%aI{_US}%an{_US}%s{_US}%B{_US}"


def find_entry_path(settings: Any, repo: git.Repo, entry_id: str, rev: str = "HEAD") -> tuple[str | None, bool]:
    """(repo-relative path of the entry's file, whether it exists in the working tree) or (None, False)."""
    cs = Path(settings.cheatsheet_dir)
    for p in sorted(cs.glob(f"*/{entry_id}.yaml")):
        return _rel(repo, p), True
    cs_rel = _rel(repo, cs) if cs.exists() else Path(settings.paths.cheatsheet).as_posix()
    rows = _log(repo, rev, "--topo-order", "--name-only", "--", f"{cs_rel}/*/{entry_id}.yaml", fmt=f"%H{_US}")
    for row in rows:
        names = [n for n in row[-1].split("\n") if n.strip()]
        if names:
            return names[0].strip(), False
    return None, False


def entry_commits(repo: git.Repo, path: str, rev: str = "HEAD") -> list[tuple[BlameCommit, str | None]]:
    """Commits that touched an entry file (following renames), newest first, with the path before each."""
    # --topo-order: plain --follow can list a merged branch's commits oldest first
    rows = _log(repo, rev, "--follow", "--topo-order", "--name-status", "--", path, fmt=_FMT)
    out: list[tuple[BlameCommit, str | None]] = []
    for row in rows:
        status_lines = [ln.split("\t") for ln in row[6].split("\n") if "\t" in ln] if len(row) > 6 else []
        now_path, before_path = path, path
        if status_lines:
            st = status_lines[0]
            if st[0].startswith("R") and len(st) == 3:
                before_path, now_path = st[1], st[2]
            else:
                before_path = now_path = st[-1]
        info = _commit_info(row)
        old = show_file(repo, f"{info['sha']}^", before_path)
        new = show_file(repo, info["sha"], now_path)
        change = _summary(describe_file(now_path, old, new))
        if before_path != now_path:
            change += f" (moved from {before_path})"
        out.append((BlameCommit(**info, change=change, path=now_path), before_path))
    return out


def _context_state(repo: git.Repo, rev: str, path: str, cache: dict[str, Any]) -> dict[tuple[str, str], Any]:
    if rev not in cache:
        text = show_file(repo, rev, path)
        try:
            cache[rev] = context_items(to_plain(parse_yaml(text, path))) if text else {}
        except SelfhealError:
            cache[rev] = {}
    return cache[rev]


def instruction_commits(repo: git.Repo, path: str, item_id: str, rev: str = "HEAD"
                        ) -> tuple[str | None, list[BlameCommit]]:
    """(instruction | example, commits that created/changed/removed it, newest first) by scanning context.yaml's history."""
    cache: dict[str, Any] = {}
    found_kind: str | None = None
    out: list[BlameCommit] = []
    for row in _log(repo, rev, "--topo-order", "--", path, fmt=_FMT):
        sha = row[0]
        after = _context_state(repo, sha, path, cache)
        before = _context_state(repo, f"{sha}^", path, cache)
        for kind in ("instruction", "example"):
            a, b = after.get((kind, item_id)), before.get((kind, item_id))
            if a == b:
                continue
            found_kind = found_kind or kind
            if b is None:
                change = "created"
            elif a is None:
                change = "removed"
            else:
                change = "changed: " + ", ".join(k for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k))
            out.append(BlameCommit(**_commit_info(row), change=change, path=path))
    return found_kind, out


def blame(settings: Any, entry_id: str, *, rev: str = "HEAD") -> BlameResult:
    """The commits behind a cheatsheet entry or a context instruction/example, newest first."""
    repo = open_repo(Path(settings.root))
    path, exists = find_entry_path(settings, repo, entry_id, rev)
    if path is not None:
        commits = [c for c, _ in entry_commits(repo, path, rev)]
        result = BlameResult(id=entry_id, kind="entry", path=path, exists=exists, commits=commits)
        text = (toplevel(repo) / path).read_text(encoding="utf-8") if exists else None
        if text:
            try:
                data = to_plain(parse_yaml(text, path))
            except SelfhealError:
                data = None
            if isinstance(data, dict):
                result.status = data.get("status")
                source = data.get("source") if isinstance(data.get("source"), dict) else {}
                result.source_runs = [str(r) for r in source.get("runs") or []]
        return result
    ctx = Path(settings.prompts_dir) / "context.yaml"
    ctx_rel = _rel(repo, ctx) if ctx.exists() else f"{settings.paths.prompts}/{settings.agent}/context.yaml"
    kind, commits = instruction_commits(repo, ctx_rel, entry_id, rev)
    if kind is None:
        raise UnknownEntryError(f"unknown entry or instruction '{entry_id}': no cheatsheet file or context "
                                f"instruction with that id in the history of {rev}")
    current = context_items(to_plain(parse_yaml(ctx.read_text(encoding="utf-8"), ctx))) if ctx.exists() else {}
    exists = ("instruction", entry_id) in current or ("example", entry_id) in current
    return BlameResult(id=entry_id, kind=kind, path=ctx_rel, exists=exists, commits=commits)  # type: ignore[arg-type]
