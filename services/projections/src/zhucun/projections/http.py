"""The read side's HTTP edge: requests parsed, one use case called (``application.py``), its
typed answer returned. One module for both read models (their routes share the readers'
role, the path types and the use cases' wiring), one router each for the OpenAPI tags.

The audit trail (一人一档), ``auditor`` and ``org_admin``:

* ``GET /cadres/{cadre_id}/file`` — a page of the cadre's file, filtered by a period of
  business time (``since``/``until``, calendar days in China), by event ``type``
  (repeatable), and ``as_of`` an instant or a day (only what had been recorded by then);
  keyset-paginated with an opaque ``cursor``.
* ``GET /cadres/{cadre_id}/file/export?format=json|csv`` — the whole file (``as_of`` too),
  streamed: a JSON array, or CSV with a header row (``data`` as a JSON string).

Recall decisions and promotion pools (用), ``auditor`` and ``org_admin``:

* ``GET /counties/{county}/decisions`` — the county's decisions, open ones by default
  (``status=recommended``), with their rule, reason and evidence;
* ``GET /cadres/{cadre_id}/decisions`` — one cadre's decisions and pool entries, each with
  its evidence: the facts (month closes, grades, lists...) the rule read;
* ``GET /decisions/{decision_id}`` — one decision, with its evidence;
* ``GET /counties/{county}/pools/{pool}`` — a promotion pool (四个一批), active entries by
  default.

Command (``org_admin`` of the cadre's county): ``POST /decisions/{decision_id}/dismiss``
with a reason. Executing a decision is dispatch's recall citing it
(``POST .../assignments/{id}/recall`` with ``decision_id``), which the projection sees.

Who reaches which county's cadres, and every refusal, is the use cases' (the composition
root answers their ``RuleViolation`` as problems).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, Field

from zhucun.projections.application import (
    DismissalAccepted,
    ExportFormat,
    FileQuery,
    ReadSide,
)
from zhucun.projections.audit import FilePage
from zhucun.projections.decisions.queries import (
    CadreDecisions,
    DecisionFilter,
    DecisionList,
    EntryFilter,
    PoolList,
    PoolName,
    RecallDecision,
)
from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.http import CadreId, command_metadata, use_cases
from zhucun.shared.inputs import Input

#: The use cases, wired by the composition root to the running service.
Side = Annotated[ReadSide, Depends(use_cases(ReadSide))]
Reader = Annotated[Principal, Depends(require_roles(Role.AUDITOR, Role.ORG_ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN))]
County = Annotated[str, Path(pattern=r"^\d{6}$", description="County code (GB/T 2260)")]
DecisionId = Annotated[str, Path(min_length=1, max_length=100)]
AsOf = Annotated[
    AwareDatetime | date | None,
    Query(
        description="An instant with a time zone, or a day (its end, in China): only events "
        "recorded by then, i.e. the file as it stood at that moment"
    ),
]
Since = Annotated[date | None, Query(description="First day of business time (China)")]
Until = Annotated[date | None, Query(description="Last day of business time (China)")]
Limit = Annotated[int, Query(ge=1, le=5000)]

files = APIRouter(tags=["audit trail"])
decisions = APIRouter(tags=["decisions"])

# --- the audit trail -------------------------------------------------------------------------

_MEDIA_TYPES: dict[ExportFormat, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}


@files.get(
    "/cadres/{cadre_id}/file",
    summary="A cadre's file (一人一档): every event about them, filtered and paginated",
)
async def read_cadre_file(
    side: Side,
    cadre_id: CadreId,
    principal: Reader,
    since: Since = None,
    until: Until = None,
    types: Annotated[
        list[str] | None, Query(alias="type", description="Event types (repeatable)")
    ] = None,
    as_of: AsOf = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> FilePage:
    query = FileQuery(since, until, types, as_of, limit, cursor)
    return await side.files.read(principal, cadre_id, query)


@files.get(
    "/cadres/{cadre_id}/file/export",
    summary="Export a cadre's whole file as JSON or CSV (streamed)",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"application/json": {}, "text/csv": {}},
            "description": "A JSON array of file entries, or CSV with a header row",
        }
    },
)
async def export_cadre_file(
    side: Side,
    cadre_id: CadreId,
    principal: Reader,
    output: Annotated[ExportFormat, Query(alias="format")] = "json",
    as_of: AsOf = None,
) -> StreamingResponse:
    export = await side.files.export(principal, cadre_id, output, as_of)
    return StreamingResponse(
        export.chunks,
        media_type=_MEDIA_TYPES[export.format],
        headers={"Content-Disposition": f'attachment; filename="{export.filename}"'},
    )


# --- recall decisions and pools --------------------------------------------------------------


class Dismissal(Input):
    reason: str = Field(min_length=1, max_length=5_000, description="Why, for the record")


@decisions.get(
    "/counties/{county}/decisions",
    summary="A county's recall decisions (召回), open ones by default",
)
async def county_decisions(
    side: Side,
    county: County,
    principal: Reader,
    status: Annotated[
        DecisionFilter,
        Query(description="recommended (open, the default), executed, dismissed or all"),
    ] = "recommended",
    limit: Limit = 500,
) -> DecisionList:
    return await side.decisions.county_decisions(principal, county, status, limit)


@decisions.get(
    "/cadres/{cadre_id}/decisions",
    summary="A cadre's recall decisions and pool entries, with their evidence",
)
async def cadre_decisions(side: Side, cadre_id: CadreId, principal: Reader) -> CadreDecisions:
    return await side.decisions.cadre(principal, cadre_id)


@decisions.get("/decisions/{decision_id}", summary="One recall decision, with its evidence")
async def read_decision(side: Side, decision_id: DecisionId, principal: Reader) -> RecallDecision:
    return await side.decisions.decision(principal, decision_id)


@decisions.get(
    "/counties/{county}/pools/{pool_name}",
    summary="A promotion pool of a county (四个一批), active entries by default",
)
async def county_pool(
    side: Side,
    county: County,
    pool_name: PoolName,
    principal: Reader,
    status: Annotated[
        EntryFilter, Query(description="active (the default), withdrawn, barred or all")
    ] = "active",
    limit: Limit = 500,
) -> PoolList:
    return await side.decisions.pool(principal, county, pool_name, status, limit)


@decisions.post(
    "/decisions/{decision_id}/dismiss",
    summary="Dismiss an open recall decision after review, with a reason",
)
async def dismiss_decision(
    side: Side, decision_id: DecisionId, body: Dismissal, principal: Admin
) -> DismissalAccepted:
    return await side.dismiss(principal, decision_id, body.reason, command_metadata(principal))


router = APIRouter()
router.include_router(files)
router.include_router(decisions)

__all__ = ["router"]
