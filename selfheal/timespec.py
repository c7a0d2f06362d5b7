"""One grammar for "since when" / "older than what": ``7d``, ``12h``, ``2w``, ``1y``, ISO dates, ``all``.

Every command with ``--since`` or ``--older-than`` (traces, curate, ...)
parses its value here, so a window a user learnt on one command works on all
of them and a bad value is rejected with the same list of accepted forms.
It is a foundation module (stdlib only): the CLI wraps it in a click type,
library callers that take a string use it directly.

Accepted (case-insensitive, surrounding blanks ignored):

- a positive number and a unit: ``45s``, ``30m``, ``12h``, ``7d``, ``2w``,
  ``1y`` (365 days), decimals allowed (``1.5h``) -> a :class:`~datetime.timedelta`
  (a window back from now);
- an ISO 8601 date or datetime: ``2026-01-31``, ``2026-01-31T12:00``,
  ``2026-01-31T12:00:00Z``, ``2026-01-31 12:00+02:00`` -> an aware
  :class:`~datetime.datetime` (no offset means UTC);
- ``all`` -> ``None`` (no bound).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

#: One line listing what is accepted, quoted in every error.
ACCEPTED_FORMS = (
    "a number and a unit (45s, 30m, 12h, 7d, 2w, 1y), an ISO date or datetime (2026-01-31, 2026-01-31T12:00Z), "
    "or 'all'"
)

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}
_WINDOW = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdwy])$", re.ASCII)

TimeSpec = timedelta | datetime | None


def parse_timespec(text: str) -> TimeSpec:
    """``text`` as a look-back window (timedelta), an instant (aware datetime) or None for ``all``.

    Raises ValueError naming the value and :data:`ACCEPTED_FORMS`; never
    anything else, whatever the input.
    """
    value = str(text).strip()
    low = value.lower()
    if low == "all":
        return None
    m = _WINDOW.match(low)
    if m:
        amount = float(m.group(1))
        if amount <= 0:
            raise ValueError(f"{value!r}: a duration must be positive; use {ACCEPTED_FORMS}")
        try:
            return timedelta(seconds=amount * _UNITS[m.group(2)])
        except OverflowError:
            raise ValueError(f"{value!r}: the duration is too long; use {ACCEPTED_FORMS}") from None
    try:
        when = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        pass
    else:
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    raise ValueError(f"{value!r} is not a duration or date: use {ACCEPTED_FORMS}")


def cutoff(spec: TimeSpec, now: datetime | None = None) -> datetime | None:
    """The instant ``spec`` stands for: ``now - window``, the date itself, or None for ``all``."""
    if spec is None or isinstance(spec, datetime):
        return spec
    try:
        return (now or datetime.now(UTC)) - spec
    except OverflowError:  # a window reaching before year 1: everything
        return datetime.min.replace(tzinfo=UTC)

