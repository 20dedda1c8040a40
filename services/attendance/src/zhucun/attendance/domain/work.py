"""Deciders of a cadre's work stream (驻村日记 and 入户走访), and household visit coverage.

Diary entries and visits are the record of work, not presence evidence: they do not count
as days in the village, so a closed month does not stop them (a diary written up late is
still a diary). Their day must have come (not after today in China's calendar) and the post
must cover it. A repeat with the same id and content is a no-op; the same id with other
content is a ``DuplicateId``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from zhucun.attendance.domain.commands import Post, RecordHouseholdVisit, WriteDiaryEntry
from zhucun.attendance.domain.errors import DuplicateId
from zhucun.attendance.domain.guards import (
    require_not_after,
    require_post,
    require_work_stream,
)
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.attendance.domain.state import WorkState, text_digest
from zhucun.contracts.attendance.events import DiaryEntryWritten, HouseholdVisited
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack


def write_diary_entry(command: WriteDiaryEntry, work: WorkState) -> list[DomainEvent]:
    require_work_stream(work, command.cadre_id)
    known = work.diary.get(command.entry_id)
    if known is not None:
        if (known.day, known.text_digest, known.assignment_id) == (
            command.day,
            text_digest(command.text),
            command.post.assignment_id,
        ):
            return []
        raise DuplicateId("diary entry", command.entry_id)
    require_not_after(command.day, command.today, "a diary entry")
    require_post(command.post, command.cadre_id, command.day)
    return [
        DiaryEntryWritten(
            entry_id=command.entry_id,
            cadre_id=command.cadre_id,
            assignment_id=command.post.assignment_id,
            village_id=command.post.village_id,
            day=command.day,
            text=command.text,
        )
    ]


def record_household_visit(command: RecordHouseholdVisit, work: WorkState) -> list[DomainEvent]:
    require_work_stream(work, command.cadre_id)
    known = work.visits.get(command.visit_id)
    if known is not None:
        if (known.household_id, known.visited_on, known.note, known.assignment_id) == (
            command.household_id,
            command.visited_on,
            command.note,
            command.post.assignment_id,
        ):
            return []
        raise DuplicateId("household visit", command.visit_id)
    require_not_after(command.visited_on, command.today, "a household visit")
    require_post(command.post, command.cadre_id, command.visited_on)
    return [
        HouseholdVisited(
            visit_id=command.visit_id,
            cadre_id=command.cadre_id,
            assignment_id=command.post.assignment_id,
            village_id=command.post.village_id,
            household_id=command.household_id,
            visited_on=command.visited_on,
            note=command.note,
        )
    ]


@dataclass(frozen=True, slots=True)
class VisitCoverage:
    """How far the cadre has come visiting every household of the village in one assignment
    (a new cadre visits them all within the pack's ``household_visit_days``)."""

    assignment_id: str
    #: Households of the village (from the replica); 0 when unknown.
    households: int
    #: Distinct households visited in this assignment.
    visited: int
    #: visited / households, at most 1; 0 when the number of households is unknown.
    share: float
    #: The last day of the first ``household_visit_days`` days on post.
    deadline: date
    #: When all households are visited: the day the last of them was first visited.
    all_visited_on: date | None
    #: When all are visited: whether by the deadline. None while some are not visited yet
    #: (the decider has no clock: the caller compares ``deadline`` with today).
    within_deadline: bool | None

    @property
    def complete(self) -> bool:
        return self.all_visited_on is not None


def visit_coverage(work: WorkState, post: Post, pack: PolicyPack) -> VisitCoverage:
    rules = pack.rules(AttendancePolicy)
    if post.cadre_id != work.cadre_id:
        raise ValueError(
            f"assignment {post.assignment_id!r} is of cadre {post.cadre_id!r},"
            f" not {work.cadre_id!r}"
        )
    first_visits = sorted(work.households_visited.get(post.assignment_id, {}).values())
    households = post.households
    visited = len(first_visits)
    deadline = post.term_start + timedelta(days=rules.household_visit_days - 1)
    all_visited_on = None
    within = None
    if households > 0 and visited >= households:
        all_visited_on = first_visits[households - 1]
        within = all_visited_on <= deadline
    return VisitCoverage(
        assignment_id=post.assignment_id,
        households=households,
        visited=visited,
        share=min(1.0, visited / households) if households > 0 else 0.0,
        deadline=deadline,
        all_visited_on=all_visited_on,
        within_deadline=within,
    )
