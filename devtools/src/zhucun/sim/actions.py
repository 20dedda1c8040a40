"""What the simulated people do, one value per command: the common language of the HTTP
driver (which turns each into a request) and the topics writer (which turns each into the
events the service would have stored).

An action carries every id and every business date of its command, so both drivers send or
write the same thing for the same seed. ``lane`` says what must happen in order: actions of a
phase that share a lane run one after another (they write the same stream, or one needs the
other, e.g. a leave request and its approval), different lanes may run concurrently. ``at`` is
the business moment (Asia/Shanghai): the HTTP driver sends in phase order regardless, the
topics writer stamps the events with it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import ClassVar, Literal

from zhucun.contracts.assessment.events import AnnualGrade, InspectionKind, TalkBy
from zhucun.contracts.attendance.events import LeaveKind, SpotCheckResult
from zhucun.contracts.dispatch.events import Expertise, Role, UnitKind, UnitLevel, VillageCategory
from zhucun.shared.china import SHANGHAI as SHANGHAI


def moment(day: date, hour: int = 9, minute: int = 0) -> datetime:
    """``day`` at ``hour:minute`` in Asia/Shanghai, as an aware datetime in UTC."""
    return datetime.combine(day, time(hour, minute), SHANGHAI).astimezone(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Action:
    kind: ClassVar[str]
    #: Which service receives it.
    service: ClassVar[Literal["dispatch", "attendance", "assessment"]]
    at: datetime

    @property
    def lane(self) -> str:
        raise NotImplementedError


# --- dispatch (one county stream: one lane per county) ----------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DispatchAction(Action):
    service: ClassVar[Literal["dispatch"]] = "dispatch"
    county: str

    @property
    def lane(self) -> str:
        return f"dispatch:{self.county}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterVillage(DispatchAction):
    kind: ClassVar[str] = "register_village"
    village_id: str
    name: str
    township: str
    categories: tuple[VillageCategory, ...]
    latitude: float
    longitude: float
    radius_m: int
    households: int
    monitored_population: int


@dataclass(frozen=True, slots=True, kw_only=True)
class DeclareNeeds(DispatchAction):
    kind: ClassVar[str] = "declare_needs"
    village_id: str
    needs: tuple[Expertise, ...]
    declared_on: date


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterCadre(DispatchAction):
    kind: ClassVar[str] = "register_cadre"
    cadre_id: str
    sending_unit: str
    unit_kind: UnitKind
    unit_level: UnitLevel
    birth_year: int
    party_member_since: date | None
    rural_experience_years: int
    skills: tuple[Expertise, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenRound(DispatchAction):
    kind: ClassVar[str] = "open_round"
    round_id: str
    name: str
    opened_on: date


@dataclass(frozen=True, slots=True, kw_only=True)
class FormTeam(DispatchAction):
    kind: ClassVar[str] = "form_team"
    team_id: str
    round_id: str
    village_id: str
    formed_on: date


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignCadre(DispatchAction):
    kind: ClassVar[str] = "assign_cadre"
    assignment_id: str
    team_id: str
    cadre_id: str
    role: Role
    term_start: date


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseRound(DispatchAction):
    kind: ClassVar[str] = "close_round"
    round_id: str
    closed_on: date


@dataclass(frozen=True, slots=True, kw_only=True)
class AppointLeader(DispatchAction):
    kind: ClassVar[str] = "appoint_township_leader"
    appointment_id: str
    township: str
    cadre_id: str
    term_start: date


@dataclass(frozen=True, slots=True, kw_only=True)
class EndAssignment(DispatchAction):
    kind: ClassVar[str] = "end_assignment"
    assignment_id: str
    cadre_id: str
    ended_on: date


# --- attendance (one lane per cadre, except the county-wide close) ----------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CadreAction(Action):
    cadre_id: str
    county: str
    township: str

    @property
    def lane(self) -> str:
        return f"cadre:{self.cadre_id}"


@dataclass(frozen=True, slots=True)
class CheckInItem:
    check_in_id: str
    occurred_at: datetime
    #: (latitude, longitude) offered as evidence, or None (a statement of presence).
    location: tuple[float, float] | None
    #: What the geofence check will say (the generator placed the point accordingly).
    inside: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckInBatch(CadreAction):
    """An offline upload of one month's check-ins (the app's queue). The items are built on
    demand from ``days``: the topics writer does not need them unless it writes check-ins."""

    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "check_in_batch"
    #: (day, inside) for each check-in: inside the geofence (presence) or outside.
    days: tuple[tuple[date, bool], ...]
    #: Share of check-ins carrying a location.
    location_share: float
    village_latitude: float
    village_longitude: float
    radius_m: int
    rng_seed: str

    def items(self) -> tuple[CheckInItem, ...]:
        """The check-ins, with their times and locations (drawn from ``rng_seed``)."""
        rng = random.Random(self.rng_seed)
        items = []
        for day, inside in self.days:
            hour = rng.randint(7, 20)
            minute = rng.randint(0, 59)
            located = not inside or rng.random() < self.location_share
            location = None
            if located:
                if inside:
                    distance = rng.uniform(20, self.radius_m * 0.8)
                else:
                    distance = rng.uniform(self.radius_m * 1.6 + 500, 40_000)
                location = offset_point(
                    self.village_latitude, self.village_longitude, distance, rng.uniform(0, 360)
                )
            items.append(
                CheckInItem(
                    check_in_id=f"{self.cadre_id}-ci-{day:%Y%m%d}",
                    occurred_at=moment(day, hour, minute),
                    location=location,
                    inside=inside,
                )
            )
        return tuple(items)


def offset_point(
    latitude: float, longitude: float, metres: float, bearing: float
) -> tuple[float, float]:
    """A point ``metres`` from (latitude, longitude) towards ``bearing`` degrees (flat-earth
    approximation, good to a fraction of a percent at these distances), rounded to 6 places."""
    d_lat = metres * math.cos(math.radians(bearing)) / 111_320
    d_lon = metres * math.sin(math.radians(bearing)) / (111_320 * math.cos(math.radians(latitude)))
    return round(latitude + d_lat, 6), round(longitude + d_lon, 6)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfirmPresence(CadreAction):
    """The township confirms days of presence (cadres without the app, or days the app
    missed): evidence equal to a check-in."""

    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "confirm_presence"
    confirmation_id: str
    days: tuple[date, ...]
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestLeave(CadreAction):
    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "request_leave"
    leave_id: str
    leave_kind: LeaveKind
    first_day: date
    last_day: date
    purpose: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecideLeave(CadreAction):
    """Approve or reject (by the township, or by the county beyond the township's limit), or
    cancel (by the cadre) a pending leave."""

    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "decide_leave"
    leave_id: str
    decision: Literal["approve", "reject", "cancel"]
    #: Who decides an approval or a rejection.
    by: Literal["township", "county", "cadre"]
    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SpotCheck(CadreAction):
    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "spot_check"
    spot_check_id: str
    day: date
    result: SpotCheckResult
    findings: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class WriteDiary(CadreAction):
    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "write_diary"
    entry_id: str
    day: date
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VisitHousehold(CadreAction):
    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "visit_household"
    visit_id: str
    household_id: str
    visited_on: date
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseCountyMonth(Action):
    """The county closes a month for every cadre on post (``expected``: who must be closed)."""

    service: ClassVar[Literal["attendance"]] = "attendance"
    kind: ClassVar[str] = "close_month"
    county: str
    month: str
    expected: tuple[str, ...]

    @property
    def lane(self) -> str:
        return f"close:{self.county}"


# --- assessment ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectCadre(CadreAction):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "inspect_cadre"
    inspection_id: str
    inspection_kind: InspectionKind
    held_on: date
    findings: str
    problems_found: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectTeam(Action):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "inspect_team"
    team_id: str
    county: str
    township: str
    inspection_id: str
    inspection_kind: InspectionKind
    held_on: date
    findings: str
    problems_found: int

    @property
    def lane(self) -> str:
        return f"team:{self.team_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EvaluateByVillagers(CadreAction):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "villager_evaluation"
    evaluation_id: str
    period: str
    satisfaction: float
    respondents: int


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessQuarter(CadreAction):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "assess_quarter"
    quarter: str
    township_score: float
    villager_score: float
    county_panel_score: float

    @property
    def lane(self) -> str:
        # One stream per county and quarter takes every assessment: a few writers at a time
        # keep it busy without losing most optimistic-concurrency races.
        return f"quarter:{self.county}:{self.quarter}:{self.cadre_id[-1]}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HoldTalk(CadreAction):
    """One of the two admonition talks (双约谈) a quarterly 一般 requires."""

    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "admonition_talk"
    quarter: str
    obligation_id: str
    by: TalkBy
    held_on: date
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishLists(Action):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "publish_lists"
    county: str
    quarter: str
    list_id: str

    @property
    def lane(self) -> str:
        return f"lists:{self.county}:{self.quarter}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenAnnualRound(Action):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "open_annual_round"
    county: str
    year: int
    round_id: str

    @property
    def lane(self) -> str:
        return f"annual:{self.county}:{self.year}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposeAnnualGrade(CadreAction):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "propose_annual_grade"
    year: int
    grade: AnnualGrade
    #: Unexcused spot-check absences of the year (what the service's replica must know
    #: before the proposal, so the cap it applies is the one the scenario expects).
    absences: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FinaliseAnnualRound(Action):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "finalise_annual_round"
    county: str
    year: int

    @property
    def lane(self) -> str:
        return f"annual:{self.county}:{self.year}"


@dataclass(frozen=True, slots=True, kw_only=True)
class AssessTerm(CadreAction):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "assess_term"
    assignment_id: str
    grade: AnnualGrade
    #: Unexcused absences of the term's last year (see ``ProposeAnnualGrade.absences``).
    absences: int
    year: int


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordSanction(CadreAction):
    service: ClassVar[Literal["assessment"]] = "assessment"
    kind: ClassVar[str] = "record_sanction"
    sanction_id: str
    sanction_kind: str
    decided_on: date
    authority: str
    reason: str


# --- phases ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Barrier:
    """Before a phase: what the services' replicas must know first (HTTP mode waits for it;
    the topics writer has nothing to wait for).

    * ``assigned``: attendance and assessment know these cadres' assignments (their
      replicas of dispatch caught up), so the first month does not start with retries;
    * ``ended``: attendance knows these cadres' assignments ended (so a month close counts
      only the days in post);
    * ``absences``: assessment knows these cadres' unexcused absences of ``year``.
    """

    kind: Literal["assigned", "ended", "absences"]
    #: (cadre id, expected value): for ``assigned`` nothing; for ``ended`` the month
    #: (YYYY-MM) and its days in post, as "month:days"; for ``absences`` the count.
    expectations: tuple[tuple[str, str], ...]
    year: int | None = None


@dataclass(frozen=True, slots=True)
class Phase:
    """A step of the timeline. Phases run in order; within one, lanes run concurrently."""

    name: str
    actions: Sequence[Action]
    barriers: tuple[Barrier, ...] = field(default=())


def dates_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
