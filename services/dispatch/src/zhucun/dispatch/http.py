"""The dispatch HTTP edge: commands and queries under ``/counties/{county}/...``.

Writes are for ``org_admin`` of the county, reads for ``org_admin``, ``township`` and
``auditor``. Each route parses its path and body, and calls one use case of
``zhucun.dispatch.application`` (which checks the jurisdiction, picks the policy pack and
decides on the county stream).

Refusals are problem details (the service app maps every ``RuleViolation`` by its kind): an
unknown id is 404, dates out of order and invalid input are 422, any other broken dispatch
rule is 409 with the rule's stable ``code``.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from zhucun.contracts.dispatch.events import RoundReport
from zhucun.dispatch.application import (
    AssignmentView,
    CadreView,
    CandidatesView,
    Dispatch,
    HandoverView,
    ObligationView,
    TeamView,
    VillageView,
)
from zhucun.dispatch.domain import (
    AppointTownshipLeader,
    AssignCadre,
    CloseRound,
    CompleteHandoverItem,
    DeclareVillageNeeds,
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
from zhucun.dispatch.domain.commands import Command
from zhucun.shared.auth import Principal, require_roles
from zhucun.shared.auth import Role as AccessRole
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.http import CountyCode, command_metadata, use_cases
from zhucun.shared.problems import ProblemError

Writer = Annotated[Principal, Depends(require_roles(AccessRole.ORG_ADMIN))]
Reader = Annotated[
    Principal,
    Depends(require_roles(AccessRole.ORG_ADMIN, AccessRole.TOWNSHIP, AccessRole.AUDITOR)),
]
UseCases = Annotated[Dispatch, Depends(use_cases(Dispatch))]

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


def _same_id(path_value: str, body_value: str, name: str) -> None:
    """A route that names a resource in its path takes a body about that one only."""
    if path_value != body_value:
        raise ProblemError(
            422,
            "dispatch/id-mismatch",
            "Path and body disagree",
            f"the path names {name} {path_value!r}, the body {body_value!r}",
        )


# --- writes ---------------------------------------------------------------------------------

_CREATED: dict[str, Any] = {"status_code": status.HTTP_201_CREATED}


@router.post("/villages", **_CREATED, summary="Register a village")
async def register_village(
    county: CountyCode, body: RegisterVillageBody, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    command = RegisterVillage.model_validate({**dict(body), "county": county})
    return await dispatch.register_village(principal, county, command, command_metadata(principal))


@router.put("/villages/{village_id}", summary="Update a village's profile")
async def update_village(
    county: CountyCode, village_id: str, body: UpdateVillage, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    _same_id(village_id, body.village_id, "village")
    return await dispatch.update_village(principal, county, body, command_metadata(principal))


@router.put("/villages/{village_id}/needs", summary="Declare a village's needs (村点菜)")
async def declare_needs(
    county: CountyCode,
    village_id: str,
    body: DeclareVillageNeeds,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(village_id, body.village_id, "village")
    return await dispatch.declare_needs(principal, county, body, command_metadata(principal))


@router.post("/cadres", **_CREATED, summary="Register a cadre")
async def register_cadre(
    county: CountyCode, body: RegisterCadreBody, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    command = RegisterCadre.model_validate({**dict(body), "county": county})
    return await dispatch.register_cadre(principal, county, command, command_metadata(principal))


@router.put("/cadres/{cadre_id}", summary="Update a cadre's profile")
async def update_cadre(
    county: CountyCode, cadre_id: str, body: UpdateCadre, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    _same_id(cadre_id, body.cadre_id, "cadre")
    return await dispatch.update_cadre(principal, county, body, command_metadata(principal))


@router.post("/rounds", **_CREATED, summary="Open a round")
async def open_round(
    county: CountyCode, body: OpenRoundBody, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    command = OpenRound.model_validate({**dict(body), "county": county})
    return await dispatch.open_round(principal, county, command, command_metadata(principal))


@router.post("/rounds/{round_id}/close", summary="Close a round (checks sizes, reports)")
async def close_round(
    county: CountyCode, round_id: str, body: CloseRound, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    _same_id(round_id, body.round_id, "round")
    return await dispatch.close_round(principal, county, body, command_metadata(principal))


@router.post("/teams", **_CREATED, summary="Form a team for a village")
async def form_team(
    county: CountyCode, body: FormTeam, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    return await dispatch.form_team(principal, county, body, command_metadata(principal))


@router.post("/assignments", **_CREATED, summary="Assign a cadre with the round")
async def assign_cadre(
    county: CountyCode, body: AssignCadre, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    return await dispatch.assign_cadre(principal, county, body, command_metadata(principal))


@router.post("/teams/{team_id}/reinforcements", **_CREATED, summary="Reinforce a team (增派)")
async def reinforce_team(
    county: CountyCode, team_id: str, body: ReinforceTeam, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    _same_id(team_id, body.team_id, "team")
    return await dispatch.reinforce_team(principal, county, body, command_metadata(principal))


@router.post(
    "/replacement-obligations/{obligation_id}/replacement",
    **_CREATED,
    summary="Replace a recalled cadre (调整撤换)",
)
async def replace_cadre(
    county: CountyCode,
    obligation_id: str,
    body: ReplaceCadre,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(obligation_id, body.obligation_id, "obligation")
    return await dispatch.replace_cadre(principal, county, body, command_metadata(principal))


@router.post("/assignments/{assignment_id}/end", summary="End an assignment at term end")
async def end_assignment(
    county: CountyCode,
    assignment_id: str,
    body: EndAssignment,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(assignment_id, body.assignment_id, "assignment")
    return await dispatch.end_assignment(principal, county, body, command_metadata(principal))


@router.post("/assignments/{assignment_id}/recall", summary="Recall a cadre")
async def recall_cadre(
    county: CountyCode,
    assignment_id: str,
    body: RecallCadre,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(assignment_id, body.assignment_id, "assignment")
    return await dispatch.recall_cadre(principal, county, body, command_metadata(principal))


@router.post("/township-leaders", **_CREATED, summary="Appoint a township team leader")
async def appoint_township_leader(
    county: CountyCode, body: AppointTownshipLeader, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    metadata = command_metadata(principal)
    return await dispatch.appoint_township_leader(principal, county, body, metadata)


@router.post("/handovers/{handover_id}/items", summary="Complete a handover item (五个一)")
async def complete_handover_item(
    county: CountyCode,
    handover_id: str,
    body: CompleteHandoverItem,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(handover_id, body.handover_id, "handover")
    metadata = command_metadata(principal)
    return await dispatch.complete_handover_item(principal, county, body, metadata)


# --- reads ----------------------------------------------------------------------------------


@router.get("/villages/{village_id}", summary="A village")
async def get_village(
    county: CountyCode, village_id: str, principal: Reader, dispatch: UseCases
) -> VillageView:
    return await dispatch.village(principal, county, village_id)


@router.get("/cadres/{cadre_id}", summary="A cadre and their active assignment")
async def get_cadre(
    county: CountyCode, cadre_id: str, principal: Reader, dispatch: UseCases
) -> CadreView:
    return await dispatch.cadre(principal, county, cadre_id)


@router.get("/cadres/{cadre_id}/assignments", summary="A cadre's assignment history")
async def get_cadre_assignments(
    county: CountyCode, cadre_id: str, principal: Reader, dispatch: UseCases
) -> list[AssignmentView]:
    return await dispatch.cadre_assignments(principal, county, cadre_id)


@router.get("/teams/{team_id}", summary="A team and its active members")
async def get_team(
    county: CountyCode, team_id: str, principal: Reader, dispatch: UseCases
) -> TeamView:
    return await dispatch.team(principal, county, team_id)


@router.get(
    "/rounds/{round_id}/report",
    summary="A closed round's report",
    responses={409: {"description": "The round is still open"}},
)
async def get_round_report(
    county: CountyCode, round_id: str, principal: Reader, dispatch: UseCases
) -> RoundReport:
    return await dispatch.round_report(principal, county, round_id)


@router.get("/handovers", summary="Open handovers (五个一 not yet complete)")
async def get_open_handovers(
    county: CountyCode, principal: Reader, dispatch: UseCases
) -> list[HandoverView]:
    return await dispatch.open_handovers(principal, county)


@router.get("/replacement-obligations", summary="Open replacement obligations")
async def get_open_obligations(
    county: CountyCode, principal: Reader, dispatch: UseCases
) -> list[ObligationView]:
    return await dispatch.open_obligations(principal, county)


@router.get(
    "/rounds/{round_id}/villages/{village_id}/candidates",
    summary="Free cadres ranked for a village, with reasons (县配菜)",
)
async def get_candidates(
    county: CountyCode, round_id: str, village_id: str, principal: Reader, dispatch: UseCases
) -> CandidatesView:
    return await dispatch.candidates(principal, county, round_id, village_id)


__all__ = ["router"]
