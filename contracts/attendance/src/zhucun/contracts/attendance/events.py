"""The published contract of the attendance service (topic ``attendance.events.v1``).

Every class here is one event type, frozen and registered in ``registry``. Downstream systems
(assessment, the read side's recall decisions, payroll paying the allowance for days in the
village) decode them; change a field only by adding a schema version and an upcaster.

Every event concerns one cadre and is keyed by ``cadre_id``, so one cadre's attendance stays in
order on one partition.

Privacy (docs/domain.md#legal-location-optional-never-stored-raw): location is optional
evidence. When a check-in carries a location it is compared with the village's geofence and
then discarded: events hold only inside/outside and the distance from the village centre
rounded to 10 m, never coordinates or tracks.

Days are calendar days in Asia/Shanghai. Streams (one decision's consistency boundary each):
``attendance-month-{cadre}-{YYYY-MM}`` holds the month's presence evidence, spot checks and its
close; ``attendance-leave-{cadre}`` the cadre's leave; ``attendance-work-{cadre}`` the work
diary and household visits.

Bounds (``zhucun.shared.bounds``, docs/domain.md "Bounds of the contracts"): ids are ``Id``
(the pack's version too), free text is a ``Note`` (notes, findings, reasons, a purpose) or a
``Text`` (a diary entry), days are ``BusinessDate`` and moments ``Timestamp``, a month is a
``Month``; every count is a strict integer within what its period can hold (a month's days
at most 31, a leave's at most 366), a kept distance at most half the earth's circumference, a
confirmation's days distinct and of one month. These bounds were tightened without a schema
version: Zhucun is not in production, so an event stored under the earlier, looser bounds
(an id with a space, say) needs no upcaster.
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import StrEnum
from typing import Annotated, ClassVar, Final, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, model_validator

from zhucun.shared.bounds import (
    BusinessDate,
    Count,
    Flag,
    Id,
    Month,
    Note,
    PolicyVersion,
    Text,
    Timestamp,
)
from zhucun.shared.events import DomainEvent, EventRegistry

registry = EventRegistry()

_H = TypeVar("_H", bound=Hashable)

#: The longest leave one request may take (a leap year).
MAX_LEAVE_DAYS: Final = 366
#: The most days a month has.
MONTH_DAYS_MAX: Final = 31
#: Two points of the earth are at most half its circumference apart (20,015 km on the mean
#: sphere): a kept distance never exceeds this, rounded up.
DISTANCE_MAX_M: Final = 20_020_000
#: Two check-ins of one month are less than 31 days apart.
MINUTES_APART_MAX: Final = MONTH_DAYS_MAX * 24 * 60
#: A speed no journey between villages reaches (a pack's ``max_travel_speed_kmh`` is below).
SPEED_MAX_KMH: Final = 1_000.0


def _distinct(items: tuple[_H, ...]) -> tuple[_H, ...]:
    if len(set(items)) != len(items):
        raise ValueError("must not hold an item twice")
    return items


#: ``uniqueItems`` in the schemas.
_UNIQUE: Final = Field(json_schema_extra={"uniqueItems": True})

#: Days of one month (0 to 31), strictly an integer.
MonthDays = Annotated[int, Strict(), Field(ge=0, le=MONTH_DAYS_MAX)]
#: Days of one leave (1 to 366), strictly an integer.
LeaveDays = Annotated[int, Strict(), Field(ge=1, le=MAX_LEAVE_DAYS)]
#: A distance kept of a location: metres from the village centre, rounded to 10 m.
KeptDistance = Annotated[int, Strict(), Field(ge=0, le=DISTANCE_MAX_M, multiple_of=10)]
#: Distinct days of one month, at most 31.
MonthOfDays = Annotated[
    tuple[BusinessDate, ...],
    Field(min_length=1, max_length=MONTH_DAYS_MAX),
    _UNIQUE,
    AfterValidator(_distinct),
]
#: The assignments covering some day of a month, each once.
MonthAssignments = Annotated[
    tuple[Id, ...],
    Field(min_length=1, max_length=MONTH_DAYS_MAX),
    _UNIQUE,
    AfterValidator(_distinct),
]
#: A diary entry: not empty.
DiaryText = Annotated[Text, Field(min_length=1)]


# --- vocabulary -----------------------------------------------------------------------------


class LeaveKind(StrEnum):
    PERSONAL = "personal"  # 事假: excused, lowers the days required
    SICK = "sick"  # 病假: excused, lowers the days required
    VILLAGE_BUSINESS = "village_business"  # 公出: away on village business, counts as in village


class ApprovalLevel(StrEnum):
    """Who approves a leave request, by its length (per the policy pack)."""

    TOWNSHIP = "township"  # 乡镇党委
    COUNTY = "county"  # 县委组织部


class SpotCheckResult(StrEnum):
    PRESENT = "present"
    ABSENT = "absent"


class LocationEvidence(BaseModel):
    """What is kept of a location after the geofence check: no coordinates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    inside_geofence: Flag
    #: Distance from the village centre, rounded to the nearest 10 m.
    distance_m: KeptDistance


class TravelFlag(BaseModel):
    """This check-in and an earlier one of the same cadre imply a journey faster than the
    pack's maximum speed (impossible travel): evidence for an inspector, not a verdict.

    The distance is a lower bound computed from what was kept (the difference of the two
    distances from the village centre), so a flag is never raised by rounding alone."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    other_check_in_id: Id
    #: Both check-ins are of one month.
    minutes_apart: Annotated[float, Strict(), Field(ge=0, le=MINUTES_APART_MAX)]
    min_distance_m: Annotated[int, Strict(), Field(ge=0, le=DISTANCE_MAX_M)]
    max_speed_kmh: Annotated[float, Strict(), Field(gt=0, le=SPEED_MAX_KMH)]


# --- presence evidence (stream attendance-month-{cadre}-{month}) ------------------------------


@registry.register
class CheckInRecorded(DomainEvent):
    """A cadre checked in (in the app, possibly offline and uploaded later).

    ``check_in_id`` is generated by the client: a repeat is a no-op. ``occurred_at`` is when
    it happened; ``day`` is its calendar day in Asia/Shanghai. Without ``location`` the
    check-in is the cadre's own statement of presence; with it, ``location`` says whether it
    was inside the village geofence. It counts as presence evidence unless it was outside.
    """

    event_type: ClassVar[str] = "attendance.CheckInRecorded"
    key_field: ClassVar[str] = "cadre_id"
    check_in_id: Id
    cadre_id: Id
    assignment_id: Id
    village_id: Id
    occurred_at: Timestamp
    day: BusinessDate
    location: LocationEvidence | None = None
    travel_flag: TravelFlag | None = None

    @property
    def is_presence(self) -> bool:
        return self.location is None or self.location.inside_geofence


@registry.register
class PresenceConfirmed(DomainEvent):
    """The township confirmed the cadre's presence in the village on ``days`` (distinct, all
    in one month): presence evidence equal to a check-in (the law forbids mandatory
    clock-in)."""

    event_type: ClassVar[str] = "attendance.PresenceConfirmed"
    key_field: ClassVar[str] = "cadre_id"
    confirmation_id: Id
    cadre_id: Id
    assignment_id: Id
    village_id: Id
    days: MonthOfDays
    note: Note = ""

    @model_validator(mode="after")
    def _days_of_one_month(self) -> PresenceConfirmed:
        if len({(day.year, day.month) for day in self.days}) > 1:
            raise ValueError("the days of a confirmation event are of one month")
        return self


@registry.register
class SpotCheckRecorded(DomainEvent):
    """An unannounced spot check (四不两直) found the cadre present or absent on ``day``.

    An absence is excused when approved leave (``excused_by_leave_id``) covers the day, else
    it is unexcused and counts against the cadre's annual grade."""

    event_type: ClassVar[str] = "attendance.SpotCheckRecorded"
    key_field: ClassVar[str] = "cadre_id"
    spot_check_id: Id
    cadre_id: Id
    assignment_id: Id
    village_id: Id
    day: BusinessDate
    result: SpotCheckResult
    excused_by_leave_id: Id | None = None
    findings: Note = ""

    @property
    def unexcused_absence(self) -> bool:
        return self.result is SpotCheckResult.ABSENT and self.excused_by_leave_id is None

    @model_validator(mode="after")
    def _only_absences_are_excused(self) -> SpotCheckRecorded:
        if self.result is SpotCheckResult.PRESENT and self.excused_by_leave_id is not None:
            raise ValueError("a presence needs no excuse")
        return self


@registry.register
class MonthClosed(DomainEvent):
    """The cadre's attendance for ``month`` is closed; no more evidence is accepted for it.

    ``in_village_days`` = distinct days with presence evidence (``presence_days``) or on
    approved village business (``business_days``). ``eligible_days`` = days in post minus
    approved personal and sick leave days. ``required_days`` = ceil(minimum x eligible /
    days in the rule's period); ``shortfall`` = max(0, required - in village). Computed with
    the rules of ``policy_version``.
    """

    event_type: ClassVar[str] = "attendance.MonthClosed"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: Id
    #: ``YYYY-MM``.
    month: Month
    #: The assignments covering some day of the month, in the order they began.
    assignment_ids: MonthAssignments
    village_id: Id
    days_in_month: Annotated[int, Strict(), Field(ge=28, le=MONTH_DAYS_MAX)]
    days_in_post: MonthDays
    presence_days: MonthDays
    business_days: MonthDays
    in_village_days: MonthDays
    personal_leave_days: MonthDays
    sick_leave_days: MonthDays
    eligible_days: MonthDays
    required_days: MonthDays
    shortfall: MonthDays
    #: Spot checks of the month (a township may make several a day).
    spot_checks: Count
    unexcused_absences: Count
    policy_version: PolicyVersion

    @property
    def compliant(self) -> bool:
        return self.shortfall == 0


# --- leave (stream attendance-leave-{cadre}) ------------------------------------------------


@registry.register
class LeaveRequested(DomainEvent):
    """The cadre asked for leave from ``first_day`` to ``last_day`` inclusive. Village
    business (公出) states its ``purpose``. ``approval_level`` is who must approve it, by its
    length under ``policy_version``."""

    event_type: ClassVar[str] = "attendance.LeaveRequested"
    key_field: ClassVar[str] = "cadre_id"
    leave_id: Id
    cadre_id: Id
    assignment_id: Id
    village_id: Id
    kind: LeaveKind
    first_day: BusinessDate
    last_day: BusinessDate
    days: LeaveDays
    purpose: Note = ""
    approval_level: ApprovalLevel
    policy_version: PolicyVersion


@registry.register
class LeaveApproved(DomainEvent):
    """The leave was approved at ``approved_at_level`` (the township up to the pack's limit,
    else the county): its days now count (excused, or in the village for village business)."""

    event_type: ClassVar[str] = "attendance.LeaveApproved"
    key_field: ClassVar[str] = "cadre_id"
    leave_id: Id
    cadre_id: Id
    approved_at_level: ApprovalLevel


@registry.register
class LeaveRejected(DomainEvent):
    """The leave request was turned down, for ``reason``; its days count as any other."""

    event_type: ClassVar[str] = "attendance.LeaveRejected"
    key_field: ClassVar[str] = "cadre_id"
    leave_id: Id
    cadre_id: Id
    reason: Note


@registry.register
class LeaveCancelled(DomainEvent):
    """The leave was withdrawn (by the cadre, or by an approver); its days no longer count."""

    event_type: ClassVar[str] = "attendance.LeaveCancelled"
    key_field: ClassVar[str] = "cadre_id"
    leave_id: Id
    cadre_id: Id
    reason: Note = ""


# --- work record (stream attendance-work-{cadre}) -------------------------------------------


@registry.register
class DiaryEntryWritten(DomainEvent):
    """An entry of the work diary (驻村日记) for ``day``."""

    event_type: ClassVar[str] = "attendance.DiaryEntryWritten"
    key_field: ClassVar[str] = "cadre_id"
    entry_id: Id
    cadre_id: Id
    assignment_id: Id
    village_id: Id
    day: BusinessDate
    text: DiaryText


@registry.register
class HouseholdVisited(DomainEvent):
    """A household visit (入户走访). ``household_id`` is the village's own household number:
    no names or addresses."""

    event_type: ClassVar[str] = "attendance.HouseholdVisited"
    key_field: ClassVar[str] = "cadre_id"
    visit_id: Id
    cadre_id: Id
    assignment_id: Id
    village_id: Id
    household_id: Id
    visited_on: BusinessDate
    note: Note = ""
