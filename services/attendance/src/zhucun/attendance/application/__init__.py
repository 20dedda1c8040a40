"""The attendance use cases: one handler per use case, between the HTTP edge and the pure
decider (``zhucun.attendance.domain``). No web framework here.

Each handler takes the :class:`Context` (command path, the replica's posts, the policy
book, a clock), the caller (an :class:`Actor` for a command, a principal for a read) and the
command's values; it finds the cadre's post in the replica, enforces the rules about who
may act on it, picks the policy pack in force, builds the command, runs the decider over the
streams of its consistency boundary, and returns a typed outcome (``CommandAccepted`` or a
typed result). Refusals are ``AttendanceRuleViolation``s, and the shared
``zhucun.shared.policy.NoPolicyInForce`` for a day no pack covers, raised (or, for the items
of a batch and the cadres of a county-wide close, carried in the outcome).

* presence evidence (``presence``): ``record_check_in``, ``record_check_in_batch``,
  ``confirm_cadre_presence``, ``record_cadre_spot_check``;
* leave (``leave``): ``request_cadre_leave``, ``approve_cadre_leave``,
  ``reject_cadre_leave``, ``cancel_cadre_leave``;
* work record (``work``): ``write_cadre_diary_entry``, ``record_cadre_visit``;
* month close (``months``): ``close_cadre_month``, ``close_county_month``;
* reads (``reads``): ``read_cadre_month``, ``read_cadre_leave``, ``read_cadre_leave_request``,
  ``read_visit_coverage``, and the county's leave requests ``list_county_leave``.
"""

from zhucun.attendance.application.context import Actor, Context, Policies, Posts
from zhucun.attendance.application.errors import (
    NoActiveAssignment,
    NotYourself,
    VillageNotReplicated,
)
from zhucun.attendance.application.leave import (
    approve_cadre_leave,
    cancel_cadre_leave,
    reject_cadre_leave,
    request_cadre_leave,
)
from zhucun.attendance.application.months import (
    CadreClose,
    CountyClose,
    close_cadre_month,
    close_county_month,
)
from zhucun.attendance.application.presence import (
    MAX_BATCH,
    BatchItem,
    BatchOutcome,
    CheckInAccepted,
    CheckInItem,
    InvalidItem,
    confirm_cadre_presence,
    record_cadre_spot_check,
    record_check_in,
    record_check_in_batch,
)
from zhucun.attendance.application.reads import (
    ClosedMonth,
    CountyLeaveView,
    LeaveView,
    MonthView,
    OpenMonth,
    VisitCoverageView,
    leave_cursor,
    list_county_leave,
    read_cadre_leave,
    read_cadre_leave_request,
    read_cadre_month,
    read_visit_coverage,
)
from zhucun.attendance.application.work import record_cadre_visit, write_cadre_diary_entry

__all__ = [
    "MAX_BATCH",
    "Actor",
    "BatchItem",
    "BatchOutcome",
    "CadreClose",
    "CheckInAccepted",
    "CheckInItem",
    "ClosedMonth",
    "Context",
    "CountyClose",
    "CountyLeaveView",
    "InvalidItem",
    "LeaveView",
    "MonthView",
    "NoActiveAssignment",
    "NotYourself",
    "OpenMonth",
    "Policies",
    "Posts",
    "VillageNotReplicated",
    "VisitCoverageView",
    "approve_cadre_leave",
    "cancel_cadre_leave",
    "close_cadre_month",
    "close_county_month",
    "confirm_cadre_presence",
    "leave_cursor",
    "list_county_leave",
    "read_cadre_leave",
    "read_cadre_leave_request",
    "read_cadre_month",
    "read_visit_coverage",
    "record_cadre_spot_check",
    "record_cadre_visit",
    "record_check_in",
    "record_check_in_batch",
    "reject_cadre_leave",
    "request_cadre_leave",
    "write_cadre_diary_entry",
]
