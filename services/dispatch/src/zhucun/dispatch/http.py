"""The dispatch HTTP edge: commands and queries under ``/counties/{county}/...``.

Writes are for ``org_admin`` of the county, reads for ``org_admin``, ``township`` and
``auditor``. Each route parses its path and body, and calls one use case of
``zhucun.dispatch.application`` (which checks the jurisdiction, picks the policy pack and
decides on the county stream).

Bounds: every body is a command (or a command without the county the path names), so it has
exactly the command's bounds, those of the event contract (``zhucun.shared.bounds``); ids in
paths have the one id pattern. Whatever breaks them is a 422 ``validation-error`` naming the
field, before anything is read or stored.

Refusals are problem details (the service app maps every ``RuleViolation`` by its kind): an
unknown id is 404, dates out of order and invalid input are 422, any other broken dispatch
rule is 409 with the rule's stable ``code``.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from zhucun.contracts.dispatch.events import RoundReport
from zhucun.dispatch.application import (
    AssignmentView,
    CadreView,
    CandidatesView,
    Dispatch,
    HandoverView,
    ObligationView,
    RoundView,
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
from zhucun.dispatch.domain.commands import Command, RoundOpening
from zhucun.shared.auth import Principal, require_roles
from zhucun.shared.auth import Role as AccessRole
from zhucun.shared.bounds import ID_MAX_LENGTH, ID_PATTERN
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.http import After, CountyCode, Limit, command_metadata, use_cases
from zhucun.shared.openapi import CONFLICTS_FLAG
from zhucun.shared.pages import DEFAULT_PAGE_SIZE, Page
from zhucun.shared.problems import ProblemError

Writer = Annotated[Principal, Depends(require_roles(AccessRole.ORG_ADMIN))]
Reader = Annotated[
    Principal,
    Depends(require_roles(AccessRole.ORG_ADMIN, AccessRole.TOWNSHIP, AccessRole.AUDITOR)),
]
UseCases = Annotated[Dispatch, Depends(use_cases(Dispatch))]

C = TypeVar("C", bound=Command)

router = APIRouter(prefix="/counties/{county}", tags=["dispatch"])


# --- paths ----------------------------------------------------------------------------------


def _id_in_path(what: str) -> Any:
    return Path(
        pattern=ID_PATTERN,
        max_length=ID_MAX_LENGTH,
        description=f"the {what}'s id (letters, digits and `._:-`, at most {ID_MAX_LENGTH})",
    )


VillageId = Annotated[str, _id_in_path("village")]
CadreId = Annotated[str, _id_in_path("cadre")]
RoundId = Annotated[str, _id_in_path("round")]
TeamId = Annotated[str, _id_in_path("team")]
AssignmentId = Annotated[str, _id_in_path("assignment")]
HandoverId = Annotated[str, _id_in_path("handover")]
ObligationId = Annotated[str, _id_in_path("replacement obligation")]


# --- request bodies: the commands minus the county (it comes from the path) -----------------


class RegisterVillageBody(UpdateVillage):
    """A new village of the county, with its profile."""


class RegisterCadreBody(UpdateCadre):
    """A cadre whose dispatch file the county holds."""


class OpenRoundBody(RoundOpening):
    """A new round of the county."""


def _in_county(kind: type[C], body: BaseModel, county: str) -> C:
    """The command ``kind`` of ``body`` in the path's ``county``.

    A body has its command's bounds, so this cannot fail for a body FastAPI accepted; should
    it ever, the answer is the same 422 as for the body (the 500 of an empty round name came
    from a body laxer than its command, whose refusal escaped here as an error).
    """
    try:
        return kind.model_validate({**dict(body), "county": county})
    except ValidationError as error:
        raise RequestValidationError([_located(e) for e in error.errors()]) from None


def _located(error: Any) -> Any:
    """A command's validation error, located where the request carried the field."""
    where = "path" if tuple(error["loc"][:1]) == ("county",) else "body"
    return {**error, "loc": (where, *error["loc"])}


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


@router.post(
    "/villages",
    **_CREATED,
    summary="Register a village",
    description=(
        "Enters a village into the county's dispatch register with its profile (name, "
        "township, categories, geofence, households, people under monitoring), so that it "
        "may get a team. Refuses a village id the county already has (409) and any field "
        "out of its bounds (422)."
    ),
)
async def register_village(
    county: CountyCode, body: RegisterVillageBody, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    command = _in_county(RegisterVillage, body, county)
    return await dispatch.register_village(principal, county, command, command_metadata(principal))


@router.put(
    "/villages/{village_id}",
    summary="Update a village's profile",
    description=(
        "Replaces the whole profile of a registered village (a correction, a change of "
        "category); its declared needs stay. Refuses an unknown village (404), a body about "
        "another village than the path's (422) and any field out of its bounds (422)."
    ),
)
async def update_village(
    county: CountyCode,
    village_id: VillageId,
    body: UpdateVillage,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(village_id, body.village_id, "village")
    return await dispatch.update_village(principal, county, body, command_metadata(principal))


@router.put(
    "/villages/{village_id}/needs",
    summary="Declare a village's needs (村点菜)",
    description=(
        "Records what help the village asks for, replacing its earlier declaration; the "
        "needs rank the candidates for its team. Refuses an unknown village (404), a need "
        "given twice and a body about another village than the path's (422)."
    ),
)
async def declare_needs(
    county: CountyCode,
    village_id: VillageId,
    body: DeclareVillageNeeds,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(village_id, body.village_id, "village")
    return await dispatch.declare_needs(principal, county, body, command_metadata(principal))


@router.post(
    "/cadres",
    **_CREATED,
    summary="Register a cadre",
    description=(
        "Opens the cadre's dispatch file in the county: sending unit, its kind and level, "
        "birth year, party standing, rural experience and skills. Refuses a cadre id the "
        "county already holds (409) and any field out of its bounds (422)."
    ),
)
async def register_cadre(
    county: CountyCode, body: RegisterCadreBody, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    command = _in_county(RegisterCadre, body, county)
    return await dispatch.register_cadre(principal, county, command, command_metadata(principal))


@router.put(
    "/cadres/{cadre_id}",
    summary="Update a cadre's profile",
    description=(
        "Replaces the whole profile of a cadre whose file the county holds. Refuses an "
        "unknown cadre (404), a body about another cadre than the path's (422) and any field "
        "out of its bounds (422)."
    ),
)
async def update_cadre(
    county: CountyCode, cadre_id: CadreId, body: UpdateCadre, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    _same_id(cadre_id, body.cadre_id, "cadre")
    return await dispatch.update_cadre(principal, county, body, command_metadata(principal))


@router.post(
    "/rounds",
    **_CREATED,
    summary="Open a round",
    description=(
        "Opens a dispatch round (批次) of the county: teams may then be formed and cadres "
        "sent with it. Refuses a second open round and a round id already used (409), an "
        "opening before the last round's close and an empty id or name (422)."
    ),
)
async def open_round(
    county: CountyCode, body: OpenRoundBody, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    command = _in_county(OpenRound, body, county)
    return await dispatch.open_round(principal, county, command, command_metadata(principal))


@router.post(
    "/rounds/{round_id}/close",
    summary="Close a round (checks sizes, reports)",
    description=(
        "Closes the round: every team must be within its size and every weak-branch village "
        "must have a first secretary, else the close is refused (409). The answer's "
        "`warnings` name each breach of 省市只增不减、县级只减不增 against the previous round "
        "(`unit_level_decreased`, `county_level_increased`); they do not refuse the close. "
        "Refuses an unknown round (404) and a round already closed (409)."
    ),
)
async def close_round(
    county: CountyCode, round_id: RoundId, body: CloseRound, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    _same_id(round_id, body.round_id, "round")
    return await dispatch.close_round(principal, county, body, command_metadata(principal))


@router.post(
    "/teams",
    **_CREATED,
    summary="Form a team for a village",
    description=(
        "Forms the work team of a village in an open round, before anyone is assigned "
        "(先定村、再定人). Refuses an unknown round or village (404), a closed round, a "
        "village that already has a team in the round and a taken team id (409)."
    ),
)
async def form_team(
    county: CountyCode, body: FormTeam, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    return await dispatch.form_team(principal, county, body, command_metadata(principal))


@router.post(
    "/assignments",
    **_CREATED,
    summary="Assign a cadre with the round",
    description=(
        "Sends a cadre to a team of the open round, as first secretary or member; soft rules "
        "not met (age, 一老一新, 一深一浅, a short term) come back as `warnings`. Refuses an "
        "unknown team or cadre (404), a cadre on post elsewhere, a full team, a second first "
        "secretary or an ineligible one, and a closed round (409); a term that would end "
        "after the calendar's last day, 2099-12-31 (422)."
    ),
)
async def assign_cadre(
    county: CountyCode, body: AssignCadre, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    return await dispatch.assign_cadre(principal, county, body, command_metadata(principal))


@router.post(
    "/teams/{team_id}/reinforcements",
    **_CREATED,
    summary="Reinforce a team (增派)",
    description=(
        "Adds a member to a team at work, also after its round closed. Refuses an unknown "
        "team or cadre (404), a team with nobody on post, a full team and a cadre on post "
        "elsewhere (409), and a term that would end after 2099-12-31 (422)."
    ),
)
async def reinforce_team(
    county: CountyCode, team_id: TeamId, body: ReinforceTeam, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    _same_id(team_id, body.team_id, "team")
    return await dispatch.reinforce_team(principal, county, body, command_metadata(principal))


@router.post(
    "/replacement-obligations/{obligation_id}/replacement",
    **_CREATED,
    summary="Replace a recalled cadre (调整撤换)",
    description=(
        "Fills the vacancy a recall left with another cadre in the same role, closes the "
        "obligation and opens the handover (五个一). Refuses an unknown obligation or cadre "
        "(404), an obligation already filled and a cadre on post elsewhere (409), and a "
        "term that would end after 2099-12-31 (422)."
    ),
)
async def replace_cadre(
    county: CountyCode,
    obligation_id: ObligationId,
    body: ReplaceCadre,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(obligation_id, body.obligation_id, "obligation")
    return await dispatch.replace_cadre(principal, county, body, command_metadata(principal))


@router.post(
    "/assignments/{assignment_id}/end",
    summary="End an assignment at term end",
    description=(
        "Takes the cadre off post at the end of the term. Refuses an unknown assignment "
        "(404), one already ended and an end before the planned term end, which is a recall "
        "(409)."
    ),
)
async def end_assignment(
    county: CountyCode,
    assignment_id: AssignmentId,
    body: EndAssignment,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(assignment_id, body.assignment_id, "assignment")
    return await dispatch.end_assignment(principal, county, body, command_metadata(principal))


@router.post(
    "/assignments/{assignment_id}/recall",
    summary="Recall a cadre",
    description=(
        "Recalls the cadre before the term ends, for a reason (and the recall decision, when "
        "there is one): the assignment ends and a replacement obligation opens. Refuses an "
        "unknown assignment (404), one already ended (409) and a recall before the term "
        "started (422)."
    ),
)
async def recall_cadre(
    county: CountyCode,
    assignment_id: AssignmentId,
    body: RecallCadre,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(assignment_id, body.assignment_id, "assignment")
    return await dispatch.recall_cadre(principal, county, body, command_metadata(principal))


@router.post(
    "/township-leaders",
    **_CREATED,
    summary="Appoint a township team leader",
    description=(
        "Appoints one of a township's cadres on post its team leader (乡镇队长) for the "
        "pack's term. Refuses an unknown cadre (404), a cadre not on post in the township, a "
        "township with too few cadres on post or with a leader already (409), and a term "
        "that would end after 2099-12-31 (422)."
    ),
)
async def appoint_township_leader(
    county: CountyCode, body: AppointTownshipLeader, principal: Writer, dispatch: UseCases
) -> CommandAccepted:
    metadata = command_metadata(principal)
    return await dispatch.appoint_township_leader(principal, county, body, metadata)


@router.post(
    "/handovers/{handover_id}/items",
    summary="Complete a handover item (五个一)",
    description=(
        "Records one of the five handover items as done; the fifth completes the handover. "
        "Refuses an unknown handover (404), an item already done (409) and a date before "
        "the handover opened (422)."
    ),
)
async def complete_handover_item(
    county: CountyCode,
    handover_id: HandoverId,
    body: CompleteHandoverItem,
    principal: Writer,
    dispatch: UseCases,
) -> CommandAccepted:
    _same_id(handover_id, body.handover_id, "handover")
    metadata = command_metadata(principal)
    return await dispatch.complete_handover_item(principal, county, body, metadata)


# --- lists ----------------------------------------------------------------------------------

_PAGED = (
    " A page at a time, in the order of the ids: pass a page's `next` as `after` for the "
    "following one (`next` is null on the last page). Refuses a `limit` outside 1..500 and "
    "an `after` that is not an id (422)."
)


@router.get(
    "/villages",
    summary="The county's villages",
    description="The villages of the county, with their profiles and needs; a township "
    "reader sees those of their township." + _PAGED,
)
async def list_villages(
    county: CountyCode,
    principal: Reader,
    dispatch: UseCases,
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[VillageView]:
    return await dispatch.villages(principal, county, limit=limit, after=after)


@router.get(
    "/cadres",
    summary="The county's cadres",
    description="The cadres whose dispatch file the county holds, each with their active "
    "assignment; a township reader does not see those on post in another township." + _PAGED,
)
async def list_cadres(
    county: CountyCode,
    principal: Reader,
    dispatch: UseCases,
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[CadreView]:
    return await dispatch.cadres(principal, county, limit=limit, after=after)


@router.get(
    "/rounds",
    summary="The county's rounds",
    description="Every dispatch round of the county, open or closed (a closed round's "
    "numbers are its report)." + _PAGED,
)
async def list_rounds(
    county: CountyCode,
    principal: Reader,
    dispatch: UseCases,
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[RoundView]:
    return await dispatch.rounds(principal, county, limit=limit, after=after)


@router.get(
    "/teams",
    summary="The county's teams",
    description="The teams of every round, each with its cadres on post; a township reader "
    "sees those of their township." + _PAGED,
)
async def list_teams(
    county: CountyCode,
    principal: Reader,
    dispatch: UseCases,
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[TeamView]:
    return await dispatch.teams(principal, county, limit=limit, after=after)


@router.get(
    "/assignments",
    summary="The county's assignments",
    description="Every assignment of the county, active and ended; a township reader sees "
    "those to villages of their township." + _PAGED,
)
async def list_assignments(
    county: CountyCode,
    principal: Reader,
    dispatch: UseCases,
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[AssignmentView]:
    return await dispatch.assignments(principal, county, limit=limit, after=after)


# --- reads ----------------------------------------------------------------------------------


@router.get(
    "/villages/{village_id}",
    summary="A village",
    description="A village's profile and declared needs. Refuses an unknown village (404) "
    "and a township reader of another township (403).",
)
async def get_village(
    county: CountyCode, village_id: VillageId, principal: Reader, dispatch: UseCases
) -> VillageView:
    return await dispatch.village(principal, county, village_id)


@router.get(
    "/cadres/{cadre_id}",
    summary="A cadre and their active assignment",
    description="A cadre's profile and the assignment they are on post with, if any. "
    "Refuses an unknown cadre (404) and a township reader of another township than the "
    "one the cadre is on post in (403).",
)
async def get_cadre(
    county: CountyCode, cadre_id: CadreId, principal: Reader, dispatch: UseCases
) -> CadreView:
    return await dispatch.cadre(principal, county, cadre_id)


@router.get(
    "/cadres/{cadre_id}/assignments",
    summary="A cadre's assignment history",
    description="Every assignment of a cadre in the county, by the start of its term. "
    "Refuses an unknown cadre (404) and a township reader of another township than the "
    "one the cadre is on post in (403).",
)
async def get_cadre_assignments(
    county: CountyCode, cadre_id: CadreId, principal: Reader, dispatch: UseCases
) -> list[AssignmentView]:
    return await dispatch.cadre_assignments(principal, county, cadre_id)


@router.get(
    "/teams/{team_id}",
    summary="A team and its active members",
    description="A team, its village and township, and its cadres on post. Refuses an "
    "unknown team (404) and a township reader of another township (403).",
)
async def get_team(
    county: CountyCode, team_id: TeamId, principal: Reader, dispatch: UseCases
) -> TeamView:
    return await dispatch.team(principal, county, team_id)


@router.get(
    "/rounds/{round_id}/report",
    summary="A closed round's report",
    description="The cadres sent per unit level at the round's close, against the county's "
    "previous round, each breach of 省市只增不减、县级只减不增 flagged. Refuses an unknown "
    "round (404) and a round still open, whose report is not made yet (409).",
    openapi_extra={CONFLICTS_FLAG: True},
)
async def get_round_report(
    county: CountyCode, round_id: RoundId, principal: Reader, dispatch: UseCases
) -> RoundReport:
    return await dispatch.round_report(principal, county, round_id)


@router.get(
    "/handovers",
    summary="Open handovers (五个一 not yet complete)",
    description="The handovers of the county whose five items are not all done, with the "
    "items outstanding; a township reader sees those of their township.",
)
async def get_open_handovers(
    county: CountyCode, principal: Reader, dispatch: UseCases
) -> list[HandoverView]:
    return await dispatch.open_handovers(principal, county)


@router.get(
    "/replacement-obligations",
    summary="Open replacement obligations",
    description="The vacancies recalls left that no replacement has filled yet; a township "
    "reader sees those of their township.",
)
async def get_open_obligations(
    county: CountyCode, principal: Reader, dispatch: UseCases
) -> list[ObligationView]:
    return await dispatch.open_obligations(principal, county)


@router.get(
    "/rounds/{round_id}/villages/{village_id}/candidates",
    summary="Free cadres ranked for a village, with reasons (县配菜)",
    description="The county's cadres not yet sent with the round and not on post, best fit "
    "first, each score with the sentences that explain it. Refuses an unknown round or "
    "village (404) and a township reader of another township (403).",
)
async def get_candidates(
    county: CountyCode,
    round_id: RoundId,
    village_id: VillageId,
    principal: Reader,
    dispatch: UseCases,
) -> CandidatesView:
    return await dispatch.candidates(principal, county, round_id, village_id)


__all__ = ["router"]
