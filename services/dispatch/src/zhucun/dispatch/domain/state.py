"""The state of one county's dispatch stream, and ``evolve`` (state, event) -> state.

State is immutable: ``evolve`` returns a new ``CountyDispatch`` and never touches the old one
(mappings are copied, not mutated), so a decider may keep any earlier state it likes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any, TypeVar

from zhucun.contracts.dispatch.events import (
    AssignmentEnded,
    AssignmentKind,
    CadreAssigned,
    CadreRecalled,
    CadreRegistered,
    CadreUpdated,
    EndReason,
    Expertise,
    Geofence,
    HandoverCompleted,
    HandoverItem,
    HandoverItemCompleted,
    HandoverOpened,
    ReplacementObligationClosed,
    ReplacementObligationOpened,
    Role,
    RoundClosed,
    RoundOpened,
    RoundReport,
    TeamFormed,
    TownshipLeaderAppointed,
    UnitKind,
    UnitLevel,
    VillageCategory,
    VillageNeedsDeclared,
    VillageRegistered,
    VillageUpdated,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.state import fold as fold_events
from zhucun.shared.state import frozen, with_entry


@dataclass(frozen=True, slots=True)
class Village:
    village_id: str
    name: str
    township: str
    categories: frozenset[VillageCategory]
    geofence: Geofence
    households: int
    monitored_population: int
    needs: frozenset[Expertise] = frozenset()

    @property
    def weak_party_branch(self) -> bool:
        return VillageCategory.WEAK_PARTY_BRANCH in self.categories


@dataclass(frozen=True, slots=True)
class Cadre:
    cadre_id: str
    sending_unit: str
    unit_kind: UnitKind
    unit_level: UnitLevel
    birth_year: int
    party_member_since: date | None
    rural_experience_years: int
    skills: frozenset[Expertise]

    def age_in(self, year: int) -> int:
        # Only the birth year is kept (minimal personal data), so ages are by calendar year.
        return year - self.birth_year


@dataclass(frozen=True, slots=True)
class Round:
    round_id: str
    name: str
    opened_on: date
    closed_on: date | None = None
    report: RoundReport | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_on is None


@dataclass(frozen=True, slots=True)
class Team:
    team_id: str
    round_id: str
    village_id: str
    formed_on: date


@dataclass(frozen=True, slots=True)
class Assignment:
    assignment_id: str
    cadre_id: str
    team_id: str
    round_id: str
    village_id: str
    role: Role
    kind: AssignmentKind
    term_start: date
    term_end: date
    ended_on: date | None = None
    end_reason: EndReason | None = None

    @property
    def is_active(self) -> bool:
        return self.ended_on is None


@dataclass(frozen=True, slots=True)
class TownshipLeadership:
    appointment_id: str
    township: str
    cadre_id: str
    assignment_id: str
    term_start: date
    term_end: date


@dataclass(frozen=True, slots=True)
class Handover:
    handover_id: str
    village_id: str
    predecessor_cadre_id: str
    predecessor_assignment_id: str
    successor_cadre_id: str
    successor_assignment_id: str
    opened_on: date
    completed_items: frozenset[HandoverItem] = frozenset()
    completed_on: date | None = None

    @property
    def is_open(self) -> bool:
        return self.completed_on is None

    @property
    def outstanding_items(self) -> tuple[HandoverItem, ...]:
        return tuple(item for item in HandoverItem if item not in self.completed_items)


@dataclass(frozen=True, slots=True)
class ReplacementObligation:
    obligation_id: str
    team_id: str
    village_id: str
    role: Role
    vacated_assignment_id: str
    opened_on: date
    replacement_assignment_id: str | None = None
    closed_on: date | None = None

    @property
    def is_open(self) -> bool:
        return self.closed_on is None


@dataclass(frozen=True, slots=True)
class CountyDispatch:
    """Everything one county has decided: villages, cadres, rounds, teams, assignments,
    township leaders, handovers and replacement obligations (all rounds)."""

    county: str
    villages: Mapping[str, Village] = field(default_factory=frozen)
    cadres: Mapping[str, Cadre] = field(default_factory=frozen)
    #: In the order they were opened.
    rounds: Mapping[str, Round] = field(default_factory=frozen)
    #: In the order they were closed: the last one is the "previous round" of a report.
    closed_round_ids: tuple[str, ...] = ()
    teams: Mapping[str, Team] = field(default_factory=frozen)
    assignments: Mapping[str, Assignment] = field(default_factory=frozen)
    #: cadre id -> their active assignment id (at most one: the rule this stream enforces).
    active_by_cadre: Mapping[str, str] = field(default_factory=frozen)
    leaderships: Mapping[str, TownshipLeadership] = field(default_factory=frozen)
    handovers: Mapping[str, Handover] = field(default_factory=frozen)
    obligations: Mapping[str, ReplacementObligation] = field(default_factory=frozen)

    # --- queries ----------------------------------------------------------------------------

    def open_round(self) -> Round | None:
        return next((r for r in self.rounds.values() if r.is_open), None)

    def previous_closed_round(self) -> Round | None:
        return self.rounds[self.closed_round_ids[-1]] if self.closed_round_ids else None

    def active_assignment_of(self, cadre_id: str) -> Assignment | None:
        assignment_id = self.active_by_cadre.get(cadre_id)
        return None if assignment_id is None else self.assignments[assignment_id]

    def team_members(self, team_id: str) -> list[Assignment]:
        """Active assignments of a team."""
        return [a for a in self.assignments.values() if a.team_id == team_id and a.is_active]

    def team_of(self, round_id: str, village_id: str) -> Team | None:
        return next(
            (
                t
                for t in self.teams.values()
                if t.round_id == round_id and t.village_id == village_id
            ),
            None,
        )

    def active_in_township(self, township: str) -> list[Assignment]:
        return [
            a
            for a in self.assignments.values()
            if a.is_active and self.villages[a.village_id].township == township
        ]

    def cadres_assigned_in_round(self, round_id: str) -> set[str]:
        return {a.cadre_id for a in self.assignments.values() if a.round_id == round_id}

    def open_handovers(self) -> list[Handover]:
        return [h for h in self.handovers.values() if h.is_open]

    def open_obligations(self) -> list[ReplacementObligation]:
        return [o for o in self.obligations.values() if o.is_open]


# --- evolve ---------------------------------------------------------------------------------


def evolve(state: CountyDispatch, event: DomainEvent) -> CountyDispatch:
    """The state after ``event``. Pure: ``state`` is left as it was."""
    apply = _EVOLVERS.get(type(event))
    if apply is None:
        raise TypeError(f"dispatch state does not know event {type(event).__name__}")
    return apply(state, event)


def _village(state: CountyDispatch, event: VillageRegistered | VillageUpdated) -> CountyDispatch:
    old = state.villages.get(event.village_id)
    village = Village(
        village_id=event.village_id,
        name=event.name,
        township=event.township,
        categories=frozenset(event.categories),
        geofence=event.geofence,
        households=event.households,
        monitored_population=event.monitored_population,
        needs=old.needs if old else frozenset(),
    )
    return replace(state, villages=with_entry(state.villages, event.village_id, village))


def _village_needs(state: CountyDispatch, event: VillageNeedsDeclared) -> CountyDispatch:
    village = replace(state.villages[event.village_id], needs=frozenset(event.needs))
    return replace(state, villages=with_entry(state.villages, event.village_id, village))


def _cadre(state: CountyDispatch, event: CadreRegistered | CadreUpdated) -> CountyDispatch:
    cadre = Cadre(
        cadre_id=event.cadre_id,
        sending_unit=event.sending_unit,
        unit_kind=event.unit_kind,
        unit_level=event.unit_level,
        birth_year=event.birth_year,
        party_member_since=event.party_member_since,
        rural_experience_years=event.rural_experience_years,
        skills=frozenset(event.skills),
    )
    return replace(state, cadres=with_entry(state.cadres, event.cadre_id, cadre))


def _round_opened(state: CountyDispatch, event: RoundOpened) -> CountyDispatch:
    round_ = Round(event.round_id, event.name, event.opened_on)
    return replace(state, rounds=with_entry(state.rounds, event.round_id, round_))


def _round_closed(state: CountyDispatch, event: RoundClosed) -> CountyDispatch:
    round_ = replace(state.rounds[event.round_id], closed_on=event.closed_on, report=event.report)
    return replace(
        state,
        rounds=with_entry(state.rounds, event.round_id, round_),
        closed_round_ids=(*state.closed_round_ids, event.round_id),
    )


def _team_formed(state: CountyDispatch, event: TeamFormed) -> CountyDispatch:
    team = Team(event.team_id, event.round_id, event.village_id, event.formed_on)
    return replace(state, teams=with_entry(state.teams, event.team_id, team))


def _cadre_assigned(state: CountyDispatch, event: CadreAssigned) -> CountyDispatch:
    assignment = Assignment(
        assignment_id=event.assignment_id,
        cadre_id=event.cadre_id,
        team_id=event.team_id,
        round_id=event.round_id,
        village_id=event.village_id,
        role=event.role,
        kind=event.kind,
        term_start=event.term_start,
        term_end=event.term_end,
    )
    return replace(
        state,
        assignments=with_entry(state.assignments, event.assignment_id, assignment),
        active_by_cadre=with_entry(state.active_by_cadre, event.cadre_id, event.assignment_id),
    )


def _assignment_ended(state: CountyDispatch, event: AssignmentEnded) -> CountyDispatch:
    ended = replace(
        state.assignments[event.assignment_id], ended_on=event.ended_on, end_reason=event.reason
    )
    active = {k: v for k, v in state.active_by_cadre.items() if v != event.assignment_id}
    return replace(
        state,
        assignments=with_entry(state.assignments, event.assignment_id, ended),
        active_by_cadre=frozen(active),
    )


def _cadre_recalled(state: CountyDispatch, event: CadreRecalled) -> CountyDispatch:
    # The facts that change state follow in AssignmentEnded and the obligation.
    return state


def _obligation_opened(state: CountyDispatch, event: ReplacementObligationOpened) -> CountyDispatch:
    obligation = ReplacementObligation(
        obligation_id=event.obligation_id,
        team_id=event.team_id,
        village_id=event.village_id,
        role=event.role,
        vacated_assignment_id=event.vacated_assignment_id,
        opened_on=event.opened_on,
    )
    return replace(
        state, obligations=with_entry(state.obligations, event.obligation_id, obligation)
    )


def _obligation_closed(state: CountyDispatch, event: ReplacementObligationClosed) -> CountyDispatch:
    obligation = replace(
        state.obligations[event.obligation_id],
        replacement_assignment_id=event.replacement_assignment_id,
        closed_on=event.closed_on,
    )
    return replace(
        state, obligations=with_entry(state.obligations, event.obligation_id, obligation)
    )


def _township_leader(state: CountyDispatch, event: TownshipLeaderAppointed) -> CountyDispatch:
    leadership = TownshipLeadership(
        appointment_id=event.appointment_id,
        township=event.township,
        cadre_id=event.cadre_id,
        assignment_id=event.assignment_id,
        term_start=event.term_start,
        term_end=event.term_end,
    )
    return replace(
        state, leaderships=with_entry(state.leaderships, event.appointment_id, leadership)
    )


def _handover_opened(state: CountyDispatch, event: HandoverOpened) -> CountyDispatch:
    handover = Handover(
        handover_id=event.handover_id,
        village_id=event.village_id,
        predecessor_cadre_id=event.predecessor_cadre_id,
        predecessor_assignment_id=event.predecessor_assignment_id,
        successor_cadre_id=event.successor_cadre_id,
        successor_assignment_id=event.successor_assignment_id,
        opened_on=event.opened_on,
    )
    return replace(state, handovers=with_entry(state.handovers, event.handover_id, handover))


def _handover_item(state: CountyDispatch, event: HandoverItemCompleted) -> CountyDispatch:
    old = state.handovers[event.handover_id]
    handover = replace(old, completed_items=old.completed_items | {event.item})
    return replace(state, handovers=with_entry(state.handovers, event.handover_id, handover))


def _handover_completed(state: CountyDispatch, event: HandoverCompleted) -> CountyDispatch:
    handover = replace(state.handovers[event.handover_id], completed_on=event.completed_on)
    return replace(state, handovers=with_entry(state.handovers, event.handover_id, handover))


_E = TypeVar("_E", bound=DomainEvent)
_Evolver = Callable[[CountyDispatch, Any], CountyDispatch]


def _on(kind: type[_E], apply: Callable[[CountyDispatch, _E], CountyDispatch]) -> _Evolver:
    """One row of the table below; mypy checks that ``apply`` takes events of ``kind``."""
    return apply


#: How each event changes the state, by its exact type (event classes are final: no event
#: class derives from another). A type missing here is refused by ``evolve``.
_EVOLVERS: Mapping[type[DomainEvent], _Evolver] = {
    VillageRegistered: _on(VillageRegistered, _village),
    VillageUpdated: _on(VillageUpdated, _village),
    VillageNeedsDeclared: _on(VillageNeedsDeclared, _village_needs),
    CadreRegistered: _on(CadreRegistered, _cadre),
    CadreUpdated: _on(CadreUpdated, _cadre),
    RoundOpened: _on(RoundOpened, _round_opened),
    RoundClosed: _on(RoundClosed, _round_closed),
    TeamFormed: _on(TeamFormed, _team_formed),
    CadreAssigned: _on(CadreAssigned, _cadre_assigned),
    AssignmentEnded: _on(AssignmentEnded, _assignment_ended),
    CadreRecalled: _on(CadreRecalled, _cadre_recalled),
    ReplacementObligationOpened: _on(ReplacementObligationOpened, _obligation_opened),
    ReplacementObligationClosed: _on(ReplacementObligationClosed, _obligation_closed),
    TownshipLeaderAppointed: _on(TownshipLeaderAppointed, _township_leader),
    HandoverOpened: _on(HandoverOpened, _handover_opened),
    HandoverItemCompleted: _on(HandoverItemCompleted, _handover_item),
    HandoverCompleted: _on(HandoverCompleted, _handover_completed),
}


def fold(state: CountyDispatch, events: Iterable[DomainEvent]) -> CountyDispatch:
    """``state`` after each of ``events`` in turn."""
    return fold_events(evolve, state, events)
