"""Checks shared by the deciders. A ``ValueError`` here is the caller's mistake (the HTTP
edge read the wrong stream or looked up another cadre's post), not a rule the cadre broke."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from typing import Final

from zhucun.attendance.domain.commands import Post
from zhucun.attendance.domain.errors import EvidenceFromTheFuture, MonthAlreadyClosed, NotOnPost
from zhucun.attendance.domain.state import LeaveState, MonthState, WorkState

#: A check-in may be stamped this much after the moment the service received it (clock
#: skew between phone and server); later than that it is evidence from the future.
CLOCK_SKEW_TOLERANCE: Final = timedelta(minutes=5)


def require_month_stream(state: MonthState, cadre_id: str, month: str) -> None:
    if state.cadre_id != cadre_id or state.month != month:
        raise ValueError(
            f"the decision needs the month {month} of cadre {cadre_id!r}, not the month"
            f" {state.month} of cadre {state.cadre_id!r}"
        )


def require_leave_stream(state: LeaveState, cadre_id: str) -> None:
    if state.cadre_id != cadre_id:
        raise ValueError(f"the leave of cadre {state.cadre_id!r} is not that of {cadre_id!r}")


def require_work_stream(state: WorkState, cadre_id: str) -> None:
    if state.cadre_id != cadre_id:
        raise ValueError(f"the work of cadre {state.cadre_id!r} is not that of {cadre_id!r}")


def require_open(state: MonthState, detail: str = "") -> None:
    if state.closed is not None:
        raise MonthAlreadyClosed(state.month, detail)


def require_open_months(
    months: Mapping[str, MonthState], keys: Iterable[str], cadre_id: str, detail: str = ""
) -> None:
    """Every month of ``keys`` is given and open."""
    for key in keys:
        state = months.get(key)
        if state is None:
            raise ValueError(f"the decision needs the state of month {key}")
        require_month_stream(state, cadre_id, key)
        require_open(state, detail)


def require_post(post: Post, cadre_id: str, *days: date) -> None:
    """``post`` is the cadre's and covers every one of ``days``."""
    if post.cadre_id != cadre_id:
        raise ValueError(
            f"assignment {post.assignment_id!r} is of cadre {post.cadre_id!r}, not {cadre_id!r}"
        )
    for day in days:
        if not post.covers(day):
            until = post.ended_on.isoformat() if post.ended_on else "now"
            raise NotOnPost(
                f"cadre {cadre_id!r} is not on post on {day}: assignment"
                f" {post.assignment_id!r} runs from {post.term_start} to {until}",
                assignment_id=post.assignment_id,
                day=day,
            )


def require_not_after(day: date, today: date, what: str) -> None:
    """``day`` has come: it is not after ``today`` (China's calendar)."""
    if day > today:
        raise EvidenceFromTheFuture(
            f"{what} for {day}, which is after today ({today})", when=day, now=today
        )


def require_not_ahead(check_in_id: str, occurred_at: datetime, received_at: datetime) -> None:
    """A check-in is not stamped later than it was received, beyond the clock-skew
    tolerance (``CLOCK_SKEW_TOLERANCE``)."""
    if occurred_at > received_at + CLOCK_SKEW_TOLERANCE:
        raise EvidenceFromTheFuture(
            f"check-in {check_in_id!r} happened at {occurred_at.isoformat()},"
            f" after it was received ({received_at.isoformat()})",
            when=occurred_at,
            now=received_at,
        )
