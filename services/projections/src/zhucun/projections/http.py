"""The read side's HTTP edge: the audit trail of a cadre (一人一档).

* ``GET /cadres/{cadre_id}/file`` — a page of the cadre's file, filtered by a period of
  business time (``since``/``until``, calendar days in China), by event ``type``
  (repeatable), and ``as_of`` an instant or a day (only what had been recorded by then);
  keyset-paginated with an opaque ``cursor``.
* ``GET /cadres/{cadre_id}/file/export?format=json|csv`` — the whole file (``as_of`` too),
  streamed: a JSON array, or CSV with a header row (``data`` as a JSON string).

Who may read: ``auditor`` and ``org_admin``. A principal restricted to a county (every
``org_admin``; an ``auditor`` only when its token names a county) reads a cadre's file only
when one of the cadre's events names that county; an auditor without a county reads every
file. A cadre without any event is 404.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict

from zhucun.projections.audit import (
    AuditTrailReader,
    FileEntry,
    InvalidCursor,
    end_of_day,
    export_csv,
    export_json,
)
from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.problems import ProblemError
from zhucun.shared.service import ServiceRuntime

CadreId = Annotated[str, Path(min_length=1, max_length=100)]
Reader = Annotated[Principal, Depends(require_roles(Role.AUDITOR, Role.ORG_ADMIN))]
AsOf = Annotated[
    AwareDatetime | date | None,
    Query(
        description="An instant with a time zone, or a day (its end, in China): only events "
        "recorded by then, i.e. the file as it stood at that moment"
    ),
]
Since = Annotated[date | None, Query(description="First day of business time (China)")]
Until = Annotated[date | None, Query(description="Last day of business time (China)")]

router = APIRouter(tags=["audit trail"])


class FileAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[FileEntry]
    #: Pass as ``cursor`` for the next page; null on the last page.
    next_cursor: str | None


def _reader(request: Request) -> AuditTrailReader:
    runtime: ServiceRuntime = request.app.state.runtime
    if runtime.pool is None:
        raise RuntimeError("the service is not started")
    return AuditTrailReader(runtime.pool, runtime.settings.postgres.schema_name)


def _instant(as_of: datetime | date | None) -> datetime | None:
    if isinstance(as_of, datetime) or as_of is None:
        return as_of
    return end_of_day(as_of)


async def _open_file(reader: AuditTrailReader, principal: Principal, cadre_id: str) -> None:
    """404 for a cadre without events; 403 outside the principal's county."""
    county = principal.jurisdiction.county if principal.role is not Role.SERVICE else None
    known, in_county = await reader.presence(cadre_id, county)
    if not known:
        raise ProblemError(
            404,
            "audit/unknown-cadre",
            "No file for this cadre",
            f"no event about cadre {cadre_id!r} has reached the audit trail",
        )
    if county is not None and not in_county:
        raise ProblemError(
            403,
            "forbidden-jurisdiction",
            "Outside your jurisdiction",
            "None of the cadre's events lies in the county of the token's principal.",
        )


@router.get(
    "/cadres/{cadre_id}/file",
    summary="A cadre's file (一人一档): every event about them, filtered and paginated",
)
async def read_cadre_file(
    request: Request,
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
) -> FileAnswer:
    if since is not None and until is not None and until < since:
        raise ProblemError(
            422, "audit/invalid-period", "Invalid period", "'until' is before 'since'"
        )
    reader = _reader(request)
    await _open_file(reader, principal, cadre_id)
    try:
        page = await reader.cadre_file(
            cadre_id,
            since=since,
            until=until,
            types=types,
            as_of=_instant(as_of),
            limit=limit,
            after=cursor,
        )
    except InvalidCursor as error:
        raise ProblemError(422, "audit/invalid-cursor", "Invalid cursor", str(error)) from error
    return FileAnswer(items=page.items, next_cursor=page.next_cursor)


@router.get(
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
    request: Request,
    cadre_id: CadreId,
    principal: Reader,
    output: Annotated[Literal["json", "csv"], Query(alias="format")] = "json",
    as_of: AsOf = None,
) -> StreamingResponse:
    reader = _reader(request)
    await _open_file(reader, principal, cadre_id)
    rows = reader.export_rows(cadre_id, _instant(as_of))
    name = "file-" + re.sub(r"[^A-Za-z0-9._-]", "_", cadre_id)
    if output == "csv":
        body, media_type = export_csv(rows), "text/csv; charset=utf-8"
    else:
        body, media_type = export_json(rows), "application/json"
    return StreamingResponse(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}.{output}"'},
    )
