"""Commands to the attendance decider, and the facts about a cadre's posts they carry.

Ids of new things (check-ins, confirmations, leave, spot checks, diary entries, visits) come
with the command, chosen by the client, so a retried command decides the same events and a
repeat is recognised. Dates and "today" come with the command: the decider never reads a
clock. What the decider needs to know about the cadre's assignments and the village (its
geofence, its households) comes from the service's replica of ``dispatch.events.v1`` as
``Post`` values, looked up by the application layer (``zhucun.attendance.application``).
"""

from __future__ import annotations

from datetime import date

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from zhucun.contracts.attendance.events import ApprovalLevel, LeaveKind, SpotCheckResult
from zhucun.shared.inputs import Input


class Command(Input):
    """A command to the attendance decider (immutable, no unknown members, strings stripped)."""


class Geofence(BaseModel):
    """The village's presence circle, from the dispatch replica."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_m: int = Field(gt=0)


class Post(BaseModel):
    """One assignment of the cadre, as the replica knows it: the village, its township and
    county, its geofence and household count, and the days it covers (``ended_on`` is the
    last day on post, None while it runs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assignment_id: str
    cadre_id: str
    village_id: str
    township: str
    county: str
    term_start: date
    ended_on: date | None = None
    geofence: Geofence | None = None
    households: int = Field(default=0, ge=0)

    def covers(self, day: date) -> bool:
        return self.term_start <= day and (self.ended_on is None or day <= self.ended_on)

    def overlaps(self, first: date, last: date) -> bool:
        """It covers some day of ``first..last``."""
        return self.term_start <= last and (self.ended_on is None or first <= self.ended_on)


class Coordinates(BaseModel):
    """A location offered as evidence. Used for the geofence check, then discarded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)

    def __repr__(self) -> str:  # never print coordinates by accident (logs, tracebacks)
        return "Coordinates(<redacted>)"

    __str__ = __repr__


class CheckIn(Command):
    """A cadre's check-in. ``post`` is the assignment covering the day it happened."""

    check_in_id: str = Field(min_length=1, max_length=100)
    cadre_id: str
    occurred_at: AwareDatetime
    location: Coordinates | None = None
    post: Post
    #: When the service received it: a check-in from the future is refused.
    received_at: AwareDatetime


class ConfirmPresence(Command):
    """The township confirms the cadre was in the village on ``days`` (any months)."""

    confirmation_id: str = Field(min_length=1, max_length=100)
    cadre_id: str
    days: tuple[date, ...] = Field(min_length=1, max_length=366)
    note: str = Field(default="", max_length=2_000)
    post: Post
    today: date


class RecordSpotCheck(Command):
    spot_check_id: str = Field(min_length=1, max_length=100)
    cadre_id: str
    day: date
    result: SpotCheckResult
    findings: str = Field(default="", max_length=5_000)
    post: Post
    today: date


class RequestLeave(Command):
    leave_id: str = Field(min_length=1, max_length=100)
    cadre_id: str
    kind: LeaveKind
    first_day: date
    last_day: date
    #: Required for village business (公出): what the trip is for.
    purpose: str = Field(default="", max_length=2_000)
    post: Post


class ApproveLeave(Command):
    leave_id: str
    cadre_id: str
    #: The approver's level: a township may approve up to the pack's limit, the county any.
    approver_level: ApprovalLevel


class RejectLeave(Command):
    leave_id: str
    cadre_id: str
    approver_level: ApprovalLevel
    reason: str = Field(min_length=1, max_length=2_000)


class CancelLeave(Command):
    leave_id: str
    cadre_id: str
    reason: str = Field(default="", max_length=2_000)


class WriteDiaryEntry(Command):
    entry_id: str = Field(min_length=1, max_length=100)
    cadre_id: str
    day: date
    text: str = Field(min_length=1, max_length=10_000)
    post: Post


class RecordHouseholdVisit(Command):
    visit_id: str = Field(min_length=1, max_length=100)
    cadre_id: str
    household_id: str = Field(min_length=1, max_length=100)
    visited_on: date
    note: str = Field(default="", max_length=2_000)
    post: Post


class CloseMonth(Command):
    """Close ``month`` (``YYYY-MM``) for the cadre. ``posts`` are every assignment of the
    cadre overlapping the month; ``today`` must be after the month's last day."""

    cadre_id: str
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    posts: tuple[Post, ...] = Field(min_length=1)
    today: date


__all__ = [
    "ApproveLeave",
    "CancelLeave",
    "CheckIn",
    "CloseMonth",
    "Command",
    "ConfirmPresence",
    "Coordinates",
    "Geofence",
    "Post",
    "RecordHouseholdVisit",
    "RecordSpotCheck",
    "RejectLeave",
    "RequestLeave",
    "WriteDiaryEntry",
]
