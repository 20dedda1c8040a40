"""Calendar days in Asia/Shanghai, months, and the names of the attendance streams.

Every day the attendance rules count is a calendar day in Asia/Shanghai: a check-in at
2025-01-31T23:30Z happened on 2025-02-01. Months are written ``YYYY-MM``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta

from zhucun.shared.china import SHANGHAI as SHANGHAI

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def local_day(moment: datetime) -> date:
    """The calendar day in Asia/Shanghai of an aware ``moment``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a moment without a time zone has no calendar day")
    return moment.astimezone(SHANGHAI).date()


def month_key(day: date) -> str:
    """``YYYY-MM`` of ``day``."""
    return f"{day.year:04d}-{day.month:02d}"


def parse_month(month: str) -> tuple[int, int]:
    """(year, month) of a ``YYYY-MM`` key; ValueError when malformed (year 0000 too: the
    calendar has none). The edges accept only months of the window (``bounds.Month``); this
    also reads the month of any day a moment of the window falls on in Shanghai
    (2100-01 for the last hours of 2099 in UTC)."""
    match = _MONTH.match(month)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"{month!r} is not a month (YYYY-MM)")
    return int(match.group(1)), int(match.group(2))


def month_bounds(month: str) -> tuple[date, date]:
    """The first and last day of ``month``."""
    year, number = parse_month(month)
    return date(year, number, 1), date(year, number, calendar.monthrange(year, number)[1])


def months_touched(first: date, last: date) -> list[str]:
    """The months of the days ``first`` to ``last`` inclusive, in order; empty when
    ``first`` is after ``last`` (the decider then refuses the dates, the caller need not)."""
    keys: list[str] = []
    if first > last:
        return keys
    year, number = first.year, first.month
    while (year, number) <= (last.year, last.month):
        keys.append(f"{year:04d}-{number:02d}")
        year, number = (year + 1, 1) if number == 12 else (year, number + 1)
    return keys


def each_day(first: date, last: date) -> Iterator[date]:
    """Every day from ``first`` to ``last`` inclusive."""
    day = first
    while day <= last:
        yield day
        if day == last:
            # Not one day further: the day after ``date.max`` does not exist.
            return
        day += timedelta(days=1)


def days_inclusive(first: date, last: date) -> int:
    """Calendar days from ``first`` to ``last``, both counted (0 when out of order)."""
    return max(0, (last - first).days + 1)


def month_stream(cadre_id: str, month: str) -> str:
    """The stream of one cadre's month: presence evidence, spot checks, the close."""
    parse_month(month)
    return f"attendance-month-{cadre_id}-{month}"


def leave_stream(cadre_id: str) -> str:
    """The stream of one cadre's leave (all years)."""
    return f"attendance-leave-{cadre_id}"


def work_stream(cadre_id: str) -> str:
    """The stream of one cadre's work diary and household visits."""
    return f"attendance-work-{cadre_id}"
