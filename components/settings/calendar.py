"""systemd OnCalendar expressions, judged without systemd (settings run on the operator's machine).

A pure reading of the part of systemd.time(7)'s grammar a backup schedule needs: the shorthands
(daily, weekly, …), an optional weekday list (`Mon..Fri`, `Sat,Sun`), an optional date `[Y-]M-D`
and an optional time `h:m[:s]`, each component `*` or a comma list of `N`, `N..M`, `N/R`,
`N..M/R`. Anything else (time zones, `~`, fractions of a second, two-digit years) is refused even
where systemd would take it: the subset is small enough to be checked against the real parser
(`systemd-analyze calendar`, in tests/test_calendar.py), which compares the next elapses.

A schedule that never elapses, or leaves more than `MAX_GAP` between runs, is refused too: systemd
would accept it and the workspace would silently go without backups.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass

from components.settings import rules

#: The longest gap between two backups a schedule may leave (monthly, e.g. the first Sunday of each month).
MAX_GAP = dt.timedelta(days=35)
#: How far ahead schedules are evaluated: a leap-year cycle plus a gap.
HORIZON = dt.timedelta(days=4 * 366) + MAX_GAP

SHORTHANDS = {
    "minutely": "*-*-* *:*:00",
    "hourly": "*-*-* *:00:00",
    "daily": "*-*-* 00:00:00",
    "weekly": "Mon *-*-* 00:00:00",
    "monthly": "*-*-01 00:00:00",
    "quarterly": "*-01,04,07,10-01 00:00:00",
    "semiannually": "*-01,07-01 00:00:00",
    "yearly": "*-01-01 00:00:00",
    "annually": "*-01-01 00:00:00",
}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_ITEM = re.compile(r"^(?P<start>\d+)(?:\.\.(?P<end>\d+))?(?:/(?P<step>\d+))?$")


@dataclass(frozen=True)
class Calendar:
    """The allowed values of each component; a time matches when every component does."""

    weekdays: frozenset[int]  # 0 = Monday, as datetime.weekday()
    years: frozenset[int] | None  # None = any year
    months: frozenset[int]
    days: frozenset[int]
    times: tuple[dt.time, ...]  # sorted

    def matches(self, day: dt.date) -> bool:
        return (day.weekday() in self.weekdays and day.month in self.months and day.day in self.days
                and (self.years is None or day.year in self.years))

    def runs(self, after: dt.datetime, until: dt.datetime) -> Iterator[dt.datetime]:
        """Every elapse strictly after `after` and not after `until`, in order."""
        day = after.date()
        while day <= until.date():
            if self.matches(day):
                for t in self.times:
                    moment = dt.datetime.combine(day, t)
                    if after < moment <= until:
                        yield moment
            day += dt.timedelta(days=1)

    def longest_gap(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """The longest time without a run between `start` and `end` (runs within a day are hours apart at most)."""
        longest, previous, day = dt.timedelta(0), start, start.date()
        while day <= end.date():
            if self.matches(day):
                first, last = (dt.datetime.combine(day, t) for t in (self.times[0], self.times[-1]))
                if last > start:
                    longest = max(longest, max(first, start) - previous)
                    previous = last
            day += dt.timedelta(days=1)
        return max(longest, end - previous)


def _component(text: str, lo: int, hi: int) -> frozenset[int]:
    if text == "*":
        return frozenset(range(lo, hi + 1))
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            raise ValueError(item)
        start = int(match["start"])
        end = int(match["end"]) if match["end"] else (hi if match["step"] else start)
        step = int(match["step"]) if match["step"] else 1
        if not lo <= start <= end <= hi or step < 1:
            raise ValueError(item)
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _weekdays(text: str) -> frozenset[int]:
    def day(name: str) -> int:
        name = name.lower()
        for index, full in enumerate(WEEKDAYS):
            if name in (full, full[:3]):
                return index
        raise ValueError(name)

    found: set[int] = set()
    for item in text.split(","):
        first, _, last = item.partition("..")
        start = day(first)
        end = day(last) if last else start
        if end < start:
            raise ValueError(item)
        found.update(range(start, end + 1))
    return frozenset(found)


def parse(expression: str) -> Calendar:
    """The calendar of `expression`, or ValueError if it is outside the grammar described above."""
    text = " ".join(expression.split())
    text = SHORTHANDS.get(text.lower(), text)
    tokens = text.split(" ")
    if not 1 <= len(tokens) <= 3:
        raise ValueError(text)
    weekdays = frozenset(range(7))
    if tokens[0][:1].isalpha():
        weekdays = _weekdays(tokens.pop(0))
    date = tokens.pop(0) if tokens and "-" in tokens[0] else "*-*-*"
    time = tokens.pop(0) if tokens and ":" in tokens[0] else "00:00:00"
    if tokens:
        raise ValueError(text)
    parts = date.split("-")
    if len(parts) == 2:
        parts.insert(0, "*")
    if len(parts) != 3 or not (parts[0] == "*" or all(len(y.split("..")[0].split("/")[0]) == 4 for y in parts[0].split(","))):
        raise ValueError(date)
    clock = time.split(":")
    if len(clock) == 2:
        clock.append("00")
    if len(clock) != 3:
        raise ValueError(time)
    hours, minutes, seconds = _component(clock[0], 0, 23), _component(clock[1], 0, 59), _component(clock[2], 0, 59)
    return Calendar(
        weekdays=weekdays,
        years=None if parts[0] == "*" else _component(parts[0], 1970, 2199),
        months=_component(parts[1], 1, 12),
        days=_component(parts[2], 1, 31),
        times=tuple(sorted(dt.time(h, m, s) for h in hours for m in minutes for s in seconds)),
    )


def schedule(value: str, today: dt.date) -> str:
    """A backup timer's OnCalendar value: in the checked grammar, and running at least every `MAX_GAP`."""
    try:
        calendar = parse(value)
    except ValueError:
        raise rules.BY_NAME["calendar-systemd"].error() from None
    start = dt.datetime.combine(today, dt.time())
    if calendar.longest_gap(start, start + HORIZON) > MAX_GAP:
        raise rules.BY_NAME["calendar-never"].error()
    return " ".join(value.split())
