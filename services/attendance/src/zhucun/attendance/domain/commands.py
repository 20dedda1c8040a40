"""Commands to the attendance decider, and the facts about a cadre's posts they carry.

Ids of new things (check-ins, confirmations, leave, spot checks, diary entries, visits) come
with the command, chosen by the client, so a retried command decides the same events and a
repeat is recognised. Dates and "today" come with the command: the decider never reads a
clock. What the decider needs to know about the cadre's assignments and the village (its
geofence, its households) comes from the service's replica of ``dispatch.events.v1`` as
``Post`` values, looked up by the application layer (``zhucun.attendance.application``).

Every field is bounded as the contract's events are (``zhucun.shared.bounds``): ids ``Id``,
free text ``Note`` or ``Text``, days ``BusinessDate``, moments ``Timestamp``, months
``Month``, coordinates ``Latitude``/``Longitude``; a command the decider gets can always be
recorded.
"""

from __future__ import annotations

from collections.abc import Hashable
from datetime import date
from typing import Annotated, Final, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from zhucun.contracts.attendance.events import (
    MAX_LEAVE_DAYS,
    MONTH_DAYS_MAX,
    ApprovalLevel,
    DiaryText,
    LeaveKind,
    SpotCheckResult,
)
from zhucun.shared.bounds import (
    ID_MAX_LENGTH,
    BusinessDate,
    Count,
    Id,
    Latitude,
    Longitude,
    Month,
    Note,
    RadiusMetres,
    Timestamp,
)
from zhucun.shared.inputs import Input

_H = TypeVar("_H", bound=Hashable)


def _distinct(items: tuple[_H, ...]) -> tuple[_H, ...]:
    if len(set(items)) != len(items):
        raise ValueError("must not hold an item twice")
    return items


#: The days a confirmation may name: distinct, at most a (leap) year of them.
ConfirmedDays = Annotated[
    tuple[BusinessDate, ...],
    Field(min_length=1, max_length=MAX_LEAVE_DAYS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_distinct),
]
#: A township's code, or ``""`` while the village's own event has not reached the replica.
TownshipOrUnknown = Annotated[
    str, StringConstraints(pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9._:-]*$", max_length=ID_MAX_LENGTH)
]
#: The most assignments of one cadre covering some day of one month (one a day at most).
MONTH_POSTS_MAX: Final = MONTH_DAYS_MAX


class Command(Input):
    """A command to the attendance decider (immutable, no unknown members, strings stripped)."""


class Geofence(BaseModel):
    """The village's presence circle, from the dispatch replica."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latitude: Latitude
    longitude: Longitude
    radius_m: RadiusMetres


class Post(BaseModel):
    """One assignment of the cadre, as the replica knows it: the village, its township and
    county, its geofence and household count, and the days it covers (``ended_on`` is the
    last day on post, None while it runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assignment_id: Id
    cadre_id: Id
    village_id: Id
    township: TownshipOrUnknown
    county: Id
    term_start: BusinessDate
    ended_on: BusinessDate | None = None
    geofence: Geofence | None = None
    households: Count = 0

    def covers(self, day: date) -> bool:
        return self.term_start <= day and (self.ended_on is None or day <= self.ended_on)

    def overlaps(self, first: date, last: date) -> bool:
        """It covers some day of ``first..last``."""
        return self.term_start <= last and (self.ended_on is None or first <= self.ended_on)


class Coordinates(BaseModel):
    """A location offered as evidence. Used for the geofence check, then discarded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latitude: Latitude
    longitude: Longitude

    def __repr__(self) -> str:  # never print coordinates by accident (logs, tracebacks)
        return "Coordinates(<redacted>)"

    __str__ = __repr__


class CheckIn(Command):
    """A cadre's check-in. ``post`` is the assignment covering the day it happened."""

    check_in_id: Id
    cadre_id: Id
    occurred_at: Timestamp
    location: Coordinates | None = None
    post: Post
    #: When the service received it: a check-in from the future is refused.
    received_at: Timestamp


class ConfirmPresence(Command):
    """The township confirms the cadre was in the village on ``days`` (distinct, any
    months)."""

    confirmation_id: Id
    cadre_id: Id
    days: ConfirmedDays
    note: Note = ""
    post: Post
    today: BusinessDate


class RecordSpotCheck(Command):
    spot_check_id: Id
    cadre_id: Id
    day: BusinessDate
    result: SpotCheckResult
    findings: Note = ""
    post: Post
    today: BusinessDate


class RequestLeave(Command):
    """Leave may be asked for days to come (that is its point): no ``today``."""

    leave_id: Id
    cadre_id: Id
    kind: LeaveKind
    first_day: BusinessDate
    last_day: BusinessDate
    #: Required for village business (公出): what the trip is for.
    purpose: Note = ""
    post: Post


class ApproveLeave(Command):
    leave_id: Id
    cadre_id: Id
    #: The approver's level: a township may approve up to the pack's limit, the county any.
    approver_level: ApprovalLevel


class RejectLeave(Command):
    leave_id: Id
    cadre_id: Id
    approver_level: ApprovalLevel
    reason: Annotated[Note, Field(min_length=1)]


class CancelLeave(Command):
    leave_id: Id
    cadre_id: Id
    reason: Note = ""


class WriteDiaryEntry(Command):
    """A diary entry for ``day``, which must have come (``today``, in China's calendar)."""

    entry_id: Id
    cadre_id: Id
    day: BusinessDate
    text: DiaryText
    post: Post
    today: BusinessDate


class RecordHouseholdVisit(Command):
    """A visit on ``visited_on``, which must have come (``today``, in China's calendar)."""

    visit_id: Id
    cadre_id: Id
    household_id: Id
    visited_on: BusinessDate
    note: Note = ""
    post: Post
    today: BusinessDate


class CloseMonth(Command):
    """Close ``month`` (``YYYY-MM``) for the cadre. ``posts`` are every assignment of the
    cadre overlapping the month; ``today`` must be after the month's last day."""

    cadre_id: Id
    month: Month
    posts: tuple[Post, ...] = Field(min_length=1, max_length=MONTH_POSTS_MAX)
    today: BusinessDate


__all__ = [
    "MONTH_POSTS_MAX",
    "ApproveLeave",
    "CancelLeave",
    "CheckIn",
    "CloseMonth",
    "Command",
    "ConfirmPresence",
    "ConfirmedDays",
    "Coordinates",
    "Geofence",
    "Post",
    "RecordHouseholdVisit",
    "RecordSpotCheck",
    "RejectLeave",
    "RequestLeave",
    "WriteDiaryEntry",
]
