"""``selfheal approve BRANCH``: re-run the gate on an improvement, and merge it only when it passes.

The gate is the same one ``selfheal eval --against`` applies, run on exactly
the commit that would be merged: the branch's head (checked out in a
temporary worktree) as the candidate, its base as the baseline, the dataset
from the user's working tree (the measuring instrument). The candidate's
result is stored with the head commit, so ``selfheal review`` shows it.

Passing, an improvement with an open PR (and a GitHub token) is approved and
merged through the API, pinned to the gated head sha; a local branch is merged
into its base: fast-forward when possible, else a merge commit. A dirty
working tree is refused before anything runs. Failing, nothing is merged and
the gate's reasons are returned.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import BaseModel, ConfigDict, Field

from selfheal.gitops.github import GitHubError
from selfheal.gitops.repo import GitError, checked, current_branch, ensure_clean, open_repo, ref_exists, toplevel
from selfheal.gitops.settings import gitops_settings
from selfheal.interact.review import Improvement, find_improvement, github_client


class GateSummary(BaseModel):
    """The gate's numbers: success rates on the paired examples and the examples that flipped."""

    model_config = ConfigDict(extra="forbid")

    n: int
    baseline_rate: float
    candidate_rate: float
    p_value: float
    pass_to_fail: list[str] = Field(default_factory=list)
    fail_to_pass: list[str] = Field(default_factory=list)
    baseline_experiment: str = ""
    candidate_experiment: str = ""


class ApproveResult(BaseModel):
    """What ``approve`` decided and did."""

    model_config = ConfigDict(extra="forbid")

    branch: str
    base: str
    commit: str
    passed: bool
    reasons: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    gate: GateSummary | None = None
    merged: bool = False
    how: Literal["fast-forward", "merge commit", "github", ""] = ""
    merge_commit: str | None = None
    pr_number: int | None = None
    pr_url: str | None = None
    approved: bool = False              # an APPROVE review was posted on the PR


def _head_commit(repo: git.Repo, item: Improvement, remote: str) -> str:
    """The improvement's head commit, fetching a PR's branch that is not known locally."""
    if item.commit:
        return item.commit
    tracking = f"refs/remotes/{remote}/{item.branch}"
    if not ref_exists(repo, tracking):
        checked(lambda: repo.git.fetch("--quiet", remote, f"refs/heads/{item.branch}:{tracking}"),
                f"fetching {item.branch} from {remote}")
    return str(repo.git.rev_parse(tracking)).strip()


def _base_commit(repo: git.Repo, base: str, remote: str) -> str:
    for ref in (f"refs/heads/{base}", f"refs/remotes/{remote}/{base}"):
        if ref_exists(repo, ref):
            return str(repo.git.rev_parse(ref)).strip()
    raise GitError(f"base branch '{base}' not found (fetch it first)")


def run_gate(
    settings: Any,
    commit: str,
    base_commit: str,
    *,
    dataset: str | None = None,
    split: str = "test",
    jobs: int | None = None,
    margin: float | None = None,
    model_factory: Callable[..., Any] | None = None,
    progress: bool = False,
) -> tuple[bool, list[str], list[str], GateSummary | None]:
    """(passed, reasons, notes, numbers) of ``commit``'s context and cheatsheet against ``base_commit``'s."""
    from selfheal.evaluation.evaluate import baseline_settings, evaluate
    from selfheal.evaluation.gate import GateConfig
    from selfheal.evaluation.worktree import ref_worktree

    repo = open_repo(Path(settings.root))
    top = toplevel(repo).resolve()
    gate = GateConfig.from_settings(settings, margin=margin)
    with ref_worktree(top, commit) as wt:
        candidate_settings = baseline_settings(settings, wt, top)
        outcome = evaluate(candidate_settings, dataset=dataset, split=split, against=base_commit, jobs=jobs,
                           gate=gate, model_factory=model_factory, progress=progress)
    decision, comparison = outcome.decision, outcome.comparison
    assert decision is not None and comparison is not None  # against= and gate= were given
    o = comparison.overall
    summary = GateSummary(
        n=o.n_paired, baseline_rate=o.baseline.rate, candidate_rate=o.candidate.rate, p_value=o.mcnemar_p,
        pass_to_fail=[f.name for f in comparison.pass_to_fail], fail_to_pass=[f.name for f in comparison.fail_to_pass],
        baseline_experiment=comparison.baseline.name, candidate_experiment=comparison.candidate.name,
    )
    return decision.passed, list(decision.reasons), list(decision.notes), summary


def merge_locally(repo: git.Repo, base: str, commit: str, branch: str) -> tuple[str, str]:
    """Merge ``commit`` into the local ``base`` branch: (how, resulting base commit).

    The user's checkout is used only when it is on ``base``; otherwise a
    fast-forward moves the ref and a merge commit is made in a temporary worktree.
    """
    ensure_clean(repo)
    if not ref_exists(repo, f"refs/heads/{base}"):
        raise GitError(f"no local branch '{base}' to merge into (check it out first)")
    old = str(repo.git.rev_parse(f"refs/heads/{base}")).strip()
    ff = repo.is_ancestor(old, commit)
    message = f"Merge improvement {branch} (approved by selfheal gate)"
    if current_branch(repo) == base:
        args = ["--ff-only"] if ff else ["--no-ff", "-m", message]
        checked(lambda: repo.git.merge("--quiet", *args, commit), f"merging {branch} into {base}")
    elif ff:
        checked(lambda: repo.git.update_ref(f"refs/heads/{base}", commit, old), f"fast-forwarding {base}")
    else:
        tmp = Path(tempfile.mkdtemp(prefix="selfheal-merge-"))
        wt = tmp / "wt"
        try:
            checked(lambda: repo.git.worktree("add", "--quiet", str(wt), base), f"checking out {base}")
            work = git.Repo(wt)
            try:
                checked(lambda: work.git.merge("--quiet", "--no-ff", "-m", message, commit),
                        f"merging {branch} into {base}")
            except GitError:
                work.git.merge("--abort")
                raise
        finally:
            try:
                repo.git.worktree("remove", "--force", str(wt))
            except git.GitCommandError:
                repo.git.worktree("prune")
            shutil.rmtree(tmp, ignore_errors=True)
    new = str(repo.git.rev_parse(f"refs/heads/{base}")).strip()
    return ("fast-forward" if ff else "merge commit"), new


def _review_body(result: ApproveResult) -> str:
    g = result.gate
    lines = ["Approved by `selfheal approve`: the regression gate passed on this head commit "
             f"(`{result.commit[:12]}`)."]
    if g is not None:
        lines.append(f"success rate {g.baseline_rate:.1%} -> {g.candidate_rate:.1%} on {g.n} paired examples "
                     f"(McNemar p = {g.p_value:.3g})")
    lines += [f"- {n}" for n in result.notes]
    return "\n".join(lines)


def approve(
    settings: Any,
    name: str,
    *,
    dataset: str | None = None,
    split: str = "test",
    jobs: int | None = None,
    margin: float | None = None,
    use_github: bool = True,
    merge: bool = True,
    model_factory: Callable[..., Any] | None = None,
    progress: bool = False,
) -> ApproveResult:
    """Gate the improvement ``name`` (branch, ``#N``) and merge it when the gate passes (``merge=False``: gate only)."""
    cfg = gitops_settings(settings)
    repo = open_repo(Path(settings.root))
    item = find_improvement(settings, name, use_github=use_github)
    via_github = use_github and item.pr_number is not None and github_client(settings, repo) is not None
    if merge and not via_github:
        ensure_clean(repo)  # refuse a dirty tree before spending an evaluation on it
    commit = _head_commit(repo, item, cfg.remote)
    base_commit = _base_commit(repo, item.base, cfg.remote)
    passed, reasons, notes, summary = run_gate(settings, commit, base_commit, dataset=dataset, split=split,
                                               jobs=jobs, margin=margin, model_factory=model_factory,
                                               progress=progress)
    result = ApproveResult(branch=item.branch, base=item.base, commit=commit, passed=passed, reasons=reasons,
                           notes=notes, gate=summary, pr_number=item.pr_number, pr_url=item.pr_url)
    if not passed or not merge:
        return result
    if via_github:
        gh = github_client(settings, repo)
        assert gh is not None and item.pr_number is not None
        with gh:
            try:
                gh.approve_pr(item.pr_number, _review_body(result))
                result.approved = True
            except GitHubError as exc:
                if "422" not in exc.message:
                    raise
                result.notes.append(f"could not post an approving review ({exc.message}); merging anyway")
            merged = gh.merge_pr(item.pr_number, sha=commit)
        result.merged, result.how = True, "github"
        result.merge_commit = str((merged or {}).get("sha") or "") or None
        return result
    result.how, result.merge_commit = merge_locally(repo, item.base, commit, item.branch)  # type: ignore[assignment]
    result.merged = True
    return result


def format_approve(result: ApproveResult) -> str:
    """Plain text: the gate's numbers and verdict, then what was merged (or why not)."""
    lines = [f"{result.branch} ({result.commit[:12]}) against {result.base}"]
    g = result.gate
    if g is not None:
        lines.append(f"  success rate {g.baseline_rate:.1%} -> {g.candidate_rate:.1%} on {g.n} paired examples "
                     f"(McNemar p = {g.p_value:.3g})")
        if g.pass_to_fail:
            lines.append(f"  pass -> fail: {', '.join(g.pass_to_fail)}")
        if g.fail_to_pass:
            lines.append(f"  fail -> pass: {', '.join(g.fail_to_pass)}")
    lines += [f"  note: {n}" for n in result.notes]
    if not result.passed:
        lines.append("gate failed: not merged")
        lines += [f"  - {r}" for r in result.reasons]
    elif result.how == "github":
        lines.append(f"gate passed: PR #{result.pr_number} {'approved and ' if result.approved else ''}merged"
                     + (f" ({result.pr_url})" if result.pr_url else ""))
    elif result.merged:
        lines.append(f"gate passed: merged into {result.base} ({result.how}, now {str(result.merge_commit)[:12]})")
    else:
        lines.append("gate passed (not merged: --no-merge)")
    return "\n".join(lines)
