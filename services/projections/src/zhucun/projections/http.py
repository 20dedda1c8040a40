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

* ``GET /counties/{county}/decisions`` — a page of the county's decisions (``limit``,
  ``after``), open ones by default (``status=recommended``), with their rule, reason and
  evidence;
* ``GET /cadres/{cadre_id}/decisions`` — one cadre's decisions and pool entries, each with
  its evidence: the facts (month closes, grades, lists...) the rule read;
* ``GET /decisions/{decision_id}`` — one decision, with its evidence;
* ``GET /counties/{county}/pools/{pool}`` — a page of a promotion pool (四个一批), active
  entries by default.

Command (``org_admin`` of the cadre's county): ``POST /decisions/{decision_id}/dismiss``
with a reason. Executing a decision is dispatch's recall citing it
(``POST .../assignments/{id}/recall`` with ``decision_id``), which the projection sees.

Who reaches which county's cadres, and every refusal, is the use cases' (the composition
root answers their ``RuleViolation`` as problems). Every path and query value is bounded here
(ids, dates and instants of the window, page sizes), so a value out of its bounds is a 422
naming it, never a computation past the window's edge.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from pydantic import Field, StringConstraints

from zhucun.contracts.decisions.events import Reason
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
    EntryFilter,
    PoolEntry,
    PoolName,
    RecallDecision,
)
from zhucun.projections.sources import union_registry
from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.bounds import ID_MAX_LENGTH, ID_PATTERN, BusinessDate, Timestamp
from zhucun.shared.http import After, CadreId, Limit, command_metadata, use_cases
from zhucun.shared.inputs import Input
from zhucun.shared.pages import DEFAULT_PAGE_SIZE, Page

#: The use cases, wired by the composition root to the running service.
Side = Annotated[ReadSide, Depends(use_cases(ReadSide))]
Reader = Annotated[Principal, Depends(require_roles(Role.AUDITOR, Role.ORG_ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN))]
County = Annotated[str, Path(pattern=r"^\d{6}$", description="County code (GB/T 2260)")]
DecisionId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="a recall decision's id")
]
AsOf = Annotated[
    Timestamp | BusinessDate | None,
    Query(
        description="An instant with a time zone, or a day (its end, in China), of 2000 to"
        " 2099: only events recorded by then, i.e. the file as it stood at that moment"
    ),
]
Since = Annotated[
    BusinessDate | None, Query(description="First day of business time (China), 2000 to 2099")
]
Until = Annotated[
    BusinessDate | None, Query(description="Last day of business time (China), 2000 to 2099")
]
#: The event types a file may hold: those of the four topics' contracts.
EVENT_TYPES: Final = len(union_registry().classes())
EventType = Annotated[
    str, StringConstraints(pattern=r"^[a-z]+\.[A-Za-z]+$", max_length=ID_MAX_LENGTH)
]
Types = Annotated[
    list[EventType] | None,
    Query(
        alias="type",
        max_length=EVENT_TYPES,
        description="Event types such as `assessment.QuarterlyAssessed` (repeatable)",
    ),
]
#: The cursor a page of a file gives (unpadded base64url).
Cursor = Annotated[
    str | None,
    Query(
        pattern=r"^[A-Za-z0-9_-]+$",
        max_length=500,
        description="The `next_cursor` of the previous page; omitted for the first page",
    ),
]

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
    description=(
        "A page of the cadre's file: every event of dispatch, attendance, assessment and the"
        " read side's decisions that concerns the cadre, with its envelope, a short summary"
        " and its data, in the order recorded. Filtered by a period of business time"
        " (`since`, `until`: days in China, both included), by event `type`, and `as_of` an"
        " instant or a day (only what had been recorded by then); `next_cursor` leads to the"
        " next page. Refused: a cadre without any event (404 `audit/unknown-cadre`), `until`"
        " before `since` (422 `audit/invalid-period`), a cursor this service did not issue"
        " (422 `audit/invalid-cursor`), a file outside the caller's county (403)."
    ),
)
async def read_cadre_file(
    side: Side,
    cadre_id: CadreId,
    principal: Reader,
    since: Since = None,
    until: Until = None,
    types: Types = None,
    as_of: AsOf = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> FilePage:
    query = FileQuery(since, until, types, as_of, limit, cursor)
    return await side.files.read(principal, cadre_id, query)


@files.get(
    "/cadres/{cadre_id}/file/export",
    summary="Export a cadre's whole file as JSON or CSV (streamed)",
    description=(
        "The cadre's whole file (`as_of` an instant or a day too), streamed: a JSON array of"
        " its entries, exact, or CSV with a header row (`data` as a JSON string) in which a"
        " cell that a spreadsheet would read as a formula starts with `'`. Refused: a cadre"
        " without any event (404 `audit/unknown-cadre`), a file outside the caller's county"
        " (403)."
    ),
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/FileEntry"}}
                },
                "text/csv": {"schema": {"type": "string"}},
            },
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
    reason: Reason = Field(description="Why, for the record")


@decisions.get(
    "/counties/{county}/decisions",
    summary="A county's recall decisions (召回), open ones by default",
    description=(
        "A page of the county's recall decisions in the order of their ids, each with its"
        " rule, key, reason, status and evidence (the facts the rule read); open ones"
        " (`recommended`) by default, or those `executed`, `dismissed` or `all`. `next` is"
        " the `after` of the following page. Refused outside the caller's county (403)."
    ),
)
async def county_decisions(
    side: Side,
    county: County,
    principal: Reader,
    status: Annotated[
        DecisionFilter,
        Query(description="recommended (open, the default), executed, dismissed or all"),
    ] = "recommended",
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[RecallDecision]:
    return await side.decisions.county_decisions(principal, county, status, limit, after)


@decisions.get(
    "/cadres/{cadre_id}/decisions",
    summary="A cadre's recall decisions and pool entries, with their evidence",
    description=(
        "Every recall decision and promotion-pool entry of the cadre, each with its evidence,"
        " and the county where dispatch registered or last assigned the cadre. Refused: a"
        " cadre nothing about whom has reached the read model (404 `decisions/unknown-cadre`),"
        " a cadre outside the caller's county (403)."
    ),
)
async def cadre_decisions(side: Side, cadre_id: CadreId, principal: Reader) -> CadreDecisions:
    return await side.decisions.cadre(principal, cadre_id)


@decisions.get(
    "/decisions/{decision_id}",
    summary="One recall decision, with its evidence",
    description=(
        "One recall decision: its cadre, rule, key, reason, status (and the event and day"
        " that executed or dismissed it) and its evidence. Refused: an unknown decision (404"
        " `decisions/unknown-decision`), a decision outside the caller's county (403)."
    ),
)
async def read_decision(side: Side, decision_id: DecisionId, principal: Reader) -> RecallDecision:
    return await side.decisions.decision(principal, decision_id)


@decisions.get(
    "/counties/{county}/pools/{pool_name}",
    summary="A promotion pool of a county (四个一批), active entries by default",
    description=(
        "A page of one of the county's four promotion pools (reserve, promote, publicise,"
        " commend) in the order of the entries' ids, each entry with its reason, status and"
        " evidence; `active` ones by default, or those `withdrawn`, `barred` or `all`. `next`"
        " is the `after` of the following page. Refused outside the caller's county (403)."
    ),
)
async def county_pool(
    side: Side,
    county: County,
    pool_name: PoolName,
    principal: Reader,
    status: Annotated[
        EntryFilter, Query(description="active (the default), withdrawn, barred or all")
    ] = "active",
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[PoolEntry]:
    return await side.decisions.pool(principal, county, pool_name, status, limit, after)


@decisions.post(
    "/decisions/{decision_id}/dismiss",
    summary="Dismiss an open recall decision after review, with a reason",
    description=(
        "Dismisses an open recall decision after review by an org_admin of the cadre's"
        " county, with a reason, dated the day of the request in China; the dismissal is"
        " published on `decisions.events.v1`. The same dismissal again is a no-op. Refused:"
        " an unknown decision (404 `decisions/unknown-decision`), a decision executed (409"
        " `decisions/already-executed`) or dismissed with another reason (409"
        " `decisions/already-dismissed`), a decision outside the caller's county (403)."
    ),
)
async def dismiss_decision(
    side: Side, decision_id: DecisionId, body: Dismissal, principal: Admin
) -> DismissalAccepted:
    return await side.dismiss(principal, decision_id, body.reason, command_metadata(principal))


router = APIRouter()
router.include_router(files)
router.include_router(decisions)

__all__ = ["router"]
