"""Publish records and the rate limit of automated improvements.

Each published change appends one JSON line to ``<state>/state/publish.jsonl``:
when, which kind, branch, commit, PR. The rate limit reads it back (at most
``max_prs_per_day`` new PRs in 24 hours; ``min_runs_between`` root runs traced
since the last one of the same kind), and ``selfheal history`` finds PR links
in it for commits GitHub never merged.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selfheal.errors import SelfhealError
from selfheal.gitops.settings import GitopsSettings

RATE_LIMITED_KINDS = ("curate", "optimize")  # rollbacks and manual changes are never throttled


class PublishRecord(BaseModel):
    model_config = ConfigDict(extra="ignore")

    time: datetime
    kind: str
    title: str
    branch: str
    base: str
    commit: str | None = None
    fingerprint: str
    pr_url: str | None = None
    pr_number: int | None = None
    updated: bool = False   # an existing PR/branch got the change (does not count as a new PR)
    entries: list[str] = Field(default_factory=list)


class RateLimitError(SelfhealError):
    """Too many automated PRs: the message says which limit and when it frees up."""


def records_path(settings: Any) -> Path:
    return Path(settings.state_dir) / "state" / "publish.jsonl"


def read_records(settings: Any) -> list[PublishRecord]:
    """Every readable record, oldest first (a torn or foreign line is skipped, not fatal)."""
    path = records_path(settings)
    if not path.is_file():
        return []
    out: list[PublishRecord] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(PublishRecord.model_validate_json(line))
        except ValidationError:
            continue
    return out


def append_record(settings: Any, record: PublishRecord) -> None:
    """Append one line (O_APPEND: concurrent writers never interleave a short line)."""
    path = records_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (record.model_dump_json() + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _root_runs_since(settings: Any, since: datetime, enough: int) -> int:
    """Root runs of the agent's project traced since ``since`` (counting stops at ``enough``)."""
    path = Path(settings.trace_store_path)
    if not path.is_file() or enough <= 0:
        return 0
    from selfheal.tracing.store import LocalTraceStore

    with LocalTraceStore(path) as store:
        runs = store.list_runs(settings.tracing.project, is_root=True, since=since, limit=enough)
    return len(runs)


def check_rate_limit(settings: Any, cfg: GitopsSettings, kind: str, *, now: datetime | None = None,
                     opened: list[datetime] | None = None, where: str = "") -> None:
    """Raise :class:`RateLimitError` when opening another ``kind`` PR now would exceed a limit.

    ``opened``: when improvement PRs were opened, as the repository's host
    reports them (a hosted CI runner starts with an empty state directory, so
    only the host knows what earlier runs opened); None reads the local
    publish records. ``where`` names that source in the message.
    """
    if kind not in RATE_LIMITED_KINDS:
        return
    now = now or datetime.now(UTC)
    records = [r for r in read_records(settings) if not r.updated]
    day_ago = now - timedelta(days=1)
    if opened is None:
        opened = [r.time for r in records if r.kind in RATE_LIMITED_KINDS]
    recent = sorted(t for t in opened if t >= day_ago)
    if len(recent) >= cfg.max_prs_per_day:
        if cfg.max_prs_per_day == 0:
            raise RateLimitError("rate limit: gitops.max_prs_per_day is 0 (use --force to publish anyway)")
        free = recent[-cfg.max_prs_per_day] + timedelta(days=1)
        raise RateLimitError(
            f"rate limit: {len(recent)} improvement PRs in the last 24 h{where} (gitops.max_prs_per_day = "
            f"{cfg.max_prs_per_day}); next one allowed after {free:%Y-%m-%d %H:%M} UTC (--force overrides)"
        )
    same_kind = [r for r in records if r.kind == kind]
    if same_kind and cfg.min_runs_between > 0:
        last = max(r.time for r in same_kind)
        runs = _root_runs_since(settings, last, cfg.min_runs_between)
        if runs < cfg.min_runs_between:
            raise RateLimitError(
                f"rate limit: only {runs} root run(s) traced since the last {kind} PR at {last:%Y-%m-%d %H:%M} UTC "
                f"(gitops.min_runs_between = {cfg.min_runs_between}; --force overrides)"
            )
