"""The dispatch HTTP edge: commands and queries under ``/counties/{county}/...``.

Writes are for ``org_admin`` of the county; each runs one command through
``zhucun.shared.commands.execute`` on the county stream (see ``domain/decide.py``), with the
policy pack in force for the county on the command's date. Reads are for ``org_admin``,
``township`` (only resources within its township, where the resource has one) and
``auditor``; they fold the county stream.

Refusals are problem details: an unknown id is 404, dates out of order and invalid input are
422, any other broken dispatch rule is 409 with the rule's stable ``code``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, ConfigDict

from zhucun.contracts.dispatch.events import (
    AssignmentKind,
    EndReason,
    Expertise,
    Geofence,
    HandoverItem,
    Role,
    RoundReport,
    RuleWarning,
    UnitKind,
    UnitLevel,
    VillageCategory,
    registry,
)
from zhucun.dispatch.domain import (
    AppointTownshipLeader,
    AssignCadre,
    CloseRound,
    CompleteHandoverItem,
    CountyDispatch,
    DatesOutOfOrder,
    DeclareVillageNeeds,
    DispatchCommand,
    DispatchRuleViolation,
    EndAssignment,
    FormTeam,
    OpenRound,
    RecallCadre,
    RegisterCadre,
    RegisterVillage,
    ReinforceTeam,
    ReplaceCadre,
    UnknownAssignment,
    UnknownCadre,
    UnknownHandover,
    UnknownObligation,
    UnknownRound,
    UnknownTeam,
    UnknownVillage,
    UpdateCadre,
    UpdateVillage,
    candidates_for,
    decide,
    evolve,
    stream_id,
)
from zhucun.dispatch.domain.commands import Command
from zhucun.dispatch.domain.matching import CandidateScore
from zhucun.dispatch.domain.state import Assignment, Cadre, Handover, ReplacementObligation
from zhucun.dispatch.domain.state import Village as VillageState
from zhucun.shared.auth import Principal, Scope, require_roles
from zhucun.shared.auth import Role as AccessRole
from zhucun.shared.commands import StreamModel, execute, load
from zhucun.shared.http import command_metadata
from zhucun.shared.policy import NoPolicyInForce, PolicyBook, PolicyPack
from zhucun.shared.problems import ProblemError
from zhucun.shared.service import ServiceRuntime

#: A GB/T 2260 division code (the policy book understands nothing else).
CountyCode = Annotated[
    str, Path(pattern=r"^\d{2}(\d{2}){0,2}$", description="county division code, e.g. 530102")
]
Writer = Annotated[Principal, Depends(require_roles(AccessRole.ORG_ADMIN))]
Reader = Annotated[
    Principal,
    Depends(require_roles(AccessRole.ORG_ADMIN, AccessRole.TOWNSHIP, AccessRole.AUDITOR)),
]

UNKNOWN = (
    UnknownVillage,
    UnknownCadre,
    UnknownRound,
    UnknownTeam,
    UnknownAssignment,
    UnknownHandover,
    UnknownObligation,
)

router = APIRouter(prefix="/counties/{county}", tags=["dispatch"])


# --- request bodies: the commands minus the county (it comes from the path) -----------------


class RegisterVillageBody(UpdateVillage):
    """A new village of the county, with its profile."""


class RegisterCadreBody(UpdateCadre):
    """A cadre whose dispatch file the county holds."""


class OpenRoundBody(Command):
    round_id: str
    name: str
    opened_on: date


# --- responses ------------------------------------------------------------------------------


class CommandAccepted(BaseModel):
    """What a command appended: the events' ids and types, the stream version after it, and
    the soft rules that were not met (the decision stands, the warnings are on record)."""

    stream_id: str
    stream_version: int | None
    event_ids: list[UUID]
    event_types: list[str]
    warnings: list[RuleWarning]


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


class TeamView(_View):
    team_id: str
    round_id: str
    village_id: str
    township: str
    formed_on: date
    members: list[AssignmentView]


class HandoverView(_View):
    handover_id: str
    village_id: str
    predecessor_cadre_id: str
    successor_cadre_id: str
    successor_assignment_id: str
    opened_on: date
    completed_items: list[HandoverItem]
    outstanding_items: list[HandoverItem]


class ObligationView(_View):
    obligation_id: str
    team_id: str
    village_id: str
    role: Role
    vacated_assignment_id: str
    opened_on: date


class CandidatesView(_View):
    round_id: str
    village_id: str
    candidates: list[CandidateScore]


def _village_view(county: str, v: VillageState) -> VillageView:
    return VillageView(
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


def _assignment_view(a: Assignment) -> AssignmentView:
    return AssignmentView(
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


def _cadre_view(state: CountyDispatch, c: Cadre) -> CadreView:
    active = state.active_assignment_of(c.cadre_id)
    return CadreView(
        cadre_id=c.cadre_id,
        county=state.county,
        sending_unit=c.sending_unit,
        unit_kind=c.unit_kind,
        unit_level=c.unit_level,
        birth_year=c.birth_year,
        party_member_since=c.party_member_since,
        rural_experience_years=c.rural_experience_years,
        skills=sorted(c.skills),
        active_assignment=_assignment_view(active) if active else None,
    )


def _handover_view(h: Handover) -> HandoverView:
    return HandoverView(
        handover_id=h.handover_id,
        village_id=h.village_id,
        predecessor_cadre_id=h.predecessor_cadre_id,
        successor_cadre_id=h.successor_cadre_id,
        successor_assignment_id=h.successor_assignment_id,
        opened_on=h.opened_on,
        completed_items=sorted(h.completed_items),
        outstanding_items=list(h.outstanding_items),
    )


def _obligation_view(o: ReplacementObligation) -> ObligationView:
    return ObligationView(
        obligation_id=o.obligation_id,
        team_id=o.team_id,
        village_id=o.village_id,
        role=o.role,
        vacated_assignment_id=o.vacated_assignment_id,
        opened_on=o.opened_on,
    )


# --- plumbing -------------------------------------------------------------------------------


def _runtime(request: Request) -> ServiceRuntime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, ServiceRuntime)
    return runtime


def _policies(request: Request) -> PolicyBook:
    book = request.app.state.policies
    assert isinstance(book, PolicyBook)
    return book


def rule_problem(error: DispatchRuleViolation) -> ProblemError:
    """The problem document of a refused command."""
    if isinstance(error, UNKNOWN):
        status_code, title = 404, "Not found"
    elif isinstance(error, DatesOutOfOrder):
        status_code, title = 422, "Dates out of order"
    else:
        status_code, title = 409, "Dispatch rule violated"
    return ProblemError(
        status_code,
        "dispatch/" + error.code.replace("_", "-"),
        title,
        error.message,
        code=error.code,
    )


#: The date fields that say when a command takes effect (which policy pack applies).
_DATE_FIELDS = (
    "term_start",
    "opened_on",
    "formed_on",
    "closed_on",
    "declared_on",
    "ended_on",
    "recalled_on",
    "completed_on",
)


def _effective_date(command: DispatchCommand) -> date:
    for name in _DATE_FIELDS:
        value = getattr(command, name, None)
        if isinstance(value, date):
            return value
    return datetime.now(UTC).date()  # profiles apply no dated rule


def _policy(book: PolicyBook, county: str, on: date) -> PolicyPack:
    try:
        return book.in_force(county, on)
    except NoPolicyInForce as error:
        raise ProblemError(
            422, "dispatch/no-policy-in-force", "No policy in force", str(error)
        ) from error


async def _run(
    request: Request, principal: Principal, county: str, command: DispatchCommand
) -> CommandAccepted:
    principal.ensure_covers(Scope(county=county))
    policy = _policy(_policies(request), county, _effective_date(command))
    stream = stream_id(county)
    metadata = command_metadata(principal)
    try:
        result = await execute(
            _runtime(request).event_store(),
            streams=[StreamModel(stream, CountyDispatch(county=county), evolve)],
            registry=registry,
            decide=lambda states: {stream: decide(command, states[0], policy)},
            metadata=metadata,
        )
    except DispatchRuleViolation as error:
        raise rule_problem(error) from error
    if result is None:
        return CommandAccepted(
            stream_id=stream, stream_version=None, event_ids=[], event_types=[], warnings=[]
        )
    warnings: list[RuleWarning] = []
    for recorded in result.events:
        warnings.extend(getattr(recorded.decode(registry), "warnings", ()))
    return CommandAccepted(
        stream_id=stream,
        stream_version=result.stream_version,
        event_ids=[e.event_id for e in result.events],
        event_types=[e.event_type for e in result.events],
        warnings=warnings,
    )


def _same_id(path_value: str, body_value: str, name: str) -> None:
    if path_value != body_value:
        raise ProblemError(
            422,
            "dispatch/id-mismatch",
            "Path and body disagree",
            f"the path names {name} {path_value!r}, the body {body_value!r}",
        )


async def _state(request: Request, principal: Principal, county: str) -> CountyDispatch:
    _ensure_reads(principal, county, None)
    state, _ = await load(
        _runtime(request).event_store(),
        stream_id=stream_id(county),
        registry=registry,
        initial=CountyDispatch(county=county),
        evolve=evolve,
    )
    return state


def _ensure_reads(principal: Principal, county: str, township: str | None) -> None:
    """Readers see a resource in their jurisdiction; a resource without a township (a round,
    a cadre not on post) is county-wide, so only the county is checked."""
    own_township = principal.jurisdiction.township
    principal.ensure_covers(Scope(county=county, township=township or own_township))


def _visible(principal: Principal, township: str) -> bool:
    own = principal.jurisdiction.township
    return own is None or own == township


def _refuse(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except DispatchRuleViolation as error:
        raise rule_problem(error) from error


# --- writes ---------------------------------------------------------------------------------

_CREATED: dict[str, Any] = {"status_code": status.HTTP_201_CREATED}


@router.post("/villages", **_CREATED, summary="Register a village")
async def register_village(
    request: Request, county: CountyCode, body: RegisterVillageBody, principal: Writer
) -> CommandAccepted:
    command = RegisterVillage.model_validate({**dict(body), "county": county})
    return await _run(request, principal, county, command)


@router.put("/villages/{village_id}", summary="Update a village's profile")
async def update_village(
    request: Request, county: CountyCode, village_id: str, body: UpdateVillage, principal: Writer
) -> CommandAccepted:
    _same_id(village_id, body.village_id, "village")
    return await _run(request, principal, county, body)


@router.put("/villages/{village_id}/needs", summary="Declare a village's needs (村点菜)")
async def declare_needs(
    request: Request,
    county: CountyCode,
    village_id: str,
    body: DeclareVillageNeeds,
    principal: Writer,
) -> CommandAccepted:
    _same_id(village_id, body.village_id, "village")
    return await _run(request, principal, county, body)


@router.post("/cadres", **_CREATED, summary="Register a cadre")
async def register_cadre(
    request: Request, county: CountyCode, body: RegisterCadreBody, principal: Writer
) -> CommandAccepted:
    command = RegisterCadre.model_validate({**dict(body), "county": county})
    return await _run(request, principal, county, command)


@router.put("/cadres/{cadre_id}", summary="Update a cadre's profile")
async def update_cadre(
    request: Request, county: CountyCode, cadre_id: str, body: UpdateCadre, principal: Writer
) -> CommandAccepted:
    _same_id(cadre_id, body.cadre_id, "cadre")
    return await _run(request, principal, county, body)


@router.post("/rounds", **_CREATED, summary="Open a round")
async def open_round(
    request: Request, county: CountyCode, body: OpenRoundBody, principal: Writer
) -> CommandAccepted:
    command = OpenRound.model_validate({**dict(body), "county": county})
    return await _run(request, principal, county, command)


@router.post("/rounds/{round_id}/close", summary="Close a round (checks sizes, reports)")
async def close_round(
    request: Request, county: CountyCode, round_id: str, body: CloseRound, principal: Writer
) -> CommandAccepted:
    _same_id(round_id, body.round_id, "round")
    return await _run(request, principal, county, body)


@router.post("/teams", **_CREATED, summary="Form a team for a village")
async def form_team(
    request: Request, county: CountyCode, body: FormTeam, principal: Writer
) -> CommandAccepted:
    return await _run(request, principal, county, body)


@router.post("/assignments", **_CREATED, summary="Assign a cadre with the round")
async def assign_cadre(
    request: Request, county: CountyCode, body: AssignCadre, principal: Writer
) -> CommandAccepted:
    return await _run(request, principal, county, body)


@router.post("/teams/{team_id}/reinforcements", **_CREATED, summary="Reinforce a team (增派)")
async def reinforce_team(
    request: Request, county: CountyCode, team_id: str, body: ReinforceTeam, principal: Writer
) -> CommandAccepted:
    _same_id(team_id, body.team_id, "team")
    return await _run(request, principal, county, body)


@router.post(
    "/replacement-obligations/{obligation_id}/replacement",
    **_CREATED,
    summary="Replace a recalled cadre (调整撤换)",
)
async def replace_cadre(
    request: Request,
    county: CountyCode,
    obligation_id: str,
    body: ReplaceCadre,
    principal: Writer,
) -> CommandAccepted:
    _same_id(obligation_id, body.obligation_id, "obligation")
    return await _run(request, principal, county, body)


@router.post("/assignments/{assignment_id}/end", summary="End an assignment at term end")
async def end_assignment(
    request: Request,
    county: CountyCode,
    assignment_id: str,
    body: EndAssignment,
    principal: Writer,
) -> CommandAccepted:
    _same_id(assignment_id, body.assignment_id, "assignment")
    return await _run(request, principal, county, body)


@router.post("/assignments/{assignment_id}/recall", summary="Recall a cadre")
async def recall_cadre(
    request: Request,
    county: CountyCode,
    assignment_id: str,
    body: RecallCadre,
    principal: Writer,
) -> CommandAccepted:
    _same_id(assignment_id, body.assignment_id, "assignment")
    return await _run(request, principal, county, body)


@router.post("/township-leaders", **_CREATED, summary="Appoint a township team leader")
async def appoint_township_leader(
    request: Request, county: CountyCode, body: AppointTownshipLeader, principal: Writer
) -> CommandAccepted:
    return await _run(request, principal, county, body)


@router.post("/handovers/{handover_id}/items", summary="Complete a handover item (五个一)")
async def complete_handover_item(
    request: Request,
    county: CountyCode,
    handover_id: str,
    body: CompleteHandoverItem,
    principal: Writer,
) -> CommandAccepted:
    _same_id(handover_id, body.handover_id, "handover")
    return await _run(request, principal, county, body)


# --- reads ----------------------------------------------------------------------------------


@router.get("/villages/{village_id}", summary="A village")
async def get_village(
    request: Request, county: CountyCode, village_id: str, principal: Reader
) -> VillageView:
    state = await _state(request, principal, county)
    village = state.villages.get(village_id)
    if village is None:
        raise rule_problem(UnknownVillage(village_id))
    _ensure_reads(principal, county, village.township)
    return _village_view(county, village)


def _cadre_township(state: CountyDispatch, cadre_id: str) -> str | None:
    active = state.active_assignment_of(cadre_id)
    return None if active is None else state.villages[active.village_id].township


@router.get("/cadres/{cadre_id}", summary="A cadre and their active assignment")
async def get_cadre(
    request: Request, county: CountyCode, cadre_id: str, principal: Reader
) -> CadreView:
    state = await _state(request, principal, county)
    cadre = state.cadres.get(cadre_id)
    if cadre is None:
        raise rule_problem(UnknownCadre(cadre_id))
    _ensure_reads(principal, county, _cadre_township(state, cadre_id))
    return _cadre_view(state, cadre)


@router.get("/cadres/{cadre_id}/assignments", summary="A cadre's assignment history")
async def get_cadre_assignments(
    request: Request, county: CountyCode, cadre_id: str, principal: Reader
) -> list[AssignmentView]:
    state = await _state(request, principal, county)
    if cadre_id not in state.cadres:
        raise rule_problem(UnknownCadre(cadre_id))
    _ensure_reads(principal, county, _cadre_township(state, cadre_id))
    history = [a for a in state.assignments.values() if a.cadre_id == cadre_id]
    return [_assignment_view(a) for a in sorted(history, key=lambda a: a.term_start)]


@router.get("/teams/{team_id}", summary="A team and its active members")
async def get_team(
    request: Request, county: CountyCode, team_id: str, principal: Reader
) -> TeamView:
    state = await _state(request, principal, county)
    team = state.teams.get(team_id)
    if team is None:
        raise rule_problem(UnknownTeam(team_id))
    township = state.villages[team.village_id].township
    _ensure_reads(principal, county, township)
    return TeamView(
        team_id=team.team_id,
        round_id=team.round_id,
        village_id=team.village_id,
        township=township,
        formed_on=team.formed_on,
        members=[_assignment_view(a) for a in state.team_members(team_id)],
    )


@router.get(
    "/rounds/{round_id}/report",
    summary="A closed round's report",
    responses={409: {"description": "The round is still open"}},
)
async def get_round_report(
    request: Request, county: CountyCode, round_id: str, principal: Reader
) -> RoundReport:
    state = await _state(request, principal, county)
    round_ = state.rounds.get(round_id)
    if round_ is None:
        raise rule_problem(UnknownRound(round_id))
    if round_.report is None:
        raise ProblemError(
            409,
            "dispatch/round-not-closed",
            "Round not closed",
            f"round {round_id!r} is open: its report is made when it closes",
            code="round_not_closed",
        )
    return round_.report


@router.get("/handovers", summary="Open handovers (五个一 not yet complete)")
async def get_open_handovers(
    request: Request, county: CountyCode, principal: Reader
) -> list[HandoverView]:
    state = await _state(request, principal, county)
    return [
        _handover_view(h)
        for h in state.open_handovers()
        if _visible(principal, state.villages[h.village_id].township)
    ]


@router.get("/replacement-obligations", summary="Open replacement obligations")
async def get_open_obligations(
    request: Request, county: CountyCode, principal: Reader
) -> list[ObligationView]:
    state = await _state(request, principal, county)
    return [
        _obligation_view(o)
        for o in state.open_obligations()
        if _visible(principal, state.villages[o.village_id].township)
    ]


@router.get(
    "/rounds/{round_id}/villages/{village_id}/candidates",
    summary="Free cadres ranked for a village, with reasons (县配菜)",
)
async def get_candidates(
    request: Request, county: CountyCode, round_id: str, village_id: str, principal: Reader
) -> CandidatesView:
    state = await _state(request, principal, county)
    ranked: Sequence[CandidateScore] = _refuse(lambda: candidates_for(state, round_id, village_id))
    _ensure_reads(principal, county, state.villages[village_id].township)
    return CandidatesView(round_id=round_id, village_id=village_id, candidates=list(ranked))


__all__ = ["CommandAccepted", "router", "rule_problem"]
