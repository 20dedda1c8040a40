"""Deciders of a cadre's month stream: check-ins, township confirmations, spot checks and
the month close. Pure: the clock ("today", "received at") comes with the command.

Idempotency: a check-in whose ``check_in_id`` the month already holds is a no-op whatever
its content (a phone resends its queue after a reinstall, possibly re-encoded, and the first
upload is the evidence). A confirmation or spot check repeated with the same id and content
is a no-op; with other content it is a ``DuplicateId``.

Late evidence (an app offline in the mountains) is accepted until the month closes; after
that every new piece of evidence for the month is refused with ``MonthAlreadyClosed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from zhucun.attendance.domain.commands import CheckIn, CloseMonth, ConfirmPresence, RecordSpotCheck
from zhucun.attendance.domain.days import local_day, month_bounds, month_key
from zhucun.attendance.domain.errors import (
    AttendanceRuleViolation,
    DuplicateId,
    MonthNotOver,
    NoGeofence,
)
from zhucun.attendance.domain.geo import DISTANCE_ROUNDING_M, evaluate_location
from zhucun.attendance.domain.guards import (
    require_leave_stream,
    require_month_stream,
    require_not_after,
    require_not_ahead,
    require_open,
    require_open_months,
    require_post,
)
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.attendance.domain.state import LeaveState, MonthState, evolve_month
from zhucun.attendance.domain.tally import month_tally
from zhucun.contracts.attendance.events import (
    CheckInRecorded,
    PresenceConfirmed,
    SpotCheckRecorded,
    SpotCheckResult,
    TravelFlag,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack

#: Each kept distance is off by at most half the rounding step, so two of them differ from
#: the true difference by at most one step: the lower bound of a journey subtracts it.
_ROUNDING_SLACK_M = DISTANCE_ROUNDING_M

_LATE = "evidence for it is no longer accepted"


# --- check-ins ------------------------------------------------------------------------------


def _travel_flag(
    occurred_at: datetime, village_id: str, distance: int, month: MonthState, max_speed: float
) -> TravelFlag | None:
    """Impossible travel against the check-ins recorded before, of the same village (the
    distances are from its centre) and with a location; the closest in time wins.

    The journey is at least | d_new - d_other | - 10 m (both distances are rounded); moving
    any distance in no time, or faster than ``max_speed`` km/h, is impossible."""
    found: TravelFlag | None = None
    for other in month.check_ins.values():
        if other.distance_m is None or other.village_id != village_id:
            continue
        gap = max(0, abs(distance - other.distance_m) - _ROUNDING_SLACK_M)
        if gap == 0:
            continue
        seconds = abs((occurred_at - other.occurred_at).total_seconds())
        # gap / seconds (m/s) x 3.6 > max_speed (km/h), without dividing by zero
        if seconds > 0 and gap * 3.6 <= max_speed * seconds:
            continue
        minutes = seconds / 60
        if found is None or minutes < found.minutes_apart:
            found = TravelFlag(
                other_check_in_id=other.check_in_id,
                minutes_apart=minutes,
                min_distance_m=gap,
                max_speed_kmh=max_speed,
            )
    return found


def check_in(command: CheckIn, month: MonthState, pack: PolicyPack) -> list[DomainEvent]:
    """Record a check-in in the month of its day (Asia/Shanghai).

    A known ``check_in_id`` is a no-op whatever the content. A location becomes
    ``LocationEvidence`` (and is discarded); an outside check-in is recorded but is not
    presence. A check-in implying impossible travel is recorded with a ``TravelFlag`` and
    still counts: the flag is for inspectors, not a verdict."""
    rules = pack.rules(AttendancePolicy)
    day = local_day(command.occurred_at)
    require_month_stream(month, command.cadre_id, month_key(day))
    if command.check_in_id in month.check_ins:
        return []
    require_open(month, _LATE)
    require_not_ahead(command.check_in_id, command.occurred_at, command.received_at)
    post = command.post
    require_post(post, command.cadre_id, day)
    evidence = None
    flag = None
    if command.location is not None:
        if post.geofence is None:
            raise NoGeofence(post.village_id)
        evidence = evaluate_location(command.location, post.geofence)
        flag = _travel_flag(
            command.occurred_at,
            post.village_id,
            evidence.distance_m,
            month,
            rules.max_travel_speed_kmh,
        )
    return [
        CheckInRecorded(
            check_in_id=command.check_in_id,
            cadre_id=command.cadre_id,
            assignment_id=post.assignment_id,
            village_id=post.village_id,
            occurred_at=command.occurred_at,
            day=day,
            location=evidence,
            travel_flag=flag,
        )
    ]


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """What became of one check-in of a batch."""

    check_in_id: str
    status: Literal["recorded", "duplicate", "refused"]
    #: Why it was refused.
    error: AttendanceRuleViolation | None = None
    #: The event recorded for it.
    event: CheckInRecorded | None = None


def check_in_batch(
    commands: Sequence[CheckIn], month: MonthState, pack: PolicyPack
) -> tuple[list[DomainEvent], list[ItemOutcome]]:
    """Check-ins of one month (an offline phone's queue), in order. Each is decided on the
    month as the items accepted before it left it: a repeated id in the batch is a duplicate,
    and travel is judged against earlier items too. A refused item never stops the others.
    Items of another month are the caller's mistake (ValueError)."""
    events: list[DomainEvent] = []
    outcomes: list[ItemOutcome] = []
    for command in commands:
        try:
            decided = check_in(command, month, pack)
        except AttendanceRuleViolation as refusal:
            outcomes.append(ItemOutcome(command.check_in_id, "refused", error=refusal))
            continue
        if not decided:
            outcomes.append(ItemOutcome(command.check_in_id, "duplicate"))
            continue
        for event in decided:
            month = evolve_month(month, event)
        events.extend(decided)
        recorded = decided[0]
        assert isinstance(recorded, CheckInRecorded)
        outcomes.append(ItemOutcome(command.check_in_id, "recorded", event=recorded))
    return events, outcomes


# --- township confirmation ------------------------------------------------------------------


def confirm_presence(
    command: ConfirmPresence, months: Mapping[str, MonthState]
) -> dict[str, list[DomainEvent]]:
    """The township confirms presence on ``days``: one ``PresenceConfirmed`` per month, with
    that month's days sorted (repeated days collapse). ``months`` holds the state of every
    month of the days, by month key. A repeat (same id, days and note) decides nothing."""
    days = sorted(set(command.days))
    by_month: dict[str, list[date]] = {}
    for day in days:
        by_month.setdefault(month_key(day), []).append(day)

    earlier = [
        state.confirmations[command.confirmation_id]
        for state in months.values()
        if command.confirmation_id in state.confirmations
    ]
    if earlier:
        earlier_days = sorted(day for confirmation in earlier for day in confirmation.days)
        if earlier_days == days and all(c.note == command.note for c in earlier):
            return {}
        raise DuplicateId("confirmation", command.confirmation_id)

    require_open_months(months, sorted(by_month), command.cadre_id, _LATE)
    for day in days:
        require_not_after(day, command.today, "presence confirmed")
    require_post(command.post, command.cadre_id, *days)
    return {
        key: [
            PresenceConfirmed(
                confirmation_id=command.confirmation_id,
                cadre_id=command.cadre_id,
                assignment_id=command.post.assignment_id,
                village_id=command.post.village_id,
                days=tuple(month_days),
                note=command.note,
            )
        ]
        for key, month_days in sorted(by_month.items())
    }


# --- spot checks ----------------------------------------------------------------------------


def record_spot_check(
    command: RecordSpotCheck, month: MonthState, leave: LeaveState
) -> list[DomainEvent]:
    """An unannounced spot check (四不两直). An absence on a day covered by approved leave of
    any kind (village business included) is excused by it; otherwise it is unexcused."""
    require_month_stream(month, command.cadre_id, month_key(command.day))
    require_leave_stream(leave, command.cadre_id)
    known = month.spot_checks.get(command.spot_check_id)
    if known is not None:
        same = (known.day, known.result, known.findings, known.assignment_id) == (
            command.day,
            command.result,
            command.findings,
            command.post.assignment_id,
        )
        if same:
            return []
        raise DuplicateId("spot check", command.spot_check_id)
    require_open(month, _LATE)
    require_not_after(command.day, command.today, "a spot check")
    require_post(command.post, command.cadre_id, command.day)
    excuse = None
    if command.result is SpotCheckResult.ABSENT:
        covering = leave.approved_covering(command.day)
        excuse = None if covering is None else covering.leave_id
    return [
        SpotCheckRecorded(
            spot_check_id=command.spot_check_id,
            cadre_id=command.cadre_id,
            assignment_id=command.post.assignment_id,
            village_id=command.post.village_id,
            day=command.day,
            result=command.result,
            excused_by_leave_id=excuse,
            findings=command.findings,
        )
    ]


# --- month close ----------------------------------------------------------------------------


def close_month(
    command: CloseMonth, month: MonthState, leave: LeaveState, pack: PolicyPack
) -> list[DomainEvent]:
    """Close the month once it is over: ``MonthClosed`` with the tally (see ``tally``) under
    ``pack``. After this no evidence for the month is accepted."""
    require_month_stream(month, command.cadre_id, command.month)
    require_leave_stream(leave, command.cadre_id)
    require_open(month)
    _, last = month_bounds(command.month)
    if command.today <= last:
        raise MonthNotOver(command.month, last)
    return [month_tally(month, leave, command.posts, pack).closed_event()]
