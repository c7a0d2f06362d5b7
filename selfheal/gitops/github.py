"""GitHub's REST API, as much as selfheal needs: pull requests, labels, issue comments.

httpx with a timeout and tenacity retries on 5xx/429/connection errors, so a
flaky API costs a retry, not an optimization run. ``GITHUB_API_URL`` points
the client at GitHub Enterprise Server (or a test stub).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from selfheal.errors import SelfhealError

DEFAULT_API_URL = "https://api.github.com"
_LABEL_COLORS = {"selfheal": "5319e7"}
_DEFAULT_COLOR = "c5def5"

_REMOTE_PATTERNS = (
    re.compile(r"^(?:https?|git|ssh)://(?:[^@/]+@)?[^/:]+(?::\d+)?/(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/?$"),
    re.compile(r"^(?:[^@/]+@)?[^/:]+:(?P<owner>[^/]+)/(?P<repo>[^/]+?)(?:\.git)?/?$"),
)


class GitHubError(SelfhealError):
    """The GitHub API refused or failed a request (one line: method, path, status, message)."""


class _Transient(Exception):
    """A response worth retrying (5xx, 429)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def parse_repo_slug(url: str) -> str | None:
    """``owner/name`` from a remote URL: https, ssh (``git@host:o/r.git``), with or without ``.git``."""
    url = url.strip()
    if url.startswith(("file:", "/", ".")):
        return None
    for pattern in _REMOTE_PATTERNS:
        m = pattern.match(url)
        if m:
            return f"{m.group('owner')}/{m.group('repo')}"
    return None


def github_token(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or None


def api_url(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    return (env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/")


def web_url(api: str) -> str:
    """The web host that goes with an API base (github.com, or GHES without ``/api/v3``)."""
    if api.rstrip("/") == DEFAULT_API_URL:
        return "https://github.com"
    return re.sub(r"/api/v3/?$", "", api.rstrip("/"))


def _parse_time(value: Any) -> datetime | None:
    """GitHub's ``2024-05-01T12:00:00Z`` timestamps (None when absent or malformed)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (_Transient, httpx.TransportError))


class GitHub:
    """A small client for one repository (``owner/name``)."""

    def __init__(
        self,
        repo: str,
        token: str,
        *,
        base_url: str | None = None,
        timeout_s: float = 30.0,
        attempts: int = 4,
        backoff_s: float = 0.5,
    ) -> None:
        if not re.fullmatch(r"[^/\s]+/[^/\s]+", repo):
            raise GitHubError(f"'{repo}' is not an owner/name repository")
        self.repo = repo
        self.base_url = (base_url or api_url()).rstrip("/")
        self._attempts = attempts
        self._backoff = backoff_s
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout_s,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "selfheal",
            },
        )

    def __enter__(self) -> GitHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def owner(self) -> str:
        return self.repo.split("/", 1)[0]

    # -- transport ---------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                ok_404: bool = False) -> Any:
        """One API call with retries; 4xx (except a tolerated 404) is a one-line GitHubError."""

        @retry(
            retry=retry_if_exception(_retryable),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff, max=10),
            reraise=True,
        )
        def call() -> httpx.Response:
            response = self._http.request(method, path, json=json, params=params)
            if response.status_code >= 500 or response.status_code == 429:
                raise _Transient(response)
            return response

        try:
            response = call()
        except _Transient as exc:
            response = exc.response
        except httpx.HTTPError as exc:
            raise GitHubError(f"GitHub API {method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 404 and ok_404:
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message") or response.text
            except ValueError:
                message = response.text
            raise GitHubError(f"GitHub API {method} {path} -> {response.status_code}: {' '.join(str(message).split())[:200]}")
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def paginate(self, path: str, params: Mapping[str, Any] | None = None, *, max_pages: int = 10) -> Iterator[Any]:
        """Items of a list endpoint, page by page (``per_page=100``)."""
        query = dict(params or {})
        query.setdefault("per_page", 100)
        for page in range(1, max_pages + 1):
            items = self.request("GET", path, params={**query, "page": page}) or []
            yield from items
            if len(items) < int(query["per_page"]):
                return

    # -- pull requests -------------------------------------------------------------
    def find_open_pr(self, *, head_branch: str | None = None, marker: str | None = None) -> dict[str, Any] | None:
        """An open PR whose head is ``owner:branch``, or whose body carries ``marker``."""
        base = f"/repos/{self.repo}/pulls"
        if head_branch:
            found = self.request("GET", base, params={"state": "open", "head": f"{self.owner}:{head_branch}"})
            for pr in found or []:
                if (pr.get("head") or {}).get("ref") == head_branch:
                    return pr
        if marker:
            for pr in self.paginate(base, {"state": "open"}):
                if marker in (pr.get("body") or ""):
                    return pr
        return None

    def opened_since(self, since: datetime, *, head_prefixes: tuple[str, ...]) -> list[datetime]:
        """When PRs whose head branch starts with a prefix were opened since ``since`` (open or merged).

        The rate limit of automated PRs counts these: the repository remembers
        what earlier runs opened even where the runner's disk does not (a
        hosted CI runner starts empty). A PR closed without merging is not counted.
        """
        found: list[datetime] = []
        params = {"state": "all", "sort": "created", "direction": "desc"}
        for pr in self.paginate(f"/repos/{self.repo}/pulls", params, max_pages=5):
            created = _parse_time(pr.get("created_at"))
            if created is None:
                continue
            if created < since:
                break  # newest first: everything after is older
            ref = str((pr.get("head") or {}).get("ref") or "")
            if not ref.startswith(head_prefixes):
                continue
            if pr.get("state") == "closed" and not pr.get("merged_at"):
                continue
            found.append(created)
        return found

    def create_pr(self, *, title: str, head: str, base: str, body: str) -> dict[str, Any]:
        return self.request("POST", f"/repos/{self.repo}/pulls",
                            json={"title": title, "head": head, "base": base, "body": body})

    def update_pr(self, number: int, **fields: Any) -> dict[str, Any]:
        return self.request("PATCH", f"/repos/{self.repo}/pulls/{number}", json=fields)

    # -- labels ----------------------------------------------------------------------
    def ensure_labels(self, names: list[str]) -> None:
        """Create the labels that do not exist yet (GitHub would create them colourless)."""
        for name in names:
            if self.request("GET", f"/repos/{self.repo}/labels/{quote(name, safe='')}", ok_404=True) is None:
                color = _LABEL_COLORS.get(name, _DEFAULT_COLOR)
                try:
                    self.request("POST", f"/repos/{self.repo}/labels",
                                 json={"name": name, "color": color, "description": "Opened by selfheal"})
                except GitHubError as exc:
                    if "422" not in str(exc):  # created meanwhile
                        raise

    def add_labels(self, number: int, names: list[str]) -> None:
        self.ensure_labels(names)
        self.request("POST", f"/repos/{self.repo}/issues/{number}/labels", json={"labels": names})

    # -- issue comments ----------------------------------------------------------------
    def list_comments(self, number: int) -> list[dict[str, Any]]:
        return list(self.paginate(f"/repos/{self.repo}/issues/{number}/comments"))

    def create_comment(self, number: int, body: str) -> dict[str, Any]:
        return self.request("POST", f"/repos/{self.repo}/issues/{number}/comments", json={"body": body})

    def update_comment(self, comment_id: int, body: str) -> dict[str, Any]:
        return self.request("PATCH", f"/repos/{self.repo}/issues/comments/{comment_id}", json={"body": body})

    # -- review and merge ------------------------------------------------------------
    def list_open_prs(self) -> list[dict[str, Any]]:
        """Every open pull request of the repository (newest first, as GitHub lists them)."""
        return list(self.paginate(f"/repos/{self.repo}/pulls", {"state": "open"}))

    def get_pr(self, number: int) -> dict[str, Any] | None:
        return self.request("GET", f"/repos/{self.repo}/pulls/{number}", ok_404=True)

    def approve_pr(self, number: int, body: str) -> dict[str, Any]:
        """An APPROVE review (GitHub refuses one on your own PR with 422)."""
        return self.request("POST", f"/repos/{self.repo}/pulls/{number}/reviews",
                            json={"event": "APPROVE", "body": body})

    def merge_pr(self, number: int, *, sha: str | None = None, method: str = "merge") -> dict[str, Any]:
        """Merge the PR; ``sha`` makes GitHub refuse (409) when the head moved since it was gated."""
        payload: dict[str, Any] = {"merge_method": method}
        if sha:
            payload["sha"] = sha
        return self.request("PUT", f"/repos/{self.repo}/pulls/{number}/merge", json=payload)
