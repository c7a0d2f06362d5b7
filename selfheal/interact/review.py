"""``selfheal review``: the improvements waiting for a decision, with the evidence behind each.

An open improvement is a ``selfheal/<kind>/...`` branch (made by
:func:`selfheal.gitops.publish.publish_change`) that is not merged into its
base yet, and, when GitHub is configured, an open pull request from such a
branch. Each one shows the evaluation it was published with (the commit's
``Selfheal-Eval`` trailer, else the PR body), its PR from the publish records,
and the last gate run on exactly its head commit (stored by ``selfheal
approve``), so a reviewer sees what was measured without opening anything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import BaseModel, ConfigDict, Field

from selfheal.gitops.changeset import T_ENTRIES, T_EVAL, T_KIND, parse_trailers, split_list
from selfheal.gitops.github import GitHub, github_token
from selfheal.gitops.ledger import read_records
from selfheal.gitops.publish import repo_slug, resolve_base
from selfheal.gitops.repo import GitError, has_remote, open_repo
from selfheal.gitops.settings import gitops_settings

BRANCH_PREFIX = "selfheal/"
_EVAL = re.compile(
    r"baseline (?P<b>\d+(?:\.\d+)?)% -> candidate (?P<c>\d+(?:\.\d+)?)% \(n=(?P<n>\d+)(?:, p=(?P<p>[\d.eE+-]+))?\)"
)


class EvalNumbers(BaseModel):
    """An evaluation as published: baseline and candidate success rates on ``n`` examples."""

    model_config = ConfigDict(extra="forbid")

    baseline_rate: float
    candidate_rate: float
    n: int
    p_value: float | None = None
    text: str

    @classmethod
    def parse(cls, text: str | None) -> EvalNumbers | None:
        """The numbers of an ``EvalSummary.trailer()`` line found anywhere in ``text``."""
        m = _EVAL.search(text or "")
        if m is None:
            return None
        p = m.group("p")
        return cls(baseline_rate=float(m.group("b")) / 100, candidate_rate=float(m.group("c")) / 100,
                   n=int(m.group("n")), p_value=float(p) if p else None, text=m.group(0))


class GateRun(BaseModel):
    """The last evaluation stored for the branch's head commit (what ``selfheal approve`` ran)."""

    model_config = ConfigDict(extra="forbid")

    experiment: str
    success_rate: float
    n: int
    finished_at: str


class Improvement(BaseModel):
    """One open improvement: a local branch, an open PR, or both."""

    model_config = ConfigDict(extra="forbid")

    branch: str
    base: str
    kind: str = ""
    title: str = ""
    commit: str | None = None          # head commit, when the branch is known locally (or fetched)
    ahead: int = 0                     # commits on the branch not on its base
    entries: list[str] = Field(default_factory=list)
    eval: EvalNumbers | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    source: Literal["local", "github", "both"] = "local"
    last_gate: GateRun | None = None


def _git(repo: git.Repo, *args: str) -> str | None:
    try:
        return str(repo.git.execute(["git", *args]))
    except git.GitCommandError:
        return None


def _local_branches(repo: git.Repo, remote: str) -> dict[str, str]:
    """``selfheal/...`` branch name -> ref (local branches win over remote-tracking ones)."""
    out = _git(repo, "for-each-ref", "--format=%(refname)",
               f"refs/heads/{BRANCH_PREFIX}", f"refs/remotes/{remote}/{BRANCH_PREFIX}") or ""
    found: dict[str, str] = {}
    for ref in out.splitlines():
        ref = ref.strip()
        if ref.startswith("refs/heads/"):
            found[ref[len("refs/heads/"):]] = ref
        elif ref.startswith(f"refs/remotes/{remote}/"):
            found.setdefault(ref[len(f"refs/remotes/{remote}/"):], ref)
    return found


def _base_of(settings: Any, repo: git.Repo, branch: str, records: dict[str, Any]) -> tuple[str, str]:
    """(base branch name, ref): the one the branch was published against, else gitops.base / default."""
    cfg = gitops_settings(settings)
    rec = records.get(branch)
    try:
        return resolve_base(repo, cfg, rec.base if rec is not None else None)
    except GitError:
        return resolve_base(repo, cfg)


def _describe(settings: Any, repo: git.Repo, branch: str, ref: str, records: dict[str, Any]) -> Improvement | None:
    """The improvement on ``ref``; None when it is fully merged into its base."""
    base, base_ref = _base_of(settings, repo, branch, records)
    remote = gitops_settings(settings).remote
    # merged into the local base (approved here, not pushed yet) or the remote one: not open any more
    refs = dict.fromkeys([base_ref] + [r for r in (f"refs/heads/{base}", f"refs/remotes/{remote}/{base}")
                                       if _git(repo, "rev-parse", "--verify", "--quiet", r)])
    ahead = min(int(_git(repo, "rev-list", "--count", f"{b}..{ref}") or 0) for b in refs)
    if ahead == 0:
        return None
    sha = (_git(repo, "rev-parse", ref) or "").strip() or None
    body = _git(repo, "log", "-1", "--format=%B", ref) or ""
    subject = body.strip().splitlines()[0] if body.strip() else ""
    trailers = parse_trailers(body)
    rec = records.get(branch)
    return Improvement(
        branch=branch, base=base, kind=trailers.get(T_KIND, rec.kind if rec else ""), title=subject,
        commit=sha, ahead=ahead, entries=split_list(trailers.get(T_ENTRIES)),
        eval=EvalNumbers.parse(trailers.get(T_EVAL)),
        pr_number=rec.pr_number if rec else None, pr_url=rec.pr_url if rec else None,
    )


def _last_gate(settings: Any, commits: set[str]) -> dict[str, GateRun]:
    """head commit -> the newest stored experiment that evaluated exactly that commit."""
    path = Path(settings.trace_store_path)
    if not commits or not path.is_file():
        return {}
    from selfheal.evaluation.experiments import list_experiments
    from selfheal.tracing.store import LocalTraceStore

    out: dict[str, GateRun] = {}
    with LocalTraceStore(path) as store:
        for exp in list_experiments(store):  # newest first
            head = exp.extra.get("head_commit")
            if head in commits and head not in out and exp.git_ref is None:
                out[head] = GateRun(experiment=exp.name, success_rate=exp.success_rate, n=exp.n,
                                    finished_at=exp.finished_at.isoformat())
    return out


def github_client(settings: Any, repo: git.Repo) -> GitHub | None:
    """A client when a token and a repository (gitops.github_repo, GITHUB_REPOSITORY, remote) are known."""
    token = github_token()
    slug = repo_slug(repo, gitops_settings(settings))
    if not token or not slug:
        return None
    return GitHub(slug, token, timeout_s=gitops_settings(settings).api_timeout_s)


def _merge_pr(found: dict[str, Improvement], pr: dict[str, Any]) -> None:
    head = str((pr.get("head") or {}).get("ref") or "")
    body = str(pr.get("body") or "")
    if not head.startswith(BRANCH_PREFIX) and "<!-- selfheal-change:" not in body:
        return  # a human's PR: not selfheal's to approve
    item = found.get(head)
    if item is None:
        item = found[head] = Improvement(branch=head, base=str((pr.get("base") or {}).get("ref") or ""),
                                         kind=head.split("/")[1] if head.count("/") >= 2 else "",
                                         title=str(pr.get("title") or ""), source="github")
    else:
        item.source = "both"
    item.pr_number = int(pr["number"])
    item.pr_url = str(pr.get("html_url") or pr.get("url") or "") or None
    if item.eval is None:
        item.eval = EvalNumbers.parse(body)


def list_improvements(settings: Any, *, use_github: bool = True) -> list[Improvement]:
    """Open improvements, newest branch name first (the date is in the name)."""
    repo = open_repo(Path(settings.root))
    cfg = gitops_settings(settings)
    records = {r.branch: r for r in read_records(settings)}  # the last record of a branch wins
    found: dict[str, Improvement] = {}
    for branch, ref in _local_branches(repo, cfg.remote).items():
        item = _describe(settings, repo, branch, ref, records)
        if item is not None:
            found[branch] = item
    gh = github_client(settings, repo) if use_github else None
    if gh is not None:
        with gh:
            for pr in gh.list_open_prs():
                _merge_pr(found, pr)
    gates = _last_gate(settings, {i.commit for i in found.values() if i.commit})
    for item in found.values():
        if item.commit:
            item.last_gate = gates.get(item.commit)
    return sorted(found.values(), key=lambda i: i.branch, reverse=True)


def find_improvement(settings: Any, name: str, *, use_github: bool = True) -> Improvement:
    """The open improvement ``name`` names: a branch, ``#N``/``N`` (a PR number), or a unique branch suffix."""
    from selfheal.errors import SelfhealError

    items = list_improvements(settings, use_github=use_github)
    wanted = name.strip()
    number = int(wanted.lstrip("#")) if wanted.lstrip("#").isdigit() else None
    for item in items:
        if item.branch == wanted or (number is not None and item.pr_number == number):
            return item
    matches = [i for i in items if i.branch.endswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(i.branch for i in items[:5]) or "none: `selfheal curate --publish` opens them"
    if len(matches) > 1:
        raise SelfhealError(f"'{name}' matches {len(matches)} improvements: {', '.join(m.branch for m in matches)}")
    raise SelfhealError(f"no open improvement '{name}' (open: {listing})")


def format_review(items: list[Improvement]) -> str:
    """Plain text for a terminal or a chat reply: one block per improvement."""
    if not items:
        return "No open improvements: nothing to review."
    lines = [f"{len(items)} open improvement{'s' if len(items) != 1 else ''}:"]
    for i in items:
        pr = f"  PR #{i.pr_number}" + (f" {i.pr_url}" if i.pr_url else "") if i.pr_number else ""
        lines.append(f"- {i.branch} -> {i.base}  [{i.kind or '?'}]{pr}")
        if i.title:
            lines.append(f"    {i.title}")
        lines.append(f"    published eval: {i.eval.text if i.eval else 'none attached'}")
        if i.last_gate is not None:
            g = i.last_gate
            lines.append(f"    last gate run: {g.success_rate:.1%} of {g.n} ({g.experiment})")
        if i.entries:
            lines.append(f"    entries: {', '.join(i.entries)}")
    lines.append("Approve one with: selfheal approve BRANCH")
    return "\n".join(lines)
