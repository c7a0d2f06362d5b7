"""A loopback stub of GitHub's REST API: pull requests, labels and issue comments.

Enough of the API for the real httpx client in :mod:`selfheal.gitops.github`:
``GET/POST /repos/{o}/{r}/pulls`` (``state``, ``head=owner:branch``, pages, newest first;
:meth:`GitHubStub.seed_pr` adds PRs opened earlier),
``GET/PATCH /repos/{o}/{r}/pulls/{n}``, ``POST /repos/{o}/{r}/pulls/{n}/reviews``,
``PUT /repos/{o}/{r}/pulls/{n}/merge``, ``GET /repos/{o}/{r}/labels/{name}``,
``POST /repos/{o}/{r}/labels``, ``POST /repos/{o}/{r}/issues/{n}/labels``,
``GET/POST /repos/{o}/{r}/issues/{n}/comments``, ``PATCH
/repos/{o}/{r}/issues/comments/{id}``. Requests need ``Authorization: Bearer
<token>``. When given the bare ``origin`` repository, a PR's head branch must
exist there (as on GitHub). :meth:`GitHubStub.fail_next` answers the next
requests with an error status (retry tests).
"""

from __future__ import annotations

import json
import subprocess
import threading
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from helpers.json_http import JsonHandler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: GitHubStub


class GitHubStub:
    def __init__(self, *, token: str = "ghs_test", repo: str = "acme/agent", origin: Path | None = None) -> None:
        self.token = token
        self.repo = repo
        self.origin = origin
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self.lock = threading.Lock()
        self.pulls: dict[int, dict[str, Any]] = {}
        self.labels: dict[str, dict[str, Any]] = {}
        self.issue_labels: dict[int, list[str]] = {}
        self.comments: dict[int, dict[str, Any]] = {}
        #: (method, path, query, json body) of every request.
        self.requests: list[tuple[str, str, dict[str, list[str]], Any]] = []
        self.reviews: dict[int, list[dict[str, Any]]] = {}
        #: True: GitHub refuses APPROVE reviews (the token's user opened the PRs).
        self.own_prs = False
        self._fail: list[int] = []
        self._next = 1

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> GitHubStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, *statuses: int) -> None:
        with self.lock:
            self._fail.extend(statuses)

    def calls(self, method: str, suffix: str = "") -> list[tuple[str, str, dict[str, list[str]], Any]]:
        return [r for r in self.requests if r[0] == method and r[1].endswith(suffix)]

    def seed_pr(self, head: str, *, created_at: datetime, state: str = "open", merged: bool = False,
                base: str = "main", title: str = "seeded") -> dict[str, Any]:
        """A PR opened earlier (another run, another day): what the rate limit counts."""
        with self.lock:
            n = self._number()
            pr = self._pr(n, title=title, head=head, base=base, body="", created_at=created_at)
            pr["state"] = state
            pr["merged_at"] = created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if merged else None
            pr["merged"] = merged
            self.pulls[n] = pr
            return pr

    def _pr(self, n: int, *, title: str, head: str, base: str, body: str, created_at: datetime) -> dict[str, Any]:
        return {
            "number": n, "state": "open", "title": title, "body": body,
            "head": {"ref": head}, "base": {"ref": base},
            "created_at": created_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "merged_at": None,
            "html_url": f"https://github.example/{self.repo}/pull/{n}",
            "url": f"{self.url}/repos/{self.repo}/pulls/{n}",
        }

    def _number(self) -> int:
        n = self._next
        self._next += 1
        return n

    def _branch_on_origin(self, branch: str) -> bool:
        if self.origin is None:
            return True
        done = subprocess.run(
            ["git", "--git-dir", str(self.origin), "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"],
            capture_output=True,
        )
        return done.returncode == 0

    # -- routes ----------------------------------------------------------------
    def route(self, method: str, parts: list[str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if parts[:1] != ["repos"] or "/".join(parts[1:3]) != self.repo:
            return 404, {"message": "Not Found"}
        rest = parts[3:]
        page = int((query.get("page") or ["1"])[0])
        per_page = int((query.get("per_page") or ["30"])[0])

        def paged(items: list[Any]) -> list[Any]:
            return items[(page - 1) * per_page : page * per_page]

        if rest == ["pulls"] and method == "GET":
            state = (query.get("state") or ["open"])[0]
            head = (query.get("head") or [None])[0]
            found = [p for p in self.pulls.values() if state == "all" or p["state"] == state]
            if head:
                owner, _, branch = head.partition(":")
                found = [p for p in found if p["head"]["ref"] == branch and owner == self.repo.split("/")[0]]
            return 200, paged(sorted(found, key=lambda p: (p.get("created_at") or "", p["number"]), reverse=True))
        if rest == ["pulls"] and method == "POST":
            for key in ("title", "head", "base"):
                if not body.get(key):
                    return 422, {"message": f"Validation Failed: {key} missing"}
            if not self._branch_on_origin(body["head"]):
                return 422, {"message": f"Validation Failed: head {body['head']} does not exist"}
            if any(p["head"]["ref"] == body["head"] and p["state"] == "open" for p in self.pulls.values()):
                return 422, {"message": f"A pull request already exists for {body['head']}."}
            n = self._number()
            pr = self._pr(n, title=body["title"], head=body["head"], base=body["base"], body=body.get("body") or "",
                          created_at=datetime.now(UTC))
            self.pulls[n] = pr
            return 201, pr
        if len(rest) == 2 and rest[0] == "pulls" and method == "PATCH":
            pr = self.pulls.get(int(rest[1]))
            if pr is None:
                return 404, {"message": "Not Found"}
            for key in ("title", "body", "state", "base"):
                if key in body:
                    pr[key] = body[key] if key != "base" else {"ref": body[key]}
            return 200, pr
        if len(rest) == 2 and rest[0] == "pulls" and method == "GET":
            pr = self.pulls.get(int(rest[1]))
            return (200, pr) if pr else (404, {"message": "Not Found"})
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "reviews" and method == "POST":
            pr = self.pulls.get(int(rest[1]))
            if pr is None:
                return 404, {"message": "Not Found"}
            if body.get("event") == "APPROVE" and self.own_prs:
                return 422, {"message": "Unprocessable Entity: Can not approve your own pull request"}
            review = {"id": 5000 + self._number(), "state": "APPROVED" if body.get("event") == "APPROVE"
                      else str(body.get("event")), "body": body.get("body") or ""}
            self.reviews.setdefault(pr["number"], []).append(review)
            return 200, review
        if len(rest) == 3 and rest[0] == "pulls" and rest[2] == "merge" and method == "PUT":
            pr = self.pulls.get(int(rest[1]))
            if pr is None:
                return 404, {"message": "Not Found"}
            if pr["state"] != "open" or pr.get("merged"):
                return 405, {"message": "Pull Request is not mergeable"}
            if body and body.get("sha") and pr["head"].get("sha") and body["sha"] != pr["head"]["sha"]:
                return 409, {"message": "Head branch was modified. Review and try the merge again."}
            pr["state"], pr["merged"] = "closed", True
            pr["merged_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            pr["merge_method"] = (body or {}).get("merge_method", "merge")
            return 200, {"sha": "f" * 40, "merged": True, "message": "Pull Request successfully merged"}
        if len(rest) == 2 and rest[0] == "labels" and method == "GET":
            label = self.labels.get(unquote(rest[1]))
            return (200, label) if label else (404, {"message": "Not Found"})
        if rest == ["labels"] and method == "POST":
            if body["name"] in self.labels:
                return 422, {"message": "Validation Failed: already_exists"}
            self.labels[body["name"]] = {"name": body["name"], "color": body.get("color", "ededed"),
                                         "description": body.get("description", "")}
            return 201, self.labels[body["name"]]
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "labels" and method == "POST":
            n = int(rest[1])
            names = self.issue_labels.setdefault(n, [])
            for name in body["labels"]:
                self.labels.setdefault(name, {"name": name, "color": "ededed", "description": ""})
                if name not in names:
                    names.append(name)
            return 200, [self.labels[x] for x in names]
        if len(rest) == 3 and rest[0] == "issues" and rest[2] == "comments":
            n = int(rest[1])
            if method == "GET":
                found = sorted((c for c in self.comments.values() if c["issue"] == n), key=lambda c: c["id"])
                return 200, paged(found)
            if method == "POST":
                cid = 1000 + self._number()
                self.comments[cid] = {"id": cid, "issue": n, "body": body["body"],
                                      "html_url": f"https://github.example/{self.repo}/pull/{n}#issuecomment-{cid}"}
                return 201, self.comments[cid]
        if len(rest) == 3 and rest[:2] == ["issues", "comments"] and method == "PATCH":
            comment = self.comments.get(int(rest[2]))
            if comment is None:
                return 404, {"message": "Not Found"}
            comment["body"] = body["body"]
            return 200, comment
        return 404, {"message": f"stub has no {method} /{'/'.join(parts)}"}


class _Handler(JsonHandler):
    server: _Server

    def _handle(self, method: str) -> None:
        stub = self.server.stub
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        query = parse_qs(split.query)
        with stub.lock:
            stub.requests.append((method, split.path, query, body))
            status = stub._fail.pop(0) if stub._fail else None
        if status is not None:
            self.send_json(status, {"message": "stub failure"})
            return
        if self.headers.get("Authorization") != f"Bearer {stub.token}":
            self.send_json(401, {"message": "Bad credentials"})
            return
        parts = [p for p in split.path.split("/") if p]
        try:
            with stub.lock:
                status, payload = stub.route(method, parts, query, body)
        except Exception as exc:  # a stub bug shows up as a failed request
            status, payload = 400, {"message": f"{type(exc).__name__}: {exc}"}
        self.send_json(status, payload)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")
