"""What publishing did, in plain lines: committed, pushed or not, PR opened or only a body written.

Shared by ``curate --pr``, ``optimize --pr`` and rollback so no command says
"published" when nothing left the machine; whatever did not happen comes with
the exact commands that finish it by hand.
"""

from __future__ import annotations

from selfheal.gitops.publish import PublishResult


def describe_publish(result: PublishResult, *, files: int | None = None) -> list[str]:
    """One line per fact, then ``to finish by hand:`` and one indented command per line."""
    what = f"{files} file(s)" if files is not None else "the change"
    if result.dry_run:
        return [f"dry run: {what} would be committed on branch {result.branch} (base {result.base}); nothing written"]
    lines: list[str] = []
    if result.commit:
        lines.append(f"committed {what} on branch {result.branch} ({result.commit[:10]}), based on {result.base}")
    else:
        lines.append(f"branch {result.branch} already has exactly this change (based on {result.base})")
    if result.pushed:
        lines.append(f"pushed {result.branch}")
    else:
        lines.append(f"not pushed: {result.not_pushed or 'pushing is off'}")
    if result.pr_url:
        verb = "updated" if result.updated else "opened"
        lines.append(f"{verb} pull request #{result.pr_number}: {result.pr_url}")
    else:
        reason = result.no_pr or "no pull request was opened"
        body = f"; its body is in {result.pr_body_path}" if result.pr_body_path else ""
        lines.append(f"no pull request opened ({reason}){body}")
    if result.finish:
        lines.append("to finish by hand:")
        lines += [f"  {cmd}" for cmd in result.finish]
    return lines
