"""Commands to the dispatch decider: what staff of the county organisation department ask for.

Ids of new things (villages, cadres, rounds, teams, assignments, appointments) come with the
command, chosen by the caller, so the decider stays pure and a retried command decides the
same events. Dates come with the command too: the decider never reads a clock.

Every field is bounded by the types of the contract (``zhucun.shared.bounds`` and the
dispatch contract's own): what a command accepts, its events can carry, so no accepted
command can fail to become its event. Ids the decider derives from an assignment's id
(``<assignment>:replacement``, ``<assignment>:handover``) must be ids too, so a new
assignment's id leaves room for the longest suffix (:data:`ASSIGNMENT_ID_MAX_LENGTH`).
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

from zhucun.contracts.dispatch.events import (
    BirthYear,
    Categories,
    County,
    Expertises,
    Geofence,
    HandoverItem,
    Role,
    RuralYears,
    UnitKind,
    UnitLevel,
)
from zhucun.shared.bounds import (
    ID_MAX_LENGTH,
    BusinessDate,
    Count,
    HistoricDate,
    Id,
    Name,
    Note,
)
from zhucun.shared.inputs import Input

#: The id of the replacement obligation a recall of an assignment opens: its id and this.
OBLIGATION_ID_SUFFIX: Final = ":replacement"
#: The id of the handover a new assignment opens: its id and this.
HANDOVER_ID_SUFFIX: Final = ":handover"
DERIVED_ID_SUFFIXES: Final = (OBLIGATION_ID_SUFFIX, HANDOVER_ID_SUFFIX)
#: A new assignment's id: short enough that every id derived from it is an ``Id``.
ASSIGNMENT_ID_MAX_LENGTH: Final = ID_MAX_LENGTH - max(map(len, DERIVED_ID_SUFFIXES))
#: The id a command gives a new assignment.
NewAssignmentId = Annotated[Id, Field(max_length=ASSIGNMENT_ID_MAX_LENGTH)]
#: Why a cadre is recalled: a note that says something.
RecallReason = Annotated[Note, Field(min_length=1)]


class Command(Input):
    """A command to the dispatch decider (immutable, no unknown members, strings stripped)."""


class _VillageProfile(Command):
    village_id: Id
    name: Name
    #: The township's code (the one a township user's token names).
    township: Id
    categories: Categories = ()
    geofence: Geofence
    households: Count
    monitored_population: Count


class RegisterVillage(_VillageProfile):
    county: County


class UpdateVillage(_VillageProfile):
    """The full new profile (the county of a village never changes)."""


class DeclareVillageNeeds(Command):
    village_id: Id
    needs: Expertises
    declared_on: BusinessDate


class _CadreProfile(Command):
    cadre_id: Id
    sending_unit: Name
    unit_kind: UnitKind
    unit_level: UnitLevel
    birth_year: BirthYear
    #: None when the cadre is not a party member.
    party_member_since: HistoricDate | None = None
    rural_experience_years: RuralYears
    skills: Expertises = ()


class RegisterCadre(_CadreProfile):
    #: The county that holds the cadre's dispatch file (see the stream design in decide.py).
    county: County


class UpdateCadre(_CadreProfile):
    """The full new profile."""


class RoundOpening(Command):
    """A new round's id, name and first day (``OpenRound`` without its county, which the
    HTTP edge takes from the path)."""

    round_id: Id
    name: Name
    opened_on: BusinessDate


class OpenRound(RoundOpening):
    county: County


class FormTeam(Command):
    team_id: Id
    round_id: Id
    village_id: Id
    formed_on: BusinessDate


class AssignCadre(Command):
    """Send a cadre with the round (the round must be open)."""

    assignment_id: NewAssignmentId
    team_id: Id
    cadre_id: Id
    role: Role
    term_start: BusinessDate
    #: Default: ``term_start`` plus the pack's minimum term.
    term_end: BusinessDate | None = None


class ReinforceTeam(Command):
    """增派: add a member to a running team (the round may be closed)."""

    assignment_id: NewAssignmentId
    team_id: Id
    cadre_id: Id
    term_start: BusinessDate
    term_end: BusinessDate | None = None


class ReplaceCadre(Command):
    """调整撤换: fill the vacancy a recall left (closes the replacement obligation)."""

    obligation_id: Id
    assignment_id: NewAssignmentId
    cadre_id: Id
    term_start: BusinessDate
    term_end: BusinessDate | None = None


class EndAssignment(Command):
    """The term is over: the cadre leaves the post."""

    assignment_id: Id
    ended_on: BusinessDate


class RecallCadre(Command):
    assignment_id: Id
    reason: RecallReason
    #: The recall decision (decisions service) that justified it, when there is one.
    decision_id: Id | None = None
    recalled_on: BusinessDate


class AppointTownshipLeader(Command):
    appointment_id: Id
    township: Id
    cadre_id: Id
    term_start: BusinessDate


class CompleteHandoverItem(Command):
    handover_id: Id
    item: HandoverItem
    completed_on: BusinessDate


class CloseRound(Command):
    round_id: Id
    closed_on: BusinessDate


DispatchCommand = (
    RegisterVillage
    | UpdateVillage
    | DeclareVillageNeeds
    | RegisterCadre
    | UpdateCadre
    | OpenRound
    | FormTeam
    | AssignCadre
    | ReinforceTeam
    | ReplaceCadre
    | EndAssignment
    | RecallCadre
    | AppointTownshipLeader
    | CompleteHandoverItem
    | CloseRound
)
