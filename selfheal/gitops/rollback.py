"""``selfheal rollback``: undo an improvement commit, or only one entry's latest change.

A commit is undone with ``git revert``; an entry or instruction is restored to
its state before its latest change, leaving everything else. Either goes out
as a rollback PR through :func:`publish_change`, or (``pr=False``) as one
commit on the current branch. Refusals (dirty tree, half-done merge, detached
HEAD, unknown target, conflicts) change nothing.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import git
from pydantic import BaseModel, Field
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from selfheal.errors import SelfhealError
from selfheal.gitops.changes import describe_file, touched_ids
from selfheal.gitops.changeset import ChangeSet, FileChange, commit_message
from selfheal.gitops.history import UnknownEntryError, entry_commits, find_entry_path, instruction_commits
from selfheal.gitops.publish import PublishResult, publish_change, resolve_base
from selfheal.gitops.repo import (
    GitError,
    checked,
    ensure_clean,
    identity_env,
    open_repo,
    resolve_commit,
    show_file,
    toplevel,
)
from selfheal.gitops.settings import gitops_settings
from selfheal.yamlio import atomic_write_text, dump_yaml, parse_yaml


class RollbackResult(BaseModel):
    target: str                                   # what the user named (commit or entry id)
    mode: Literal["pr", "direct"]
    reverted: str                                 # the commit undone (full sha)
    subject: str
    files: list[str] = Field(default_factory=list)
    entries: list[str] = Field(default_factory=list)
    commit: str | None = None                     # the revert commit (direct mode)
    publish: PublishResult | None = None          # the rollback PR (pr mode)


class Plan(BaseModel):
    """What a rollback will do, computed without touching anything."""

    target: str
    reverted: str
    subject: str
    files: list[FileChange]
    title: str
    summary: list[str]


def _subject(repo: git.Repo, sha: str) -> str:
    return str(repo.git.log("-1", "--format=%s", sha)).strip()


def _conflicts(work: git.Repo) -> list[str]:
    out = str(work.git.diff("--name-only", "--diff-filter=U"))
    return sorted(x for x in out.splitlines() if x)


def _revert_files(repo: git.Repo, sha: str, base: str) -> list[FileChange]:
    """The files a revert of ``sha`` onto ``base`` produces, computed in a throwaway worktree."""
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-revert-"))
    wt = tmp / "wt"
    try:
        checked(lambda: repo.git.worktree("add", "--quiet", "--detach", str(wt), base), "preparing the revert")
        work = git.Repo(wt)
        args = ["--no-commit", *(["-m", "1"] if len(repo.commit(sha).parents) > 1 else []), sha]
        try:
            work.git.revert(*args)
        except git.GitCommandError:
            conflicted = _conflicts(work)
            try:
                work.git.revert("--abort")
            except git.GitCommandError:
                pass  # the throwaway worktree goes away below either way
            raise GitError(
                f"reverting {sha[:10]} conflicts in {', '.join(conflicted) or 'the tree'}: nothing was changed "
                "(later commits changed the same lines; roll back the entry instead, or revert by hand)"
            ) from None
        names = str(work.git.diff("--cached", "--name-only", "-z", "HEAD")).split("\0")
        files = []
        for name in (n for n in names if n):
            p = wt / name
            files.append(FileChange(path=name, content=p.read_text(encoding="utf-8") if p.is_file() else None))
        return files
    finally:
        try:
            repo.git.worktree("remove", "--force", str(wt))
        except git.GitCommandError:
            repo.git.worktree("prune")
        shutil.rmtree(tmp, ignore_errors=True)


def _restore_item(current: str, before: str, item_id: str, path: str) -> str:
    """``current`` context.yaml with one instruction/example as it was in ``before`` (round-trip)."""
    cur, old = parse_yaml(current, path), parse_yaml(before, path) if before else None
    for key in ("instructions", "examples"):
        old_list = (old or {}).get(key) or []
        old_pos = next((i for i, x in enumerate(old_list) if isinstance(x, dict) and x.get("id") == item_id), None)
        cur_list = cur.get(key)
        cur_pos = None
        if isinstance(cur_list, list):
            cur_pos = next((i for i, x in enumerate(cur_list) if isinstance(x, dict) and x.get("id") == item_id), None)
        if old_pos is None and cur_pos is None:
            continue
        if old_pos is None:                       # created by the change: remove it
            del cur_list[cur_pos]
        elif cur_pos is None:                     # removed by the change: put it back where it was
            if not isinstance(cur_list, list):
                cur_list = CommentedSeq()
                cur[key] = cur_list
            cur_list.insert(min(old_pos, len(cur_list)), old_list[old_pos])
        else:                                     # changed: restore its fields in place (keeps comments)
            node = cur_list[cur_pos]
            prev = old_list[old_pos]
            for k in [k for k in node if k not in prev]:
                del node[k]
            for k, v in prev.items():
                if node.get(k) != v:
                    node[k] = v
    if isinstance(cur, CommentedMap) and isinstance(cur.get("version"), int):
        cur["version"] = cur["version"] + 1       # every accepted change bumps the context version
    return dump_yaml(cur)


def plan_entry_rollback(settings: Any, repo: git.Repo, entry_id: str, ref: str) -> Plan | None:
    """Restore one entry (or instruction) to its state before its latest change on ``ref``; None if unknown."""
    path, _ = find_entry_path(settings, repo, entry_id, ref)
    if path is not None:
        commits = entry_commits(repo, path, ref)
        if not commits:
            return None
        latest, before_path = commits[0]
        sha = latest.sha
        previous = show_file(repo, f"{sha}^", before_path or latest.path)
        files: list[FileChange] = []
        if previous is None:
            files.append(FileChange(path=latest.path, content=None))
        else:
            files.append(FileChange(path=before_path or latest.path, content=previous))
            if before_path and before_path != latest.path and show_file(repo, ref, latest.path) is not None:
                files.append(FileChange(path=latest.path, content=None))
        what = "remove it (it was created there)" if previous is None else "restore its previous version"
    else:
        ctx = Path(settings.prompts_dir) / "context.yaml"
        try:
            ctx_rel = ctx.resolve().relative_to(toplevel(repo).resolve()).as_posix()
        except ValueError:
            return None
        kind, commits_ = instruction_commits(repo, ctx_rel, entry_id, ref)
        if kind is None or not commits_:
            return None
        latest = commits_[0]
        sha = latest.sha
        current = show_file(repo, ref, ctx_rel)
        if current is None:
            raise GitError(f"{ctx_rel} does not exist on {ref}: cannot restore {kind} '{entry_id}' into it")
        files = [FileChange(path=ctx_rel, content=_restore_item(current, show_file(repo, f"{sha}^", ctx_rel) or "",
                                                                entry_id, ctx_rel))]
        what = f"restore the {kind} as it was before"
    subject = latest.subject
    return Plan(
        target=entry_id, reverted=sha, subject=subject, files=files,
        title=f"Roll back {entry_id} to before {sha[:7]}",
        summary=[f"ROLLBACK {entry_id}: undo its latest change in {sha[:7]} \"{subject}\" ({latest.change}); {what}"],
    )


def _direct_commit(repo: git.Repo, settings: Any, plan: Plan, entries: list[str]) -> str:
    """Write the plan into the (clean) working tree and commit it on the current branch."""
    root = toplevel(repo)
    for f in plan.files:
        target = root / f.path
        if f.content is None:
            if target.exists():
                target.unlink()
        else:
            atomic_write_text(target, f.content)
    paths = [f.path for f in plan.files]
    checked(lambda: repo.git.add("-A", "--", *paths), "staging the rollback")
    if not repo.git.diff("--cached", "--name-only"):
        raise SelfhealError(f"nothing to roll back: {plan.target} already matches its state before {plan.reverted[:10]}")
    change = ChangeSet(kind="rollback", title=plan.title, summary=plan.summary, files=plan.files, reverts=plan.reverted)
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-msg-"))
    try:
        (tmp / "msg").write_text(commit_message(change, entries), encoding="utf-8")
        env = identity_env(gitops_settings(settings))
        checked(lambda: repo.git.commit("--quiet", "--no-verify", "--cleanup=whitespace", "-F", str(tmp / "msg"), env=env),
             "committing the rollback")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return repo.head.commit.hexsha


def _direct_revert(repo: git.Repo, settings: Any, plan: Plan, entries: list[str]) -> str:
    """``git revert`` on the current branch with selfheal's identity and trailers; a conflict is aborted."""
    args = ["--no-commit", *(["-m", "1"] if len(repo.commit(plan.reverted).parents) > 1 else []), plan.reverted]
    try:
        repo.git.revert(*args)
    except git.GitCommandError as exc:
        conflicted = _conflicts(repo)
        try:
            repo.git.revert("--abort")
        except git.GitCommandError:
            repo.git.reset("--merge")
        if conflicted:
            raise GitError(f"reverting {plan.reverted[:10]} conflicts in {', '.join(conflicted)}: revert aborted, "
                           "nothing was changed") from None
        detail = " ".join(str(exc.stderr).split())[:200]
        raise GitError(f"git revert {plan.reverted[:10]} failed: {detail}") from None
    files = [FileChange(path=f, content=None) for f in str(repo.git.diff("--cached", "--name-only")).splitlines()]
    if not files:  # checked before by a trial revert; kept for a tree that changed meanwhile
        repo.git.reset("--merge")
        raise SelfhealError(f"nothing to roll back: the changes of {plan.reverted[:10]} are already undone")
    change = ChangeSet(kind="rollback", title=plan.title, summary=plan.summary, files=files, reverts=plan.reverted)
    tmp = Path(tempfile.mkdtemp(prefix="selfheal-msg-"))
    try:
        (tmp / "msg").write_text(commit_message(change, entries), encoding="utf-8")
        env = identity_env(gitops_settings(settings))
        checked(lambda: repo.git.commit("--quiet", "--no-verify", "--cleanup=whitespace", "-F", str(tmp / "msg"), env=env),
             "committing the revert")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return repo.head.commit.hexsha


def _entries_of(repo: git.Repo, ref: str, files: list[FileChange]) -> list[str]:
    items = []
    for f in files:
        items += describe_file(f.path, show_file(repo, ref, f.path), f.content)
    return touched_ids(items)


def preflight(settings: Any, target: str, *, pr: bool = True, base: str | None = None) -> Preflight:
    """Refuse (dirty tree, mid-merge, detached HEAD, unknown target) before anything is asked or changed."""
    repo = open_repo(Path(settings.root))
    ensure_clean(repo)
    cfg = gitops_settings(settings)
    ref = resolve_base(repo, cfg, base)[1] if pr else "HEAD"
    where = "the PR's base" if pr else "the current branch"

    plan: Plan | None = None
    try:
        plan = plan_entry_rollback(settings, repo, target, ref)
    except UnknownEntryError:
        plan = None
    is_commit = False
    if plan is None:
        sha = resolve_commit(repo, target)
        if sha is None:
            raise GitError(f"unknown commit or entry '{target}'")
        try:
            repo.git.merge_base("--is-ancestor", sha, ref)
        except git.GitCommandError:
            raise GitError(f"commit {sha[:10]} is not on {where} ({ref}): nothing to revert there") from None
        subject = _subject(repo, sha)
        plan = Plan(target=target, reverted=sha, subject=subject, files=[], title=f'Revert "{subject}"',
                    summary=[f"This reverts commit {sha}."])
        is_commit = True
    return Preflight(repo=repo, plan=plan, is_commit=is_commit, ref=ref)


@dataclass
class Preflight:
    """A rollback that passed every refusal check: what would be reverted, onto which ref."""

    repo: git.Repo
    plan: Plan
    is_commit: bool
    ref: str

    def describe(self) -> str:
        return f'{self.plan.reverted[:10]} "{self.plan.subject}"'


def rollback(settings: Any, target: str, *, pr: bool = True, base: str | None = None) -> RollbackResult:
    """Undo ``target`` (a commit, or an entry/instruction id's latest change) as a PR or a direct commit."""
    checked = preflight(settings, target, pr=pr, base=base)
    repo, plan, is_commit, ref = checked.repo, checked.plan, checked.is_commit, checked.ref

    if not pr:
        if is_commit:
            # A trial revert in a throwaway worktree first: a conflict never touches the user's tree.
            trial = _revert_files(repo, plan.reverted, "HEAD")
            if not trial:
                raise SelfhealError(f"nothing to roll back: the changes of {plan.reverted[:10]} are already undone")
            entries = _entries_of(repo, "HEAD", trial)
            sha_new = _direct_revert(repo, settings, plan, entries)
        else:
            entries = _entries_of(repo, "HEAD", plan.files)
            sha_new = _direct_commit(repo, settings, plan, entries)
        files = str(repo.git.show("--name-only", "--format=", sha_new)).split()
        return RollbackResult(target=target, mode="direct", reverted=plan.reverted, subject=plan.subject,
                              files=files, entries=entries, commit=sha_new)

    files_ = _revert_files(repo, plan.reverted, ref) if is_commit else plan.files
    if not files_:
        raise SelfhealError(f"nothing to roll back: the changes of {plan.reverted[:10]} are already undone on {ref}")
    change = ChangeSet(kind="rollback", title=plan.title, summary=plan.summary, files=files_, reverts=plan.reverted)
    published = publish_change(settings, change, base=base)
    return RollbackResult(target=target, mode="pr", reverted=plan.reverted, subject=plan.subject,
                          files=[f.path for f in files_], entries=published.entries, publish=published)
