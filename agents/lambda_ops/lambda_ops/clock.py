"""Where the lambda_ops tools get "now" from: the wall clock, or a frozen simulated instant.

Replaying recorded model responses against a simulated account must produce
byte-identical tool outputs on any day (response caches, regression tests,
A/B comparisons of prompt versions). So a simulated account lives at one
fixed instant, :data:`SIMULATED_NOW`, that never advances: data is seeded
relative to it, metric and log windows end at it, and every change made during
the session happened "at" it. Only real accounts read the wall clock, and only
through :func:`wall_clock` (the single place that may call ``datetime.now``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

Clock = Callable[[], datetime]

# A Monday noon (UTC). Any fixed instant works; it must never depend on today.
SIMULATED_NOW = datetime(2025, 6, 2, 12, 0, 0, tzinfo=timezone.utc)

# AWS Lambda's timestamp format (LastModified): '2025-06-02T12:00:00.000+0000'.
LAMBDA_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.000+0000"


def wall_clock() -> datetime:
    """The real current time (UTC): for real AWS accounts only."""
    return datetime.now(timezone.utc)


def frozen_clock(instant: datetime) -> Clock:
    """A clock that always answers ``instant`` (a simulated account's clock)."""
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError("a simulated instant must be timezone-aware")
    fixed = instant.astimezone(timezone.utc)
    return lambda: fixed


def lambda_time(t: datetime) -> str:
    """``t`` in Lambda's LastModified format."""
    return t.astimezone(timezone.utc).strftime(LAMBDA_TIME_FORMAT)
