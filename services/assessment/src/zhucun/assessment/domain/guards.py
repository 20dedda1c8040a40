"""Checks shared by the deciders. A ``ValueError`` here is the caller's mistake (a use case
read the wrong stream or passed another cadre's facts), not a rule anyone broke."""

from __future__ import annotations

from datetime import date

from zhucun.assessment.domain.commands import AttendanceFacts, Post
from zhucun.assessment.domain.errors import FutureDate, NotOnPost
from zhucun.assessment.domain.periods import post_covers, post_overlaps
from zhucun.assessment.domain.state import CadreState


def require_cadre_stream(state: CadreState, post: Post) -> None:
    if state.cadre_id != post.cadre_id:
        raise ValueError(
            f"assignment {post.assignment_id!r} is of cadre {post.cadre_id!r}, not of the"
            f" stream's cadre {state.cadre_id!r}"
        )


def require_facts_of(facts: AttendanceFacts, post: Post, year: int) -> None:
    """The attendance facts are the post's cadre's, of ``year``."""
    if facts.cadre_id != post.cadre_id:
        raise ValueError(
            f"the attendance facts are of cadre {facts.cadre_id!r}, not {post.cadre_id!r}"
        )
    if facts.year != year:
        raise ValueError(f"the attendance facts are of {facts.year}, not {year}")


def require_not_after(day: date, today: date, what: str) -> None:
    if day > today:
        raise FutureDate(what, day, today)


def _until(post: Post) -> str:
    return post.ended_on.isoformat() if post.ended_on else "now"


def require_covers(post: Post, day: date) -> None:
    """The cadre was on ``post`` on ``day``."""
    if not post_covers(post, day):
        raise NotOnPost(
            f"cadre {post.cadre_id!r} was not on post on {day}: assignment"
            f" {post.assignment_id!r} runs from {post.term_start} to {_until(post)}",
            cadre_id=post.cadre_id,
            assignment_id=post.assignment_id,
            first_day=day,
            last_day=day,
        )


def require_overlaps(post: Post, first: date, last: date, period: str, county: str) -> None:
    """The cadre was on ``post`` in ``county`` on a day of ``period`` (``first``..``last``)."""
    if post.county != county:
        raise NotOnPost(
            f"assignment {post.assignment_id!r} of cadre {post.cadre_id!r} is in county"
            f" {post.county}, not {county}",
            cadre_id=post.cadre_id,
            assignment_id=post.assignment_id,
            first_day=first,
            last_day=last,
        )
    if not post_overlaps(post, first, last):
        raise NotOnPost(
            f"cadre {post.cadre_id!r} was not on post during {period}: assignment"
            f" {post.assignment_id!r} runs from {post.term_start} to {_until(post)}",
            cadre_id=post.cadre_id,
            assignment_id=post.assignment_id,
            first_day=first,
            last_day=last,
        )
