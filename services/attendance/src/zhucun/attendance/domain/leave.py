"""Deciders of a cadre's leave stream: request, approve, reject, cancel.

Leave is personal (事假), sick (病假) or village business (公出). Personal and sick leave
lower the days required; village business counts as days in the village. Who approves is
fixed at the request by its length: up to the pack's ``township_leave_approval_max_days``
the township party committee, longer the county organisation department (which may also
decide township-level leave).

Approved leave changes the count of the months it touches, so a leave decision that would
change a closed month is refused: requesting or approving leave touching a closed month, or
cancelling approved leave touching one. ``months`` holds the state of every month the leave
touches (``months_touched(first_day, last_day)``), by month key.
"""

from __future__ import annotations

from collections.abc import Mapping

from zhucun.attendance.domain.commands import ApproveLeave, CancelLeave, RejectLeave, RequestLeave
from zhucun.attendance.domain.days import days_inclusive, months_touched
from zhucun.attendance.domain.errors import (
    ApprovalBeyondLevel,
    DatesOutOfOrder,
    DuplicateId,
    LeaveNotPending,
    LeaveOverlaps,
    LeaveTooLong,
    PurposeRequired,
    UnknownLeave,
)
from zhucun.attendance.domain.guards import require_leave_stream, require_open_months, require_post
from zhucun.attendance.domain.policy import AttendancePolicy
from zhucun.attendance.domain.state import Leave, LeaveState, LeaveStatus, MonthState
from zhucun.contracts.attendance.events import (
    MAX_LEAVE_DAYS as MAX_LEAVE_DAYS,
)
from zhucun.contracts.attendance.events import (
    ApprovalLevel,
    LeaveApproved,
    LeaveCancelled,
    LeaveKind,
    LeaveRejected,
    LeaveRequested,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack

_CHANGES_CLOSED = "its leave can no longer change"


def approval_level(days: int, pack: PolicyPack) -> ApprovalLevel:
    """Who approves leave of ``days`` days under ``pack``."""
    if days <= pack.rules(AttendancePolicy).township_leave_approval_max_days:
        return ApprovalLevel.TOWNSHIP
    return ApprovalLevel.COUNTY


def request_leave(
    command: RequestLeave, leave: LeaveState, months: Mapping[str, MonthState], pack: PolicyPack
) -> list[DomainEvent]:
    """Ask for leave from ``first_day`` to ``last_day`` inclusive, within the post, not
    overlapping other pending or approved leave, not touching a closed month. A repeat (same
    id, kind, dates, purpose and assignment) decides nothing."""
    require_leave_stream(leave, command.cadre_id)
    known = leave.leaves.get(command.leave_id)
    if known is not None:
        same = (
            known.kind,
            known.first_day,
            known.last_day,
            known.purpose,
            known.assignment_id,
        ) == (
            command.kind,
            command.first_day,
            command.last_day,
            command.purpose,
            command.post.assignment_id,
        )
        if same:
            return []
        raise DuplicateId("leave", command.leave_id)
    if command.first_day > command.last_day:
        raise DatesOutOfOrder(
            f"the leave ends ({command.last_day}) before it starts ({command.first_day})"
        )
    days = days_inclusive(command.first_day, command.last_day)
    if days > MAX_LEAVE_DAYS:
        raise LeaveTooLong(days, MAX_LEAVE_DAYS)
    if command.kind is LeaveKind.VILLAGE_BUSINESS and not command.purpose:
        raise PurposeRequired()
    require_post(command.post, command.cadre_id, command.first_day, command.last_day)
    clash = leave.active_overlapping(command.first_day, command.last_day)
    if clash is not None:
        raise LeaveOverlaps(clash.leave_id, clash.first_day, clash.last_day)
    require_open_months(
        months,
        months_touched(command.first_day, command.last_day),
        command.cadre_id,
        _CHANGES_CLOSED,
    )
    return [
        LeaveRequested(
            leave_id=command.leave_id,
            cadre_id=command.cadre_id,
            assignment_id=command.post.assignment_id,
            village_id=command.post.village_id,
            kind=command.kind,
            first_day=command.first_day,
            last_day=command.last_day,
            days=days,
            purpose=command.purpose,
            approval_level=approval_level(days, pack),
            policy_version=pack.version,
        )
    ]


def _require_leave(leave: LeaveState, cadre_id: str, leave_id: str) -> Leave:
    require_leave_stream(leave, cadre_id)
    found = leave.leaves.get(leave_id)
    if found is None:
        raise UnknownLeave(leave_id)
    return found


def _require_level(found: Leave, approver_level: ApprovalLevel) -> None:
    if found.approval_level is ApprovalLevel.COUNTY and approver_level is ApprovalLevel.TOWNSHIP:
        raise ApprovalBeyondLevel(found.leave_id, found.approval_level, approver_level)


def approve_leave(
    command: ApproveLeave, leave: LeaveState, months: Mapping[str, MonthState], pack: PolicyPack
) -> list[DomainEvent]:
    """Approve pending leave at the approver's level. Approving it again is a no-op.

    The level needed was fixed when the leave was requested, under the pack it records
    (``Leave.policy_version``); ``pack`` (the one in force now) does not move it."""
    del pack  # the rule that applies is the request's (see above)
    found = _require_leave(leave, command.cadre_id, command.leave_id)
    if found.status is LeaveStatus.APPROVED:
        return []
    if found.status is not LeaveStatus.PENDING:
        raise LeaveNotPending(found.leave_id, found.status.value)
    _require_level(found, command.approver_level)
    require_open_months(
        months, months_touched(found.first_day, found.last_day), command.cadre_id, _CHANGES_CLOSED
    )
    return [
        LeaveApproved(
            leave_id=found.leave_id,
            cadre_id=command.cadre_id,
            approved_at_level=command.approver_level,
        )
    ]


def reject_leave(command: RejectLeave, leave: LeaveState) -> list[DomainEvent]:
    """Reject pending leave (same level rule as approval). Rejecting it again is a no-op.
    Pending leave does not count, so a closed month does not stand in the way."""
    found = _require_leave(leave, command.cadre_id, command.leave_id)
    if found.status is LeaveStatus.REJECTED:
        return []
    if found.status is not LeaveStatus.PENDING:
        raise LeaveNotPending(found.leave_id, found.status.value)
    _require_level(found, command.approver_level)
    return [
        LeaveRejected(leave_id=found.leave_id, cadre_id=command.cadre_id, reason=command.reason)
    ]


def cancel_leave(
    command: CancelLeave, leave: LeaveState, months: Mapping[str, MonthState]
) -> list[DomainEvent]:
    """Withdraw pending or approved leave. Cancelling it again is a no-op. Approved leave
    touching a closed month stays (the close counted it); pending leave may always go."""
    found = _require_leave(leave, command.cadre_id, command.leave_id)
    if found.status is LeaveStatus.CANCELLED:
        return []
    if found.status is LeaveStatus.REJECTED:
        raise LeaveNotPending(found.leave_id, found.status.value, "rejected leave is not cancelled")
    if found.status is LeaveStatus.APPROVED:
        require_open_months(
            months,
            months_touched(found.first_day, found.last_day),
            command.cadre_id,
            _CHANGES_CLOSED,
        )
    return [
        LeaveCancelled(leave_id=found.leave_id, cadre_id=command.cadre_id, reason=command.reason)
    ]
