"""The state of the four assessment streams, and ``evolve`` (state, event) -> state.

* ``CadreState``: one cadre (``assessment-cadre-{cadre}``): inspections, villager
  evaluations, term assessments, sanctions.
* ``TeamState``: one work team (``assessment-team-{team}``): its inspections.
* ``QuarterState``: one county's quarter (``assessment-quarter-{county}-{YYYY-Qn}``): the
  latest assessment of each cadre, the 双约谈 obligations, the red and blue lists.
* ``AnnualState``: one county's annual round (``assessment-annual-{county}-{YYYY}``).

State is immutable: ``evolve_*`` return a new state and never touch the old one (mappings are
read-only copies, made with ``zhucun.shared.state``). Each ``evolve_*`` ignores event types
that do not belong to its stream. The state keeps the recorded events themselves where a
decision compares a repeat with them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Annotated, Any, TypeAlias, TypeVar

from pydantic import SerializerFunctionWrapHandler, WrapSerializer

from zhucun.assessment.domain.periods import parse_quarter
from zhucun.contracts.assessment.events import (
    AdmonitionTalkHeld,
    AdmonitionTalksCompleted,
    AdmonitionTalksRequired,
    AnnualGradeProposed,
    AnnualResultIssued,
    AnnualRoundFinalised,
    AnnualRoundOpened,
    CadreInspected,
    QuarterlyAssessed,
    RedBlueListsPublished,
    SanctionRecorded,
    TalkBy,
    TeamInspected,
    TermAssessed,
    VillagerEvaluationRecorded,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.state import fold, frozen, with_entry

K = TypeVar("K")
V = TypeVar("V")


def _plain(value: Mapping[Any, Any], handler: SerializerFunctionWrapHandler) -> Any:
    return handler(dict(value))


#: A read-only mapping (``zhucun.shared.state.frozen``) that pydantic serialises like a dict,
#: so that ``TypeAdapter(QuarterState).dump_python(state, mode="json")`` gives JSON data.
FrozenMap: TypeAlias = Annotated[Mapping[K, V], WrapSerializer(_plain)]


# --- cadre ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CadreState:
    """One cadre's inspections, villager evaluations, term assessments and sanctions."""

    cadre_id: str
    #: By inspection id.
    inspections: FrozenMap[str, CadreInspected] = field(default_factory=frozen)
    #: By evaluation id.
    evaluations: FrozenMap[str, VillagerEvaluationRecorded] = field(default_factory=frozen)
    #: By assignment id: one term-end assessment per assignment.
    term_assessments: FrozenMap[str, TermAssessed] = field(default_factory=frozen)
    #: By sanction id.
    sanctions: FrozenMap[str, SanctionRecorded] = field(default_factory=frozen)

    @classmethod
    def empty(cls, cadre_id: str) -> CadreState:
        return cls(cadre_id=cadre_id)


def evolve_cadre(state: CadreState, event: DomainEvent) -> CadreState:
    """The cadre's record after ``event``. Pure: ``state`` is left as it was."""
    match event:
        case CadreInspected():
            return replace(
                state, inspections=with_entry(state.inspections, event.inspection_id, event)
            )
        case VillagerEvaluationRecorded():
            return replace(
                state, evaluations=with_entry(state.evaluations, event.evaluation_id, event)
            )
        case TermAssessed():
            return replace(
                state,
                term_assessments=with_entry(state.term_assessments, event.assignment_id, event),
            )
        case SanctionRecorded():
            return replace(state, sanctions=with_entry(state.sanctions, event.sanction_id, event))
    return state


# --- team -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TeamState:
    """One work team's inspections."""

    team_id: str
    #: By inspection id.
    inspections: FrozenMap[str, TeamInspected] = field(default_factory=frozen)

    @classmethod
    def empty(cls, team_id: str) -> TeamState:
        return cls(team_id=team_id)


def evolve_team(state: TeamState, event: DomainEvent) -> TeamState:
    """The team's record after ``event``. Pure: ``state`` is left as it was."""
    match event:
        case TeamInspected():
            return replace(
                state, inspections=with_entry(state.inspections, event.inspection_id, event)
            )
    return state


# --- quarter --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Obligation:
    """A 双约谈 obligation: the township and the sending unit each talk to the cadre by
    ``due_on``."""

    obligation_id: str
    cadre_id: str
    quarter: str
    due_on: date
    #: The day each party held its talk.
    talks: FrozenMap[TalkBy, date] = field(default_factory=frozen)
    #: The day of the later of the two talks, once both were held.
    completed_on: date | None = None
    #: Whether it was completed after ``due_on`` (None while open).
    overdue: bool | None = None

    @property
    def completed(self) -> bool:
        return self.completed_on is not None

    @property
    def missing(self) -> tuple[TalkBy, ...]:
        """The parties that have not held their talk yet."""
        return tuple(by for by in TalkBy if by not in self.talks)

    def is_overdue_on(self, today: date) -> bool:
        """Open and past its due date on ``today``."""
        return not self.completed and self.due_on < today


@dataclass(frozen=True, slots=True)
class QuarterState:
    """One county's quarter."""

    county: str
    quarter: str
    #: By cadre id: the cadre's latest quarterly assessment.
    assessments: FrozenMap[str, QuarterlyAssessed] = field(default_factory=frozen)
    #: By obligation id.
    obligations: FrozenMap[str, Obligation] = field(default_factory=frozen)
    #: By list id (the rules allow one publication a quarter).
    lists: FrozenMap[str, RedBlueListsPublished] = field(default_factory=frozen)

    @classmethod
    def empty(cls, county: str, quarter: str) -> QuarterState:
        parse_quarter(quarter)  # raises ValueError when malformed
        return cls(county=county, quarter=quarter)

    @property
    def published(self) -> RedBlueListsPublished | None:
        """The quarter's red and blue lists, once published."""
        return next(iter(self.lists.values()), None)

    def obligations_of(self, cadre_id: str) -> tuple[Obligation, ...]:
        return tuple(o for o in self.obligations.values() if o.cadre_id == cadre_id)

    def scores(self) -> Mapping[str, float]:
        """Cadre id -> quarterly score."""
        return {cadre: assessed.score for cadre, assessed in self.assessments.items()}


def evolve_quarter(state: QuarterState, event: DomainEvent) -> QuarterState:
    """The quarter after ``event``. Pure: ``state`` is left as it was."""
    match event:
        case QuarterlyAssessed():
            return replace(state, assessments=with_entry(state.assessments, event.cadre_id, event))
        case AdmonitionTalksRequired():
            obligation = Obligation(
                obligation_id=event.obligation_id,
                cadre_id=event.cadre_id,
                quarter=event.quarter,
                due_on=event.due_on,
            )
            return replace(
                state, obligations=with_entry(state.obligations, event.obligation_id, obligation)
            )
        case AdmonitionTalkHeld():
            known = state.obligations[event.obligation_id]
            obligation = replace(known, talks=with_entry(known.talks, event.by, event.held_on))
            return replace(
                state, obligations=with_entry(state.obligations, event.obligation_id, obligation)
            )
        case AdmonitionTalksCompleted():
            obligation = replace(
                state.obligations[event.obligation_id],
                completed_on=event.completed_on,
                overdue=event.overdue,
            )
            return replace(
                state, obligations=with_entry(state.obligations, event.obligation_id, obligation)
            )
        case RedBlueListsPublished():
            return replace(state, lists=with_entry(state.lists, event.list_id, event))
    return state


# --- annual round ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnualState:
    """One county's annual round for ``year``."""

    county: str
    year: int
    #: The round's id once opened.
    round_id: str | None = None
    opened_on: date | None = None
    #: By cadre id: the latest proposal.
    proposals: FrozenMap[str, AnnualGradeProposed] = field(default_factory=frozen)
    finalisation: AnnualRoundFinalised | None = None
    #: By cadre id: the final grade, once finalised.
    results: FrozenMap[str, AnnualResultIssued] = field(default_factory=frozen)

    @classmethod
    def empty(cls, county: str, year: int) -> AnnualState:
        return cls(county=county, year=year)

    @property
    def opened(self) -> bool:
        return self.round_id is not None

    @property
    def finalised(self) -> bool:
        return self.finalisation is not None


def evolve_annual(state: AnnualState, event: DomainEvent) -> AnnualState:
    """The round after ``event``. Pure: ``state`` is left as it was."""
    match event:
        case AnnualRoundOpened():
            return replace(state, round_id=event.round_id, opened_on=event.opened_on)
        case AnnualGradeProposed():
            return replace(state, proposals=with_entry(state.proposals, event.cadre_id, event))
        case AnnualRoundFinalised():
            return replace(state, finalisation=event)
        case AnnualResultIssued():
            return replace(state, results=with_entry(state.results, event.cadre_id, event))
    return state


# --- folding --------------------------------------------------------------------------------


def fold_cadre(state: CadreState, events: Iterable[DomainEvent]) -> CadreState:
    return fold(evolve_cadre, state, events)


def fold_team(state: TeamState, events: Iterable[DomainEvent]) -> TeamState:
    return fold(evolve_team, state, events)


def fold_quarter(state: QuarterState, events: Iterable[DomainEvent]) -> QuarterState:
    return fold(evolve_quarter, state, events)


def fold_annual(state: AnnualState, events: Iterable[DomainEvent]) -> AnnualState:
    return fold(evolve_annual, state, events)
