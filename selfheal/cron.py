"""The standard five-field cron form (``17 3 * * 1``): when a scheduled workflow last ran and runs next.

``selfheal status`` shows the optimize workflow's schedule with its next and
previous times; a tiny parser here (stdlib only, a foundation module) spares
a dependency. Supported per field: ``*``, numbers, ranges ``a-b``, steps
``*/n`` and ``a-b/n``, lists ``a,b``; day-of-week 0-7 (0 and 7 are Sunday)
and the three-letter month and day names GitHub Actions accepts. When both
day-of-month and day-of-week are restricted a day matching either counts,
as in cron. Times are UTC (GitHub runs schedules in UTC).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], start=1)}
_DAYS = {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}
#: (name, low, high, names) per field, in cron's order
_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
           ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
#: How far :func:`next_time` / :func:`previous_time` look (a Feb 29 schedule fires every 4 years).
_HORIZON_DAYS = 366 * 8


@dataclass(frozen=True)
class CronSpec:
    """A parsed expression: the allowed values of each field."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    any_day: bool
    any_weekday: bool

    def day_matches(self, day: datetime) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days
        dow = (day.isoweekday() % 7) in self.weekdays
        if self.any_day and self.any_weekday:
            return True
        if self.any_day:
            return dow
        if self.any_weekday:
            return dom
        return dom or dow


def _value(text: str, low: int, high: int, names: dict[str, int], what: str) -> int:
    key = text.lower()
    if key in names:
        return names[key]
    if not text.isdigit():
        raise ValueError(f"{what}: {text!r} is not a number")
    n = int(text)
    if not low <= n <= high:
        raise ValueError(f"{what}: {n} is outside {low}-{high}")
    return n


def _field(text: str, what: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    out: set[int] = set()
    for part in text.split(","):
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{what}: bad step {step_text!r}")
            step = int(step_text)
        if rng == "*":
            a, b = low, high
        elif "-" in rng:
            left, _, right = rng.partition("-")
            a, b = _value(left, low, high, names, what), _value(right, low, high, names, what)
            if a > b:
                raise ValueError(f"{what}: range {rng!r} runs backwards")
        else:
            a = _value(rng, low, high, names, what)
            b = high if step_text else a
        out.update(range(a, b + 1, step))
    return frozenset(out)


def parse_cron(expression: str) -> CronSpec:
    """``expression`` as a :class:`CronSpec`; ValueError naming the bad field otherwise."""
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(f"{expression!r}: a cron schedule has 5 fields (minute hour day month weekday)")
    sets = [_field(p, name, lo, hi, names) for p, (name, lo, hi, names) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return CronSpec(expression=" ".join(parts), minutes=sets[0], hours=sets[1], days=sets[2], months=sets[3],
                    weekdays=weekdays, any_day=parts[2] == "*", any_weekday=parts[4] == "*")


def _utc_minute(when: datetime) -> datetime:
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.replace(second=0, microsecond=0)


def next_time(spec: CronSpec, after: datetime) -> datetime | None:
    """The first scheduled minute strictly after ``after`` (None: none within eight years)."""
    start = _utc_minute(after) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for _ in range(_HORIZON_DAYS):
        if spec.day_matches(day):
            for h in sorted(spec.hours):
                for m in sorted(spec.minutes):
                    t = day.replace(hour=h, minute=m)
                    if t >= start:
                        return t
        day += timedelta(days=1)
    return None


def previous_time(spec: CronSpec, before: datetime) -> datetime | None:
    """The last scheduled minute at or before ``before`` (None: none within eight years)."""
    end = _utc_minute(before)
    day = end.replace(hour=0, minute=0)
    for _ in range(_HORIZON_DAYS):
        if spec.day_matches(day):
            for h in sorted(spec.hours, reverse=True):
                for m in sorted(spec.minutes, reverse=True):
                    t = day.replace(hour=h, minute=m)
                    if t <= end:
                        return t
        day -= timedelta(days=1)
    return None
