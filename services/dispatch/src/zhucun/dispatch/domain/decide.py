"""The dispatch decider: ``decide(command, state, policy) -> events``, pure.

Streams and consistency boundary
--------------------------------
One stream per county, ``dispatch-county-{code}``, holds the county's villages, the cadres
whose dispatch file the county holds, and all its rounds, teams, assignments, township
leaders, handovers and replacement obligations. ``CountyDispatch`` is its state. Why:

* The event store appends to *one* stream atomically under optimistic concurrency, so a hard
  rule holds only if everything it reads lives in the stream the decision is appended to.
* Dispatch is decided by the county organisation department, and its rules span the county:
  one active assignment per cadre *across rounds* (two-year terms overlap the next round, so
  a county-round stream would miss a cadre still on post in the previous round's team), team
  sizes and weak-branch first secretaries at a round's close, the report against the previous
  round, township leaders counted over several villages. A cadre stream plus a team stream
  would need a two-stream append the store does not offer, or a saga with compensations.
* Size is modest: tens to a few hundred teams per county (Ningyuan: 166 teams, 496 people),
  a few thousand events per round. Writes to one county are serialised by design; the
  command handler retries a ``WrongExpectedVersion`` (read, decide, append at that version).
* A cadre is registered in one county at a time (province and city units send people *to* a
  county). Moving a file between counties (a later issue) is a release in the old county,
  refused while an assignment is active, then a registration in the new one citing it, so no
  two counties ever hold the same cadre on post.

Dates come in commands; the pack in force for the county on the command's date is passed in,
and every event that applied one of its rules records its version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar, get_args

from zhucun.contracts.dispatch.events import (
    CadreRegistered,
    CadreUpdated,
    Role,
    RoundClosed,
    RoundOpened,
    TeamFormed,
    UnitLevel,
    VillageNeedsDeclared,
    VillageRegistered,
    VillageUpdated,
)
from zhucun.dispatch.domain.assignments import (
    appoint_township_leader,
    assign,
    complete_handover_item,
    end_assignment,
    recall,
    reinforce,
    replace_cadre,
)
from zhucun.dispatch.domain.commands import (
    AppointTownshipLeader,
    AssignCadre,
    CloseRound,
    Command,
    CompleteHandoverItem,
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
    UpdateCadre,
    UpdateVillage,
)
from zhucun.dispatch.domain.errors import (
    DuplicateId,
    RoundAlreadyClosed,
    RoundAlreadyOpen,
    TeamSizeOutOfBounds,
    VillageAlreadyHasTeam,
    WeakBranchVillageNeedsFirstSecretary,
)
from zhucun.dispatch.domain.lookups import (
    not_before,
    require_cadre,
    require_round,
    require_same_county,
    require_village,
)
from zhucun.dispatch.domain.policy import DispatchPolicy
from zhucun.dispatch.domain.report import breach_warnings, round_report
from zhucun.dispatch.domain.state import CountyDispatch
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack


def stream_id(county: str) -> str:
    """The one stream every dispatch decision of ``county`` is appended to."""
    return f"dispatch-county-{county}"


def decide(
    command: DispatchCommand, state: CountyDispatch, policy: PolicyPack
) -> list[DomainEvent]:
    """The events ``command`` produces in ``state`` under ``policy``, or a typed refusal."""
    decider = _DECIDERS.get(type(command))
    if decider is None:
        raise TypeError(f"dispatch has no decider for {type(command).__name__}")
    return decider(command, state, policy)


# --- villages and rounds --------------------------------------------------------------------


def _register_village(command: RegisterVillage, state: CountyDispatch) -> list[DomainEvent]:
    require_same_county(state, command.county)
    if command.village_id in state.villages:
        raise DuplicateId("village", command.village_id)
    return [VillageRegistered(**command.model_dump())]


def _update_village(command: UpdateVillage, state: CountyDispatch) -> list[DomainEvent]:
    require_village(state, command.village_id)
    return [VillageUpdated(**command.model_dump())]


def _declare_village_needs(
    command: DeclareVillageNeeds, state: CountyDispatch
) -> list[DomainEvent]:
    require_village(state, command.village_id)
    return [VillageNeedsDeclared(**command.model_dump())]


def _register_cadre(command: RegisterCadre, state: CountyDispatch) -> list[DomainEvent]:
    require_same_county(state, command.county)
    if command.cadre_id in state.cadres:
        raise DuplicateId("cadre", command.cadre_id)
    return [CadreRegistered(**command.model_dump())]


def _update_cadre(command: UpdateCadre, state: CountyDispatch) -> list[DomainEvent]:
    require_cadre(state, command.cadre_id)
    return [CadreUpdated(**command.model_dump())]


def _open_round(command: OpenRound, state: CountyDispatch) -> list[DomainEvent]:
    require_same_county(state, command.county)
    if command.round_id in state.rounds:
        raise DuplicateId("round", command.round_id)
    # One round at a time keeps "the previous round" of a report unambiguous.
    current = state.open_round()
    if current is not None:
        raise RoundAlreadyOpen(f"round {current.round_id!r} is still open in {state.county}")
    previous = state.previous_closed_round()
    if previous is not None and previous.closed_on is not None:
        not_before(command.opened_on, previous.closed_on, "a round opens after the last close")
    return [RoundOpened(**command.model_dump())]


def _form_team(command: FormTeam, state: CountyDispatch) -> list[DomainEvent]:
    round_ = require_round(state, command.round_id)
    if not round_.is_open:
        raise RoundAlreadyClosed(f"round {round_.round_id!r} closed on {round_.closed_on}")
    require_village(state, command.village_id)
    if command.team_id in state.teams:
        raise DuplicateId("team", command.team_id)
    existing = state.team_of(command.round_id, command.village_id)
    if existing is not None:
        raise VillageAlreadyHasTeam(
            f"village {command.village_id!r} already has team {existing.team_id!r} in this round"
        )
    not_before(command.formed_on, round_.opened_on, "a team is formed after its round opens")
    return [TeamFormed(**command.model_dump(), county=state.county)]


# --- closing a round ------------------------------------------------------------------------


def _close_round(
    command: CloseRound, state: CountyDispatch, policy: PolicyPack
) -> list[DomainEvent]:
    rules = policy.rules(DispatchPolicy)
    round_ = require_round(state, command.round_id)
    if not round_.is_open:
        raise RoundAlreadyClosed(f"round {round_.round_id!r} closed on {round_.closed_on}")
    not_before(command.closed_on, round_.opened_on, "a round closes after it opens")
    teams = [t for t in state.teams.values() if t.round_id == round_.round_id]
    members = {t.team_id: state.team_members(t.team_id) for t in teams}

    wrong_sizes = []
    for team in teams:
        village = state.villages[team.village_id]
        size_min, size_max = rules.team_size_bounds(village.monitored_population)
        size = len(members[team.team_id])
        if not size_min <= size <= size_max:
            wrong_sizes.append(
                f"{team.team_id} ({village.village_id}): {size}, {size_min}..{size_max}"
            )
    if wrong_sizes:
        raise TeamSizeOutOfBounds("team sizes out of bounds: " + "; ".join(wrong_sizes))

    if rules.weak_branch_village_requires_first_secretary:
        led = {
            a.village_id
            for a in state.assignments.values()
            if a.is_active and a.role is Role.FIRST_SECRETARY
        }
        unled = [
            v.village_id
            for v in state.villages.values()
            if v.weak_party_branch and v.village_id not in led
        ]
        if unled:
            raise WeakBranchVillageNeedsFirstSecretary(unled)

    sent = dict.fromkeys(UnitLevel, 0)
    for team_members in members.values():
        for assignment in team_members:
            sent[state.cadres[assignment.cadre_id].unit_level] += 1
    previous = state.previous_closed_round()
    report = round_report(
        round_.round_id,
        sent,
        teams=len(teams),
        previous=previous.report if previous else None,
    )
    return [
        RoundClosed(
            round_id=round_.round_id,
            county=state.county,
            closed_on=command.closed_on,
            report=report,
            warnings=breach_warnings(report),
            policy_version=policy.version,
        )
    ]


# --- the table of deciders ------------------------------------------------------------------

_C = TypeVar("_C", bound=Command)
_Decider = Callable[[Any, CountyDispatch, PolicyPack], list[DomainEvent]]


def _under_policy(
    kind: type[_C], decide: Callable[[_C, CountyDispatch, PolicyPack], list[DomainEvent]]
) -> _Decider:
    """A row of the table: mypy checks that ``decide`` takes commands of ``kind``."""
    return decide


def _without_policy(
    kind: type[_C], decide: Callable[[_C, CountyDispatch], list[DomainEvent]]
) -> _Decider:
    """A row for a decider no rule of the pack bears on."""

    def decide_ignoring_policy(
        command: _C, state: CountyDispatch, policy: PolicyPack
    ) -> list[DomainEvent]:
        return decide(command, state)

    return decide_ignoring_policy


#: The decider of each command, by its exact type (command classes are final).
_DECIDERS: Mapping[type[Command], _Decider] = {
    RegisterVillage: _without_policy(RegisterVillage, _register_village),
    UpdateVillage: _without_policy(UpdateVillage, _update_village),
    DeclareVillageNeeds: _without_policy(DeclareVillageNeeds, _declare_village_needs),
    RegisterCadre: _without_policy(RegisterCadre, _register_cadre),
    UpdateCadre: _without_policy(UpdateCadre, _update_cadre),
    OpenRound: _without_policy(OpenRound, _open_round),
    FormTeam: _without_policy(FormTeam, _form_team),
    AssignCadre: _under_policy(AssignCadre, assign),
    ReinforceTeam: _under_policy(ReinforceTeam, reinforce),
    ReplaceCadre: _under_policy(ReplaceCadre, replace_cadre),
    EndAssignment: _without_policy(EndAssignment, end_assignment),
    RecallCadre: _without_policy(RecallCadre, recall),
    AppointTownshipLeader: _under_policy(AppointTownshipLeader, appoint_township_leader),
    CompleteHandoverItem: _without_policy(CompleteHandoverItem, complete_handover_item),
    CloseRound: _under_policy(CloseRound, _close_round),
}
# What the exhaustive ``match`` over DispatchCommand gave statically: every command decided.
_UNDECIDED = set(get_args(DispatchCommand)) - set(_DECIDERS)
if _UNDECIDED:
    raise TypeError(f"no decider for {sorted(c.__name__ for c in _UNDECIDED)}")
