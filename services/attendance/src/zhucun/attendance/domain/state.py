"""The state of the three attendance streams, and ``evolve`` (state, event) -> state.

* ``MonthState``: one cadre's month (``attendance-month-{cadre}-{YYYY-MM}``): check-ins,
  township confirmations, spot checks and the close.
* ``LeaveState``: one cadre's leave (``attendance-leave-{cadre}``).
* ``WorkState``: one cadre's work diary and household visits (``attendance-work-{cadre}``).

State is immutable: ``evolve_*`` return a new state and never touch the old one (mappings are
copied, not mutated), so a decider may keep any earlier state it likes. Each ``evolve_*``
ignores event types that do not belong to its stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum

from zhucun.attendance.domain.days import each_day, month_bounds
from zhucun.contracts.attendance.events import (
    ApprovalLevel,
    CheckInRecorded,
    DiaryEntryWritten,
    HouseholdVisited,
    LeaveApproved,
    LeaveCancelled,
    LeaveKind,
    LeaveRejected,
    LeaveRequested,
    MonthClosed,
    PresenceConfirmed,
    SpotCheckRecorded,
    SpotCheckResult,
    TravelFlag,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.state import fold, frozen, with_entry


def text_digest(text: str) -> str:
    """What the state keeps of a long text: enough to recognise a repeat."""
    return hashlib.sha256(text.encode()).hexdigest()


# --- month ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CheckInRecord:
    check_in_id: str
    assignment_id: str
    village_id: str
    occurred_at: datetime
    day: date
    #: Distance from the village centre (rounded to 10 m), None without a location.
    distance_m: int | None
    inside_geofence: bool | None
    is_presence: bool
    travel_flag: TravelFlag | None = None


@dataclass(frozen=True, slots=True)
class Confirmation:
    """A township confirmation, as far as it concerns this month."""

    confirmation_id: str
    assignment_id: str
    #: The confirmed days of this month, sorted.
    days: tuple[date, ...]
    note: str


@dataclass(frozen=True, slots=True)
class SpotCheck:
    spot_check_id: str
    assignment_id: str
    day: date
    result: SpotCheckResult
    excused_by_leave_id: str | None
    findings: str

    @property
    def absent(self) -> bool:
        return self.result is SpotCheckResult.ABSENT


@dataclass(frozen=True, slots=True)
class MonthState:
    """One cadre's month: its presence evidence, spot checks and close."""

    cadre_id: str
    month: str
    #: By id, in the order they were recorded.
    check_ins: Mapping[str, CheckInRecord] = field(default_factory=frozen)
    confirmations: Mapping[str, Confirmation] = field(default_factory=frozen)
    #: Days the township confirmed (any confirmation).
    confirmed_days: frozenset[date] = frozenset()
    spot_checks: Mapping[str, SpotCheck] = field(default_factory=frozen)
    closed: MonthClosed | None = None

    @classmethod
    def empty(cls, cadre_id: str, month: str) -> MonthState:
        month_bounds(month)  # raises ValueError when malformed
        return cls(cadre_id=cadre_id, month=month)

    @property
    def is_closed(self) -> bool:
        return self.closed is not None

    @property
    def first_day(self) -> date:
        return month_bounds(self.month)[0]

    @property
    def last_day(self) -> date:
        return month_bounds(self.month)[1]

    def presence_days(self) -> frozenset[date]:
        """Days with presence evidence: a check-in that counts, or a township confirmation."""
        checked_in = {c.day for c in self.check_ins.values() if c.is_presence}
        return frozenset(checked_in) | self.confirmed_days


def evolve_month(state: MonthState, event: DomainEvent) -> MonthState:
    """The month after ``event``. Pure: ``state`` is left as it was."""
    match event:
        case CheckInRecorded():
            record = CheckInRecord(
                check_in_id=event.check_in_id,
                assignment_id=event.assignment_id,
                village_id=event.village_id,
                occurred_at=event.occurred_at,
                day=event.day,
                distance_m=None if event.location is None else event.location.distance_m,
                inside_geofence=None if event.location is None else event.location.inside_geofence,
                is_presence=event.is_presence,
                travel_flag=event.travel_flag,
            )
            return replace(state, check_ins=with_entry(state.check_ins, event.check_in_id, record))
        case PresenceConfirmed():
            confirmation = Confirmation(
                confirmation_id=event.confirmation_id,
                assignment_id=event.assignment_id,
                days=tuple(sorted(event.days)),
                note=event.note,
            )
            return replace(
                state,
                confirmations=with_entry(state.confirmations, event.confirmation_id, confirmation),
                confirmed_days=state.confirmed_days | frozenset(event.days),
            )
        case SpotCheckRecorded():
            spot_check = SpotCheck(
                spot_check_id=event.spot_check_id,
                assignment_id=event.assignment_id,
                day=event.day,
                result=event.result,
                excused_by_leave_id=event.excused_by_leave_id,
                findings=event.findings,
            )
            return replace(
                state, spot_checks=with_entry(state.spot_checks, event.spot_check_id, spot_check)
            )
        case MonthClosed():
            return replace(state, closed=event)
    return state


# --- leave ----------------------------------------------------------------------------------


class LeaveStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class Leave:
    leave_id: str
    assignment_id: str
    village_id: str
    kind: LeaveKind
    first_day: date
    last_day: date
    days: int
    purpose: str
    #: Who must approve it (fixed when requested, under ``policy_version``).
    approval_level: ApprovalLevel
    policy_version: str
    status: LeaveStatus = LeaveStatus.PENDING
    approved_at_level: ApprovalLevel | None = None
    #: Why it was rejected or cancelled.
    reason: str = ""

    @property
    def is_active(self) -> bool:
        """Pending or approved: it holds its dates against other leave."""
        return self.status in (LeaveStatus.PENDING, LeaveStatus.APPROVED)

    @property
    def is_approved(self) -> bool:
        return self.status is LeaveStatus.APPROVED

    def covers(self, day: date) -> bool:
        return self.first_day <= day <= self.last_day

    def overlaps(self, first_day: date, last_day: date) -> bool:
        return self.first_day <= last_day and first_day <= self.last_day

    def days_within(self, first_day: date, last_day: date) -> frozenset[date]:
        """Its days from ``first_day`` to ``last_day``."""
        return frozenset(each_day(max(first_day, self.first_day), min(last_day, self.last_day)))


@dataclass(frozen=True, slots=True)
class LeaveState:
    """One cadre's leave, every year."""

    cadre_id: str
    #: By id, in the order they were requested.
    leaves: Mapping[str, Leave] = field(default_factory=frozen)

    @classmethod
    def empty(cls, cadre_id: str) -> LeaveState:
        return cls(cadre_id=cadre_id)

    def approved_covering(self, day: date) -> Leave | None:
        """The approved leave (any kind) covering ``day``, if any."""
        return next((lv for lv in self.leaves.values() if lv.is_approved and lv.covers(day)), None)

    def active_overlapping(self, first_day: date, last_day: date) -> Leave | None:
        """A pending or approved leave sharing a day with ``first_day``..``last_day``."""
        return next(
            (
                lv
                for lv in self.leaves.values()
                if lv.is_active and lv.overlaps(first_day, last_day)
            ),
            None,
        )

    def approved_days(self, kind: LeaveKind, first_day: date, last_day: date) -> frozenset[date]:
        """Days from ``first_day`` to ``last_day`` on approved leave of ``kind`` (each once)."""
        days: frozenset[date] = frozenset()
        for lv in self.leaves.values():
            if lv.is_approved and lv.kind is kind:
                days |= lv.days_within(first_day, last_day)
        return days


def evolve_leave(state: LeaveState, event: DomainEvent) -> LeaveState:
    """The leave after ``event``. Pure: ``state`` is left as it was."""
    match event:
        case LeaveRequested():
            leave = Leave(
                leave_id=event.leave_id,
                assignment_id=event.assignment_id,
                village_id=event.village_id,
                kind=event.kind,
                first_day=event.first_day,
                last_day=event.last_day,
                days=event.days,
                purpose=event.purpose,
                approval_level=event.approval_level,
                policy_version=event.policy_version,
            )
            return replace(state, leaves=with_entry(state.leaves, event.leave_id, leave))
        case LeaveApproved():
            leave = replace(
                state.leaves[event.leave_id],
                status=LeaveStatus.APPROVED,
                approved_at_level=event.approved_at_level,
            )
            return replace(state, leaves=with_entry(state.leaves, event.leave_id, leave))
        case LeaveRejected():
            leave = replace(
                state.leaves[event.leave_id], status=LeaveStatus.REJECTED, reason=event.reason
            )
            return replace(state, leaves=with_entry(state.leaves, event.leave_id, leave))
        case LeaveCancelled():
            leave = replace(
                state.leaves[event.leave_id], status=LeaveStatus.CANCELLED, reason=event.reason
            )
            return replace(state, leaves=with_entry(state.leaves, event.leave_id, leave))
    return state


# --- work -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DiaryEntry:
    entry_id: str
    assignment_id: str
    village_id: str
    day: date
    #: SHA-256 of the text: enough to tell a repeat from another entry with the same id.
    text_digest: str


@dataclass(frozen=True, slots=True)
class Visit:
    visit_id: str
    assignment_id: str
    village_id: str
    household_id: str
    visited_on: date
    note: str


@dataclass(frozen=True, slots=True)
class WorkState:
    """One cadre's work diary and household visits."""

    cadre_id: str
    diary: Mapping[str, DiaryEntry] = field(default_factory=frozen)
    visits: Mapping[str, Visit] = field(default_factory=frozen)
    #: assignment id -> household id -> the day of its first visit in that assignment.
    households_visited: Mapping[str, Mapping[str, date]] = field(default_factory=frozen)

    @classmethod
    def empty(cls, cadre_id: str) -> WorkState:
        return cls(cadre_id=cadre_id)


def evolve_work(state: WorkState, event: DomainEvent) -> WorkState:
    """The work record after ``event``. Pure: ``state`` is left as it was."""
    match event:
        case DiaryEntryWritten():
            entry = DiaryEntry(
                entry_id=event.entry_id,
                assignment_id=event.assignment_id,
                village_id=event.village_id,
                day=event.day,
                text_digest=text_digest(event.text),
            )
            return replace(state, diary=with_entry(state.diary, event.entry_id, entry))
        case HouseholdVisited():
            visit = Visit(
                visit_id=event.visit_id,
                assignment_id=event.assignment_id,
                village_id=event.village_id,
                household_id=event.household_id,
                visited_on=event.visited_on,
                note=event.note,
            )
            # Visits arrive out of order (offline phones): the first visit is the earliest.
            households = state.households_visited.get(event.assignment_id, frozen())
            known = households.get(event.household_id)
            if known is None or event.visited_on < known:
                households = with_entry(households, event.household_id, event.visited_on)
            return replace(
                state,
                visits=with_entry(state.visits, event.visit_id, visit),
                households_visited=with_entry(
                    state.households_visited, event.assignment_id, households
                ),
            )
    return state


# --- folding --------------------------------------------------------------------------------


def fold_month(state: MonthState, events: Iterable[DomainEvent]) -> MonthState:
    return fold(evolve_month, state, events)


def fold_leave(state: LeaveState, events: Iterable[DomainEvent]) -> LeaveState:
    return fold(evolve_leave, state, events)


def fold_work(state: WorkState, events: Iterable[DomainEvent]) -> WorkState:
    return fold(evolve_work, state, events)
