"""``Application``: what every use case works with, wired by the composition root (the
command path, the replicas, the policy book, the clock), and the steps they share: finding
the cadre's post in the replica of dispatch and checking the caller's reach over it, the
year's attendance facts, the policy pack that applies on a day, and running a decision."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from zhucun.assessment.application.ports import Absences, Assignments, Policies
from zhucun.assessment.application.refusals import (
    NoAssignment,
    UnknownTeam,
    VillageNotReplicated,
)
from zhucun.assessment.domain import (
    AnnualState,
    AttendanceFacts,
    CadreState,
    Post,
    QuarterState,
    TeamState,
    annual_stream,
    cadre_stream,
    evolve_annual,
    evolve_cadre,
    evolve_quarter,
    evolve_team,
    quarter_stream,
    team_stream,
    year_bounds,
)
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.replicas.dispatch import AssignmentRow
from zhucun.shared.auth import Principal, Scope
from zhucun.shared.china import today_in_china as today_in_china
from zhucun.shared.commands import CommandAccepted, CommandPath, StreamModel
from zhucun.shared.envelope import EventMetadata
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack

S = TypeVar("S")

# --- the streams ----------------------------------------------------------------------------


def cadre_model(cadre_id: str) -> StreamModel[CadreState]:
    return StreamModel(cadre_stream(cadre_id), CadreState.empty(cadre_id), evolve_cadre)


def team_model(team_id: str) -> StreamModel[TeamState]:
    return StreamModel(team_stream(team_id), TeamState.empty(team_id), evolve_team)


def quarter_model(county: str, quarter: str) -> StreamModel[QuarterState]:
    return StreamModel(
        quarter_stream(county, quarter), QuarterState.empty(county, quarter), evolve_quarter
    )


def annual_model(county: str, year: int) -> StreamModel[AnnualState]:
    return StreamModel(annual_stream(county, year), AnnualState.empty(county, year), evolve_annual)


# --- reach ----------------------------------------------------------------------------------


def ensure_reach(principal: Principal, post: Post) -> None:
    """The caller acts in the county and township of the cadre's post (403 otherwise)."""
    principal.ensure_covers(Scope(county=post.county, township=post.township))


def ensure_county(principal: Principal, county: str) -> None:
    """The caller acts for the whole county (rounds, lists): 403 otherwise."""
    principal.ensure_covers(Scope(county=county))


def ensure_reads_county(principal: Principal, county: str) -> None:
    """The caller may read the county's quarters and rounds: anyone of the county, a
    township's staff included."""
    principal.ensure_covers(Scope(county=county, township=principal.jurisdiction.township))


def post_of(row: AssignmentRow) -> Post:
    """The decider's ``Post`` of a replicated assignment; refused while its village (its
    township) is not replicated yet."""
    if row.township is None:
        raise VillageNotReplicated(row.village_id)
    return Post(
        assignment_id=row.assignment_id,
        cadre_id=row.cadre_id,
        team_id=row.team_id,
        village_id=row.village_id,
        township=row.township,
        county=row.county,
        term_start=row.term_start,
        term_end=row.term_end,
        ended_on=row.ended_on,
    )


def _latest(rows: Sequence[AssignmentRow], principal: Principal) -> Post:
    post = post_of(rows[-1])
    ensure_reach(principal, post)
    return post


# --- the application ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Application:
    """Assessment's use cases' dependencies. ``metadata``: the metadata of the events a
    caller's command appends (the composition root gives the request's: now, correlation
    id, actor)."""

    commands: CommandPath
    assignments: Assignments
    absences: Absences
    policies: Policies
    metadata: Callable[[Principal], EventMetadata]
    today: Callable[[], date] = field(default=today_in_china)

    async def post_between(
        self, principal: Principal, cadre_id: str, first: date, last: date
    ) -> Post:
        """The cadre's latest post overlapping ``first..last``, within the caller's reach."""
        rows = await self.assignments.assignments_between(cadre_id, first, last)
        if not rows:
            raise NoAssignment(cadre_id, f"between {first} and {last}")
        return _latest(rows, principal)

    async def latest_post(self, principal: Principal, cadre_id: str) -> Post:
        """The cadre's latest post, within the caller's reach."""
        rows = await self.assignments.assignments_of(cadre_id)
        if not rows:
            raise NoAssignment(cadre_id, "at all")
        return _latest(rows, principal)

    async def post_called(self, principal: Principal, cadre_id: str, assignment_id: str) -> Post:
        """The cadre's post of one assignment, within the caller's reach."""
        rows = await self.assignments.assignments_of(cadre_id)
        row = next((r for r in rows if r.assignment_id == assignment_id), None)
        if row is None:
            raise NoAssignment(cadre_id, f"called {assignment_id!r}")
        return _latest([row], principal)

    async def team_post(self, principal: Principal, team_id: str) -> Post:
        """The latest post of the work team (its village, county and township), within the
        caller's reach."""
        rows = await self.assignments.team_assignments(team_id)
        if not rows:
            raise UnknownTeam(team_id)
        return _latest(rows, principal)

    async def attendance(self, cadre_id: str, year: int) -> AttendanceFacts:
        """The cadre's attendance facts of ``year`` that cap a grade."""
        absences = await self.absences.unexcused_absences(cadre_id, year)
        return AttendanceFacts(cadre_id=cadre_id, year=year, unexcused_absences=absences)

    def pack(self, county: str, on: date) -> PolicyPack:
        """The policy pack in force in the county on ``on``, with assessment rules
        (``zhucun.shared.policy.NoPolicyInForce`` when there is none)."""
        return self.policies.pack_in_force(county, on, AssessmentPolicy)

    def pack_of_year(self, county: str, year: int) -> PolicyPack:
        """The pack of an annual round: the one in force on the year's last day."""
        return self.pack(county, year_bounds(year)[1])

    async def run(
        self,
        principal: Principal,
        model: StreamModel[S],
        decide: Callable[[S], Sequence[DomainEvent]],
    ) -> CommandAccepted:
        """Decide on the stream's current state and append what was decided at the version
        read (the stream is the decision's consistency boundary)."""
        return await self.commands.execute_one(model, decide, self.metadata(principal))

    async def state(self, model: StreamModel[S]) -> S:
        """A stream's current state (a read)."""
        return await self.commands.state(model)


__all__ = [
    "Application",
    "annual_model",
    "cadre_model",
    "ensure_county",
    "ensure_reach",
    "ensure_reads_county",
    "post_of",
    "quarter_model",
    "team_model",
    "today_in_china",
]
