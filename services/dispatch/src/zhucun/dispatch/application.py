"""The use cases of dispatch (派): one handler per command and per read, no web framework.

Consistency boundary
    Every dispatch decision reads, guards and appends to one stream, the county's
    (``dispatch-county-{code}``; ADR 0003 and ``domain/decide.py``): its rules span the county
    (one active assignment per cadre across rounds, team sizes at a round's close, township
    leaders over several villages), so each command is decided on the county's whole state and
    appended at the version it read. A concurrent command on the county makes the append fail
    and the decision run again on the fresh state, where the rule itself refuses what
    conflicts ("cadre already assigned").

Policy pack
    The pack in force for the county on the day the command takes effect: each command
    handler names that day (a term's start, a round's close...); profiles of villages and
    cadres apply no dated rule, so theirs is today. A day no pack with dispatch rules covers
    is the shared refusal ``zhucun.shared.policy.NoPolicyInForce`` (422).

Reads
    The county's state through the command path's state cache: a read folds only the events
    appended since the state the process last knew, never the whole history again. The
    county's villages, cadres, rounds, teams and assignments are listed a page at a time
    (``zhucun.shared.pages``), in the order of their ids.

Jurisdiction
    Writers act in their county. Readers see a resource within their township; a resource
    without one (a round, a cadre not on post) is county-wide, so only the county is checked.
    A list holds what its reader could read one by one: a township reader's lists leave out
    the villages, teams and assignments of other townships and the cadres on post there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from zhucun.contracts.dispatch.events import (
    AssignmentKind,
    EndReason,
    Expertise,
    Geofence,
    HandoverItem,
    Role,
    RoundReport,
    UnitKind,
    UnitLevel,
    VillageCategory,
)
from zhucun.dispatch.domain import (
    AppointTownshipLeader,
    AssignCadre,
    CandidateScore,
    CloseRound,
    CompleteHandoverItem,
    CountyDispatch,
    DeclareVillageNeeds,
    DispatchCommand,
    EndAssignment,
    FormTeam,
    OpenRound,
    RecallCadre,
    RegisterCadre,
    RegisterVillage,
    ReinforceTeam,
    ReplaceCadre,
    RoundNotClosed,
    UpdateCadre,
    UpdateVillage,
    candidates_for,
    decide,
    evolve,
    stream_id,
)
from zhucun.dispatch.domain.lookups import (
    require_cadre,
    require_round,
    require_team,
    require_village,
)
from zhucun.dispatch.domain.policy import DispatchPolicy
from zhucun.dispatch.domain.state import (
    Assignment,
    Cadre,
    Handover,
    ReplacementObligation,
    Round,
    Team,
    Village,
)
from zhucun.shared.auth import Principal, Scope
from zhucun.shared.commands import CommandAccepted, CommandPath, StreamModel
from zhucun.shared.envelope import EventMetadata
from zhucun.shared.pages import Page, paginate
from zhucun.shared.policy import PolicyPack, PolicySection

C = TypeVar("C", bound=DispatchCommand)
T = TypeVar("T")
V = TypeVar("V")


class Policies(Protocol):
    """Which policy pack is in force where and when (a ``PolicyBook``)."""

    def pack_in_force(
        self, jurisdiction: str, on: date, section: type[PolicySection]
    ) -> PolicyPack: ...


def county_stream(county: str) -> StreamModel[CountyDispatch]:
    """The one stream every dispatch decision and read of ``county`` folds."""
    return StreamModel(stream_id(county), CountyDispatch(county=county), evolve)


def utc_today() -> date:
    return datetime.now(UTC).date()


# --- commands -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CountyDecision(Generic[C]):
    """A command use case: decide a ``C`` on its county's stream under the pack in force for
    the county on ``takes_effect(command)`` (today when ``None``), and say what it stored."""

    commands: Callable[[], CommandPath]
    policies: Policies
    today: Callable[[], date]
    takes_effect: Callable[[C], date] | None

    async def __call__(
        self, principal: Principal, county: str, command: C, metadata: EventMetadata
    ) -> CommandAccepted:
        principal.ensure_covers(Scope(county=county))
        on = self.today() if self.takes_effect is None else self.takes_effect(command)
        # The decider takes a pack for every command, so a day no pack (with dispatch rules)
        # covers refuses the command as it stands (422), whatever its rules.
        pack = self.policies.pack_in_force(county, on, DispatchPolicy)
        return await self.commands().execute_one(
            county_stream(county), lambda state: decide(command, state, pack), metadata
        )


# --- what reads answer ----------------------------------------------------------------------


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class VillageView(_View):
    village_id: str
    county: str
    name: str
    township: str
    categories: list[VillageCategory]
    geofence: Geofence
    households: int
    monitored_population: int
    needs: list[Expertise]
    weak_party_branch: bool

    @classmethod
    def of(cls, county: str, v: Village) -> VillageView:
        return cls(
            village_id=v.village_id,
            county=county,
            name=v.name,
            township=v.township,
            categories=sorted(v.categories),
            geofence=v.geofence,
            households=v.households,
            monitored_population=v.monitored_population,
            needs=sorted(v.needs),
            weak_party_branch=v.weak_party_branch,
        )


class AssignmentView(_View):
    assignment_id: str
    cadre_id: str
    team_id: str
    round_id: str
    village_id: str
    role: Role
    kind: AssignmentKind
    term_start: date
    term_end: date
    ended_on: date | None
    end_reason: EndReason | None
    active: bool

    @classmethod
    def of(cls, a: Assignment) -> AssignmentView:
        return cls(
            assignment_id=a.assignment_id,
            cadre_id=a.cadre_id,
            team_id=a.team_id,
            round_id=a.round_id,
            village_id=a.village_id,
            role=a.role,
            kind=a.kind,
            term_start=a.term_start,
            term_end=a.term_end,
            ended_on=a.ended_on,
            end_reason=a.end_reason,
            active=a.is_active,
        )


class CadreView(_View):
    cadre_id: str
    county: str
    sending_unit: str
    unit_kind: UnitKind
    unit_level: UnitLevel
    birth_year: int
    party_member_since: date | None
    rural_experience_years: int
    skills: list[Expertise]
    active_assignment: AssignmentView | None

    @classmethod
    def of(cls, state: CountyDispatch, c: Cadre) -> CadreView:
        active = state.active_assignment_of(c.cadre_id)
        return cls(
            cadre_id=c.cadre_id,
            county=state.county,
            sending_unit=c.sending_unit,
            unit_kind=c.unit_kind,
            unit_level=c.unit_level,
            birth_year=c.birth_year,
            party_member_since=c.party_member_since,
            rural_experience_years=c.rural_experience_years,
            skills=sorted(c.skills),
            active_assignment=AssignmentView.of(active) if active else None,
        )


class TeamView(_View):
    team_id: str
    round_id: str
    village_id: str
    township: str
    formed_on: date
    #: Its cadres on post.
    members: list[AssignmentView]

    @classmethod
    def of(cls, state: CountyDispatch, t: Team) -> TeamView:
        return cls(
            team_id=t.team_id,
            round_id=t.round_id,
            village_id=t.village_id,
            township=state.villages[t.village_id].township,
            formed_on=t.formed_on,
            members=[AssignmentView.of(a) for a in state.team_members(t.team_id)],
        )


class RoundView(_View):
    round_id: str
    county: str
    name: str
    opened_on: date
    closed_on: date | None
    #: Teams may be formed and cadres sent with it (its report is made when it closes).
    open: bool

    @classmethod
    def of(cls, county: str, r: Round) -> RoundView:
        return cls(
            round_id=r.round_id,
            county=county,
            name=r.name,
            opened_on=r.opened_on,
            closed_on=r.closed_on,
            open=r.is_open,
        )


class HandoverView(_View):
    handover_id: str
    village_id: str
    predecessor_cadre_id: str
    successor_cadre_id: str
    successor_assignment_id: str
    opened_on: date
    completed_items: list[HandoverItem]
    outstanding_items: list[HandoverItem]

    @classmethod
    def of(cls, h: Handover) -> HandoverView:
        return cls(
            handover_id=h.handover_id,
            village_id=h.village_id,
            predecessor_cadre_id=h.predecessor_cadre_id,
            successor_cadre_id=h.successor_cadre_id,
            successor_assignment_id=h.successor_assignment_id,
            opened_on=h.opened_on,
            completed_items=sorted(h.completed_items),
            outstanding_items=list(h.outstanding_items),
        )


class ObligationView(_View):
    obligation_id: str
    team_id: str
    village_id: str
    role: Role
    vacated_assignment_id: str
    opened_on: date

    @classmethod
    def of(cls, o: ReplacementObligation) -> ObligationView:
        return cls(
            obligation_id=o.obligation_id,
            team_id=o.team_id,
            village_id=o.village_id,
            role=o.role,
            vacated_assignment_id=o.vacated_assignment_id,
            opened_on=o.opened_on,
        )


class CandidatesView(_View):
    round_id: str
    village_id: str
    candidates: list[CandidateScore]


# --- jurisdiction of reads ------------------------------------------------------------------


def _ensure_reads(principal: Principal, county: str, township: str | None) -> None:
    """A township of ``None`` is county-wide: the reader's own township stands in for it, so
    only the county is checked."""
    own_township = principal.jurisdiction.township
    principal.ensure_covers(Scope(county=county, township=township or own_township))


def _visible(principal: Principal, township: str) -> bool:
    own = principal.jurisdiction.township
    return own is None or own == township


def _cadre_township(state: CountyDispatch, cadre_id: str) -> str | None:
    """Where a cadre is on post (``None``: not on post, county-wide)."""
    active = state.active_assignment_of(cadre_id)
    return None if active is None else state.villages[active.village_id].township


def _cadre_visible(principal: Principal, state: CountyDispatch, cadre_id: str) -> bool:
    township = _cadre_township(state, cadre_id)
    return township is None or _visible(principal, township)


def _page(
    items: Iterable[T],
    key: Callable[[T], str],
    view: Callable[[T], V],
    *,
    limit: int,
    after: str | None,
) -> Page[V]:
    """The page after ``after`` of ``items`` by ``key``, each shown as its ``view`` (made for
    the page's items only)."""
    page = paginate(items, key, after, limit)
    return Page[V](items=tuple(view(item) for item in page.items), next=page.next)


# --- the use cases --------------------------------------------------------------------------


class Dispatch:
    """Every use case of dispatch, wired to the service's command path (``commands()`` gives
    it once the service has started) and its policy book; ``today`` is the clock of the
    profiles' pack."""

    def __init__(
        self,
        commands: Callable[[], CommandPath],
        policies: Policies,
        *,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self._commands = commands
        self._policies = policies
        self._today = today
        # One handler per command, each with the day its pack is chosen on.
        self.register_village: CountyDecision[RegisterVillage] = self._decision(None)
        self.update_village: CountyDecision[UpdateVillage] = self._decision(None)
        self.declare_needs: CountyDecision[DeclareVillageNeeds] = self._decision(
            lambda c: c.declared_on
        )
        self.register_cadre: CountyDecision[RegisterCadre] = self._decision(None)
        self.update_cadre: CountyDecision[UpdateCadre] = self._decision(None)
        self.open_round: CountyDecision[OpenRound] = self._decision(lambda c: c.opened_on)
        self.close_round: CountyDecision[CloseRound] = self._decision(lambda c: c.closed_on)
        self.form_team: CountyDecision[FormTeam] = self._decision(lambda c: c.formed_on)
        self.assign_cadre: CountyDecision[AssignCadre] = self._decision(lambda c: c.term_start)
        self.reinforce_team: CountyDecision[ReinforceTeam] = self._decision(lambda c: c.term_start)
        self.replace_cadre: CountyDecision[ReplaceCadre] = self._decision(lambda c: c.term_start)
        self.end_assignment: CountyDecision[EndAssignment] = self._decision(lambda c: c.ended_on)
        self.recall_cadre: CountyDecision[RecallCadre] = self._decision(lambda c: c.recalled_on)
        self.appoint_township_leader: CountyDecision[AppointTownshipLeader] = self._decision(
            lambda c: c.term_start
        )
        self.complete_handover_item: CountyDecision[CompleteHandoverItem] = self._decision(
            lambda c: c.completed_on
        )

    def _decision(self, takes_effect: Callable[[C], date] | None) -> CountyDecision[C]:
        return CountyDecision(self._commands, self._policies, self._today, takes_effect)

    async def _county(self, principal: Principal, county: str) -> CountyDispatch:
        """The county's state for a reader of the county (the cached state, brought up to
        date with the events appended since)."""
        _ensure_reads(principal, county, None)
        return await self._commands().state(county_stream(county))

    # --- reads ------------------------------------------------------------------------------

    async def village(self, principal: Principal, county: str, village_id: str) -> VillageView:
        state = await self._county(principal, county)
        village = require_village(state, village_id)
        _ensure_reads(principal, county, village.township)
        return VillageView.of(county, village)

    async def cadre(self, principal: Principal, county: str, cadre_id: str) -> CadreView:
        state = await self._county(principal, county)
        cadre = require_cadre(state, cadre_id)
        _ensure_reads(principal, county, _cadre_township(state, cadre_id))
        return CadreView.of(state, cadre)

    async def cadre_assignments(
        self, principal: Principal, county: str, cadre_id: str
    ) -> list[AssignmentView]:
        """Every assignment of a cadre in the county, by the start of its term."""
        state = await self._county(principal, county)
        require_cadre(state, cadre_id)
        _ensure_reads(principal, county, _cadre_township(state, cadre_id))
        history = [a for a in state.assignments.values() if a.cadre_id == cadre_id]
        return [AssignmentView.of(a) for a in sorted(history, key=lambda a: a.term_start)]

    async def team(self, principal: Principal, county: str, team_id: str) -> TeamView:
        state = await self._county(principal, county)
        team = require_team(state, team_id)
        _ensure_reads(principal, county, state.villages[team.village_id].township)
        return TeamView.of(state, team)

    async def round_report(self, principal: Principal, county: str, round_id: str) -> RoundReport:
        state = await self._county(principal, county)
        report = require_round(state, round_id).report
        if report is None:
            raise RoundNotClosed(round_id)
        return report

    async def open_handovers(self, principal: Principal, county: str) -> list[HandoverView]:
        """Handovers whose 五个一 are not all done, in the reader's township."""
        state = await self._county(principal, county)
        return [
            HandoverView.of(h)
            for h in state.open_handovers()
            if _visible(principal, state.villages[h.village_id].township)
        ]

    async def open_obligations(self, principal: Principal, county: str) -> list[ObligationView]:
        """Recalls not yet replaced, in the reader's township."""
        state = await self._county(principal, county)
        return [
            ObligationView.of(o)
            for o in state.open_obligations()
            if _visible(principal, state.villages[o.village_id].township)
        ]

    # --- lists ------------------------------------------------------------------------------

    async def villages(
        self, principal: Principal, county: str, *, limit: int, after: str | None
    ) -> Page[VillageView]:
        """The county's villages the reader may see, by id."""
        state = await self._county(principal, county)
        return _page(
            (v for v in state.villages.values() if _visible(principal, v.township)),
            lambda v: v.village_id,
            lambda v: VillageView.of(county, v),
            limit=limit,
            after=after,
        )

    async def cadres(
        self, principal: Principal, county: str, *, limit: int, after: str | None
    ) -> Page[CadreView]:
        """The cadres whose file the county holds that the reader may see (those on post in
        another township are left out), by id."""
        state = await self._county(principal, county)
        return _page(
            (c for c in state.cadres.values() if _cadre_visible(principal, state, c.cadre_id)),
            lambda c: c.cadre_id,
            lambda c: CadreView.of(state, c),
            limit=limit,
            after=after,
        )

    async def rounds(
        self, principal: Principal, county: str, *, limit: int, after: str | None
    ) -> Page[RoundView]:
        """The county's rounds (county-wide), by id."""
        state = await self._county(principal, county)
        return _page(
            state.rounds.values(),
            lambda r: r.round_id,
            lambda r: RoundView.of(county, r),
            limit=limit,
            after=after,
        )

    async def teams(
        self, principal: Principal, county: str, *, limit: int, after: str | None
    ) -> Page[TeamView]:
        """The teams of every round in the reader's township, by id."""
        state = await self._county(principal, county)
        return _page(
            (
                t
                for t in state.teams.values()
                if _visible(principal, state.villages[t.village_id].township)
            ),
            lambda t: t.team_id,
            lambda t: TeamView.of(state, t),
            limit=limit,
            after=after,
        )

    async def assignments(
        self, principal: Principal, county: str, *, limit: int, after: str | None
    ) -> Page[AssignmentView]:
        """Every assignment (active and ended) to a village in the reader's township, by id."""
        state = await self._county(principal, county)
        return _page(
            (
                a
                for a in state.assignments.values()
                if _visible(principal, state.villages[a.village_id].township)
            ),
            lambda a: a.assignment_id,
            AssignmentView.of,
            limit=limit,
            after=after,
        )

    async def candidates(
        self, principal: Principal, county: str, round_id: str, village_id: str
    ) -> CandidatesView:
        """Free cadres ranked for a village of the round, with the reasons of each score."""
        state = await self._county(principal, county)
        ranked = candidates_for(state, round_id, village_id)
        _ensure_reads(principal, county, state.villages[village_id].township)
        return CandidatesView(round_id=round_id, village_id=village_id, candidates=list(ranked))


__all__ = [
    "AssignmentView",
    "CadreView",
    "CandidatesView",
    "CountyDecision",
    "Dispatch",
    "HandoverView",
    "ObligationView",
    "Policies",
    "RoundView",
    "TeamView",
    "VillageView",
    "county_stream",
]
