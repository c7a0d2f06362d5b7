"""One PR comment per purpose, created once and updated after: the eval workflow's report.

A marker (``<!-- selfheal-eval -->``) in the body finds the comment again, so a
PR pushed ten times carries one up-to-date report instead of ten. Run as
``python -m selfheal.gitops.comments --pr N --body-file eval-report.md`` in CI
(repository from ``GITHUB_REPOSITORY``, token from ``GITHUB_TOKEN``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from selfheal.errors import SelfhealError
from selfheal.gitops.github import GitHub, github_token

EVAL_MARKER = "<!-- selfheal-eval -->"


def upsert_pr_comment(
    repo: str,
    pr_number: int,
    body: str,
    token: str,
    *,
    marker: str = EVAL_MARKER,
    api_url: str | None = None,
) -> str:
    """Create or update the PR's comment carrying ``marker``; returns its html_url (or API url)."""
    text = body if marker in body else f"{marker}\n{body}"
    with GitHub(repo, token, base_url=api_url) as gh:
        existing = next((c for c in gh.list_comments(pr_number) if marker in (c.get("body") or "")), None)
        if existing is not None:
            if existing.get("body") == text:
                comment = existing
            else:
                comment = gh.update_comment(int(existing["id"]), text)
        else:
            comment = gh.create_comment(pr_number, text)
    return str(comment.get("html_url") or comment.get("url") or "")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m selfheal.gitops.comments",
                                     description="Create or update the PR comment that carries a marker.")
    parser.add_argument("--pr", type=int, required=True, help="pull request number")
    parser.add_argument("--body-file", type=Path, required=True, help="markdown file with the comment body")
    parser.add_argument("--repo", default=os.environ.get("GITHUB_REPOSITORY"), help="owner/name (GITHUB_REPOSITORY)")
    parser.add_argument("--marker", default=EVAL_MARKER, help="HTML comment that identifies the comment")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        token = github_token()
        if not token:
            raise SelfhealError("GITHUB_TOKEN is not set")
        if not args.repo:
            raise SelfhealError("no repository: pass --repo owner/name or set GITHUB_REPOSITORY")
        try:
            body = args.body_file.read_text(encoding="utf-8")
        except OSError as exc:
            raise SelfhealError(f"{args.body_file}: {exc.strerror or exc}") from None
        url = upsert_pr_comment(args.repo, args.pr, body, token, marker=args.marker)
    except SelfhealError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return exc.exit_code
    print(url)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
