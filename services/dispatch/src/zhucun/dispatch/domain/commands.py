"""Commands to the dispatch decider: what staff of the county organisation department ask for.

Ids of new things (villages, cadres, rounds, teams, assignments, appointments) come with the
command, chosen by the caller, so the decider stays pure and a retried command decides the
same events. Dates come with the command too: the decider never reads a clock.
"""

from __future__ import annotations

from datetime import date

from pydantic import Field

from zhucun.contracts.dispatch.events import (
    Expertise,
    Geofence,
    HandoverItem,
    Role,
    UnitKind,
    UnitLevel,
    VillageCategory,
)
from zhucun.shared.inputs import Input


class Command(Input):
    """A command to the dispatch decider (immutable, no unknown members, strings stripped)."""


class _VillageProfile(Command):
    village_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    township: str = Field(min_length=1)
    categories: tuple[VillageCategory, ...] = ()
    geofence: Geofence
    households: int = Field(ge=0)
    monitored_population: int = Field(ge=0)


class RegisterVillage(_VillageProfile):
    county: str = Field(min_length=1)


class UpdateVillage(_VillageProfile):
    """The full new profile (the county of a village never changes)."""


class DeclareVillageNeeds(Command):
    village_id: str
    needs: tuple[Expertise, ...]
    declared_on: date


class _CadreProfile(Command):
    cadre_id: str = Field(min_length=1)
    sending_unit: str = Field(min_length=1)
    unit_kind: UnitKind
    unit_level: UnitLevel
    birth_year: int = Field(ge=1940, le=2015)
    #: None when the cadre is not a party member.
    party_member_since: date | None = None
    rural_experience_years: int = Field(ge=0, le=60)
    skills: tuple[Expertise, ...] = ()


class RegisterCadre(_CadreProfile):
    #: The county that holds the cadre's dispatch file (see the stream design in decide.py).
    county: str = Field(min_length=1)


class UpdateCadre(_CadreProfile):
    """The full new profile."""


class OpenRound(Command):
    round_id: str = Field(min_length=1)
    county: str = Field(min_length=1)
    name: str = Field(min_length=1)
    opened_on: date


class FormTeam(Command):
    team_id: str = Field(min_length=1)
    round_id: str
    village_id: str
    formed_on: date


class AssignCadre(Command):
    """Send a cadre with the round (the round must be open)."""

    assignment_id: str = Field(min_length=1)
    team_id: str
    cadre_id: str
    role: Role
    term_start: date
    #: Default: ``term_start`` plus the pack's minimum term.
    term_end: date | None = None


class ReinforceTeam(Command):
    """增派: add a member to a running team (the round may be closed)."""

    assignment_id: str = Field(min_length=1)
    team_id: str
    cadre_id: str
    term_start: date
    term_end: date | None = None


class ReplaceCadre(Command):
    """调整撤换: fill the vacancy a recall left (closes the replacement obligation)."""

    obligation_id: str
    assignment_id: str = Field(min_length=1)
    cadre_id: str
    term_start: date
    term_end: date | None = None


class EndAssignment(Command):
    """The term is over: the cadre leaves the post."""

    assignment_id: str
    ended_on: date


class RecallCadre(Command):
    assignment_id: str
    reason: str = Field(min_length=1)
    #: The recall decision (decisions service) that justified it, when there is one.
    decision_id: str | None = None
    recalled_on: date


class AppointTownshipLeader(Command):
    appointment_id: str = Field(min_length=1)
    township: str
    cadre_id: str
    term_start: date


class CompleteHandoverItem(Command):
    handover_id: str
    item: HandoverItem
    completed_on: date


class CloseRound(Command):
    round_id: str
    closed_on: date


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
