"""Typed refusals of the attendance decider.

Each error is a :class:`~zhucun.shared.rules.RuleViolation`: a stable ``code`` slug (the
HTTP edge turns it into the problem ``type`` ``attendance/<code-with-dashes>``), a ``kind``
saying how the edge answers (``zhucun.shared.rules`` maps it to a status, once), a
``message`` for people, and the rule's figures as attributes (the problem's members).
``retryable`` refusals say that the facts the decider was given may be stale (the replica of
dispatch lags behind dispatch), so the same command may succeed shortly.

Refusals never decide anything: a refused command leaves every stream as it was.
"""

from __future__ import annotations

from datetime import date, datetime

from zhucun.contracts.attendance.events import ApprovalLevel
from zhucun.shared import rules
from zhucun.shared.rules import RuleViolation


class AttendanceRuleViolation(RuleViolation):
    """A command breaks an attendance rule; nothing was decided."""


class DuplicateId(rules.DuplicateId, AttendanceRuleViolation):
    """The id of the command's new thing is taken by something with other content (a repeat
    with the same content is a no-op, not an error)."""

    qualifier = "with other content"


class MonthAlreadyClosed(AttendanceRuleViolation):
    """The month's attendance is closed: no more evidence, and no leave change touching it."""

    code = "month_already_closed"
    kind = "conflict"

    def __init__(self, month: str, detail: str = "") -> None:
        super().__init__(f"the attendance of {month} is closed{': ' + detail if detail else ''}")
        self.month = month


class MonthNotOver(AttendanceRuleViolation):
    """A month is closed only once it is over (today after its last day)."""

    code = "month_not_over"
    kind = "conflict"

    def __init__(self, month: str, last_day: date) -> None:
        super().__init__(f"{month} can be closed after its last day ({last_day})")
        self.month = month
        self.last_day = last_day


class EvidenceFromTheFuture(AttendanceRuleViolation):
    """Evidence or a record of work (a check-in, a confirmation, a spot check, a diary entry,
    a household visit) for a day that has not come yet in China's calendar, or a check-in
    stamped later than the moment it was received (beyond the clock-skew tolerance). Leave
    is not evidence: it is asked for days to come."""

    code = "evidence_from_the_future"
    kind = "invalid"

    def __init__(self, message: str, *, when: date | datetime, now: date | datetime) -> None:
        super().__init__(message)
        #: The day (or moment) of the evidence, and today (or the moment it was received).
        self.when = when.isoformat()
        self.now = now.isoformat()


class NotOnPost(AttendanceRuleViolation):
    """The cadre's post (as the replica of dispatch knows it) does not cover the day. The
    replica may lag behind dispatch, so the command may succeed later: retryable."""

    code = "not_on_post"
    kind = "retryable"

    def __init__(
        self, message: str, *, assignment_id: str | None = None, day: date | None = None
    ) -> None:
        super().__init__(message)
        self.assignment_id = assignment_id
        self.day = day


class NoGeofence(AttendanceRuleViolation):
    """A location was sent for a village without a geofence to compare it with. Dropping the
    location silently would lose evidence the cadre meant to give, so it is refused."""

    code = "no_geofence"
    kind = "invalid"

    def __init__(self, village_id: str) -> None:
        super().__init__(
            f"the village {village_id!r} has no geofence; send the check-in without a location"
        )
        self.village_id = village_id


class UnknownLeave(AttendanceRuleViolation):
    code = "unknown_leave"
    kind = "not_found"

    def __init__(self, leave_id: str) -> None:
        super().__init__(f"unknown leave {leave_id!r}")
        self.leave_id = leave_id


class LeaveNotPending(AttendanceRuleViolation):
    code = "leave_not_pending"
    kind = "conflict"

    def __init__(self, leave_id: str, status: str, detail: str = "") -> None:
        super().__init__(
            f"leave {leave_id!r} is {status}{': ' + detail if detail else ', not pending'}"
        )
        self.leave_id = leave_id
        # Not ``status``: the figures become members of the problem document, whose
        # ``status`` is the HTTP status.
        self.leave_status = status


class ApprovalBeyondLevel(AttendanceRuleViolation):
    """A township approver acting on leave that only the county may decide."""

    code = "approval_beyond_level"
    kind = "forbidden"

    def __init__(
        self, leave_id: str, required_level: ApprovalLevel, approver_level: ApprovalLevel
    ) -> None:
        super().__init__(
            f"leave {leave_id!r} is decided at {required_level.value} level,"
            f" not at {approver_level.value} level"
        )
        self.leave_id = leave_id
        self.required_level = required_level
        self.approver_level = approver_level


class LeaveOverlaps(AttendanceRuleViolation):
    code = "leave_overlaps"
    kind = "conflict"

    def __init__(self, leave_id: str, first_day: date, last_day: date) -> None:
        super().__init__(
            f"the dates overlap leave {leave_id!r} ({first_day} to {last_day}),"
            " which is pending or approved"
        )
        self.leave_id = leave_id
        self.first_day = first_day
        self.last_day = last_day


class DatesOutOfOrder(rules.DatesOutOfOrder, AttendanceRuleViolation):
    """Leave that ends before it starts."""


class LeaveTooLong(AttendanceRuleViolation):
    code = "leave_too_long"
    kind = "invalid"

    def __init__(self, days: int, max_days: int) -> None:
        super().__init__(
            f"leave of {days} days is longer than the {max_days} days one request may take"
        )
        self.days = days
        self.max_days = max_days


class PurposeRequired(AttendanceRuleViolation):
    code = "purpose_required"
    kind = "invalid"

    def __init__(self) -> None:
        super().__init__("leave on village business (公出) states its purpose")
