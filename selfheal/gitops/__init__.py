"""Improvements as git branches and pull requests; history, blame and rollback from git.

``publish_change`` is the one way a change set leaves selfheal: a branch, a
commit with ``Selfheal-*`` trailers, a push and a PR whose body carries the
evaluation. Git history is the audit trail; ``git revert`` is the rollback.
"""

from selfheal.gitops.changeset import ChangeSet, EvalSummary, FileChange
from selfheal.gitops.publish import PublishResult, publish_change
from selfheal.gitops.settings import GitopsSettings, gitops_settings

__all__ = ["ChangeSet", "EvalSummary", "FileChange", "GitopsSettings", "PublishResult", "gitops_settings",
           "publish_change"]
