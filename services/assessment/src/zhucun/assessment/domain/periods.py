"""Quarters, years and evaluation periods, what a post covers, and the names of the
assessment streams.

Quarters are written ``YYYY-Qn`` (``2025-Q2`` is April to June 2025), years ``YYYY``, both
of the window of ``zhucun.shared.bounds`` (2000 to 2099), so no period's bounds overflow.
"""

from __future__ import annotations

import calendar
import re
from datetime import date

from zhucun.assessment.domain.commands import Post

_QUARTER = re.compile(r"^(20\d{2})-Q([1-4])$")
_PERIOD = re.compile(r"^(20\d{2})(?:-Q([1-4]))?$")


def quarter_of(day: date) -> str:
    """``YYYY-Qn`` of ``day``."""
    return f"{day.year:04d}-Q{(day.month - 1) // 3 + 1}"


def parse_quarter(quarter: str) -> tuple[int, int]:
    """(year, n) of a ``YYYY-Qn`` key; ValueError when malformed."""
    match = _QUARTER.match(quarter)
    if match is None:
        raise ValueError(f"{quarter!r} is not a quarter (YYYY-Qn)")
    return int(match.group(1)), int(match.group(2))


def quarter_bounds(quarter: str) -> tuple[date, date]:
    """The first and last day of ``quarter``."""
    year, number = parse_quarter(quarter)
    last_month = 3 * number
    return date(year, last_month - 2, 1), date(
        year, last_month, calendar.monthrange(year, last_month)[1]
    )


def year_bounds(year: int) -> tuple[date, date]:
    """1 January and 31 December of ``year``."""
    return date(year, 1, 1), date(year, 12, 31)


def round_opens_on(year: int) -> date:
    """The first day an annual round of ``year`` may be opened: 1 December, the year's last
    month (see ``docs/domain.md#assessment-annual-rounds``)."""
    return date(year, 12, 1)


def period_bounds(period: str) -> tuple[date, date]:
    """The first and last day of a villager-evaluation period: ``YYYY`` or ``YYYY-Qn``."""
    match = _PERIOD.match(period)
    if match is None:
        raise ValueError(f"{period!r} is neither a year (YYYY) nor a quarter (YYYY-Qn)")
    if match.group(2) is None:
        return year_bounds(int(match.group(1)))
    return quarter_bounds(period)


def post_covers(post: Post, day: date) -> bool:
    """Whether the cadre was on ``post`` on ``day``."""
    return post.term_start <= day and (post.ended_on is None or day <= post.ended_on)


def post_overlaps(post: Post, first: date, last: date) -> bool:
    """Whether the cadre was on ``post`` on at least one day of ``first``..``last``."""
    return post.term_start <= last and (post.ended_on is None or first <= post.ended_on)


# --- streams --------------------------------------------------------------------------------


def cadre_stream(cadre_id: str) -> str:
    """Inspections of the cadre, villager evaluations, term assessments, sanctions."""
    return f"assessment-cadre-{cadre_id}"


def team_stream(team_id: str) -> str:
    """Inspections of one work team."""
    return f"assessment-team-{team_id}"


def quarter_stream(county: str, quarter: str) -> str:
    """The county's quarter: assessments, 双约谈 obligations, red and blue lists."""
    parse_quarter(quarter)
    return f"assessment-quarter-{county}-{quarter}"


def annual_stream(county: str, year: int) -> str:
    """The county's annual round of ``year``."""
    return f"assessment-annual-{county}-{year:04d}"
