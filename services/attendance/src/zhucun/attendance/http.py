"""The attendance HTTP edge: evidence, leave, spot checks, diaries, visits and month closes.

Every route is about one cadre (``/cadres/{cadre_id}/...``) except the county-wide month
close. A route checks the caller's role (``require_roles``), parses the body and the path,
calls one use case of ``zhucun.attendance.application`` and returns its typed outcome; the
use case looks the cadre's post up in the replica of dispatch, checks the caller's
jurisdiction over it and runs the decider.

Who may do what (the roles here; jurisdiction and "for themselves" in the application):

* ``cadre`` — for themselves only: check-ins (one, or an offline batch of up to 500), leave
  requests and cancellations, diary entries, household visits.
* ``township`` — in its township: presence confirmations, leave approvals up to the pack's
  limit, spot checks, month closes.
* ``org_admin`` — in its county: all of the township's, any leave, county-wide month closes.
* ``auditor`` — reads.

Every value is bounded (``zhucun.shared.bounds``, as in the contract's events): ids in paths
and bodies are ``Id``, months ``Month`` (2000-01 to 2099-12), days ``BusinessDate``, moments
``Timestamp``, free text ``Note`` or ``Text``; a value out of its bounds is a 422 naming the
field, before any use case runs.

Refusals are problem details with a stable ``type`` per rule (``attendance/<code>``): the
service maps every ``RuleViolation`` a use case raises (422 invalid input, 404 an unknown
leave, 403 a role, a jurisdiction or an approval level, 409 a broken rule, a *retryable* 409
with ``Retry-After`` when the replica of dispatch does not know the cadre's post yet). The
items of a batch and the cadres of a county-wide close are answered one by one, each with
its own problem. No route ranks or lists people by check-ins or time online (the law forbids
it): the one list, a county's leave requests, is of requests, soonest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from zhucun.attendance import application
from zhucun.attendance.application import (
    MAX_BATCH,
    Actor,
    BatchItem,
    CadreClose,
    CheckInAccepted,
    CheckInItem,
    Context,
    CountyLeaveView,
    InvalidItem,
    LeaveView,
    MonthView,
    VisitCoverageView,
)
from zhucun.attendance.domain import Coordinates, LeaveStatus
from zhucun.attendance.domain.commands import ConfirmedDays
from zhucun.contracts.attendance.events import ApprovalLevel, DiaryText, LeaveKind, SpotCheckResult
from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.bounds import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    MONTH_PATTERN,
    BusinessDate,
    Id,
    Note,
    Timestamp,
)
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.http import After, CadreId, CountyCode, Limit, command_metadata, use_cases
from zhucun.shared.inputs import Input
from zhucun.shared.openapi import CONFLICTS_FLAG
from zhucun.shared.pages import DEFAULT_PAGE_SIZE, Page
from zhucun.shared.problems import (
    FieldError,
    field_errors,
    problem_document,
    validation_problem,
)
from zhucun.shared.rules import RuleViolation
from zhucun.shared.service import refusal_problem, replicas_behind, service_runtime

#: The prefix of the service's problem types (``https://zhucun.dev/problems/attendance/...``).
SERVICE = "attendance"

#: A month in a route's path: ``YYYY-MM`` of the window (2000-01 to 2099-12).
Month = Annotated[str, Path(pattern=MONTH_PATTERN, description="YYYY-MM, from 2000-01 to 2099-12")]
#: A leave request's id in a route's path.
LeaveId = Annotated[
    str,
    Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="the leave request's id"),
]

Cadre = Annotated[Principal, Depends(require_roles(Role.CADRE))]
Supervisor = Annotated[Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN))]
CountyAdmin = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN, Role.TOWNSHIP))]
CadreOrSupervisor = Annotated[
    Principal, Depends(require_roles(Role.CADRE, Role.TOWNSHIP, Role.ORG_ADMIN))
]
Reader = Annotated[
    Principal,
    Depends(require_roles(Role.CADRE, Role.TOWNSHIP, Role.ORG_ADMIN, Role.AUDITOR)),
]
CountyReader = Annotated[
    Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN, Role.AUDITOR))
]

#: A read that may answer a retryable 409 (the replica of dispatch does not know the cadre).
MAY_CONFLICT: dict[str, Any] = {CONFLICTS_FLAG: True}


#: The use cases' context, wired by the composition root (``app.py``).
Ctx = Annotated[Context, Depends(use_cases(Context))]


def _actor(principal: Principal) -> Actor:
    return Actor(principal, command_metadata(principal))


router = APIRouter(tags=["attendance"])


# --- bodies and answers ---------------------------------------------------------------------


class CheckInBody(Input):
    check_in_id: Id = Field(description="chosen by the app: a repeat is recognised")
    occurred_at: Timestamp = Field(
        description="when it happened, with its offset (the app may have been offline)"
    )
    location: Coordinates | None = Field(
        default=None, description="optional evidence: checked against the geofence, not kept"
    )

    def item(self) -> CheckInItem:
        return CheckInItem(self.check_in_id, self.occurred_at, self.location)


class CheckInBatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Validated one by one, so one bad item does not refuse the others.
    items: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="check-ins as `POST /cadres/{cadre_id}/check-ins` takes them, each"
        " validated and answered on its own",
    )


class ConfirmPresenceBody(Input):
    confirmation_id: Id
    days: ConfirmedDays = Field(description="distinct days, of any months, none after today")
    note: Note = ""


class SpotCheckBody(Input):
    spot_check_id: Id
    day: BusinessDate = Field(description="not after today")
    result: SpotCheckResult
    findings: Note = ""


class LeaveRequestBody(Input):
    leave_id: Id
    kind: LeaveKind
    first_day: BusinessDate = Field(description="may be to come")
    last_day: BusinessDate = Field(description="at most 366 days after the first, inclusive")
    purpose: Note = Field(default="", description="required for village business (公出)")


class RejectBody(Input):
    reason: Annotated[Note, Field(min_length=1)]


class CancelBody(Input):
    reason: Note = ""


class DiaryBody(Input):
    entry_id: Id
    day: BusinessDate = Field(description="not after today")
    text: DiaryText


class VisitBody(Input):
    visit_id: Id
    household_id: Id = Field(description="the village's own household number: no names")
    visited_on: BusinessDate = Field(description="not after today")
    note: Note = ""


class Answer(BaseModel):
    model_config = ConfigDict(frozen=True)


class ItemResult(Answer):
    """One item of a batch: ``recorded``, ``duplicate`` (stored before) or ``refused``."""

    index: int = Field(ge=0, lt=MAX_BATCH)
    #: The item's id, when it sent a valid one.
    check_in_id: str | None
    status: Literal["recorded", "duplicate", "refused"]
    #: Why it was refused: a problem details document (RFC 9457) with its ``code``.
    problem: dict[str, Any] | None = None


class BatchResult(Answer):
    recorded: int
    duplicates: int
    refused: int
    items: list[ItemResult]


class CloseOutcome(Answer):
    cadre_id: str
    status: Literal["closed", "already_closed", "refused"]
    #: Why it was refused: a problem details document (RFC 9457) with its ``code``.
    problem: dict[str, Any] | None = None


class CountyCloseResult(Answer):
    month: str
    closed: int
    already_closed: int
    refused: int
    cadres: list[CloseOutcome]


_ID: TypeAdapter[str] = TypeAdapter(Id)


def _valid_id(value: object) -> str | None:
    """``value`` if it is an id (echoed in the answer), else None: an invalid item's id may
    be anything, and is never sent back."""
    try:
        return _ID.validate_python(value)
    except ValidationError:
        return None


def _batch_item(raw: dict[str, Any]) -> CheckInItem | InvalidItem:
    try:
        return CheckInBody.model_validate(raw).item()
    except ValidationError as error:
        errors = [field.model_dump() for field in field_errors(error.errors())]
        return InvalidItem(_valid_id(raw.get("check_in_id")), errors)


class _Refusals:
    """The problems of the refused items of one answer, as the service answers a single
    refusal (``refusal_problem``: a replica gap is final once the replicas have caught up);
    the replicas' lag is asked once per answer, not once per item."""

    def __init__(self, request: Request, refusals: Sequence[RuleViolation | None]) -> None:
        self.runtime = service_runtime(request.app)
        self.asks = any(r is not None and r.retryable for r in refusals)
        self.behind: int | None = None

    async def __aenter__(self) -> _Refusals:
        if self.asks:
            self.behind = await replicas_behind(self.runtime)
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def document(self, refusal: RuleViolation) -> dict[str, Any]:
        problem = await refusal_problem(
            self.runtime, refusal, service=SERVICE, behind=self.behind if self.asks else None
        )
        return problem_document(problem)


async def _item_result(item: BatchItem, refusals: _Refusals) -> ItemResult:
    problem = None
    if item.invalid is not None:
        fields = [FieldError.model_validate(e) for e in item.invalid.errors]
        problem = problem_document(validation_problem(fields, title="Invalid item"))
    elif item.refusal is not None:
        problem = await refusals.document(item.refusal)
    return ItemResult(
        index=item.index, check_in_id=item.check_in_id, status=item.status, problem=problem
    )


async def _close_outcome(cadre: CadreClose, refusals: _Refusals) -> CloseOutcome:
    problem = None
    if cadre.refusal is not None:
        problem = await refusals.document(cadre.refusal)
    return CloseOutcome(cadre_id=cadre.cadre_id, status=cadre.status, problem=problem)


# --- presence evidence ----------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/check-ins",
    status_code=status.HTTP_201_CREATED,
    summary="Check in (the cadre, for themselves)",
    description=(
        "Records a check-in in the month of its day (Asia/Shanghai), with a location as"
        " optional evidence: compared with the village's geofence, then discarded (only"
        " inside/outside and the distance rounded to 10 m are kept). A repeated"
        " `check_in_id` stores nothing. Refused: a check-in stamped more than 5 minutes after"
        " it was received (`evidence_from_the_future`), one for a closed month"
        " (`month_already_closed`), a day the cadre is not on post (retryable"
        " `no_active_assignment` while the replica of dispatch may lag), a location for a"
        " village without a geofence (`no_geofence`)."
    ),
)
async def record_check_in(
    cadre_id: CadreId, body: CheckInBody, principal: Cadre, ctx: Ctx
) -> CheckInAccepted:
    return await application.record_check_in(ctx, _actor(principal), cadre_id, body.item())


@router.post(
    "/cadres/{cadre_id}/check-ins/batch",
    summary="Upload check-ins recorded offline (up to 500); answers per item",
    description=(
        "Records the queue of an app that was offline: up to 500 check-ins, each validated"
        " and decided on its own against its month as the earlier items left it, and answered"
        " `recorded`, `duplicate` (stored before, or earlier in the batch) or `refused` with"
        " its problem document (the refusals of a single check-in, or a 422 of the item's"
        " fields). One refused item never stops the others; the request itself is refused"
        " only when it is not a list of 1 to 500 objects."
    ),
)
async def record_check_in_batch(
    request: Request, cadre_id: CadreId, body: CheckInBatchBody, principal: Cadre, ctx: Ctx
) -> BatchResult:
    items = [_batch_item(raw) for raw in body.items]
    outcome = await application.record_check_in_batch(ctx, _actor(principal), cadre_id, items)
    async with _Refusals(request, [item.refusal for item in outcome.items]) as refusals:
        results = [await _item_result(item, refusals) for item in outcome.items]
    return BatchResult(
        recorded=outcome.count("recorded"),
        duplicates=outcome.count("duplicate"),
        refused=outcome.count("refused"),
        items=results,
    )


@router.post(
    "/cadres/{cadre_id}/presence-confirmations",
    status_code=status.HTTP_201_CREATED,
    summary="Confirm a cadre's presence on days (the township)",
    description=(
        "Records the township's confirmation that the cadre was in the village on the given"
        " days (of any months, one event per month): presence evidence equal to a check-in."
        " A repeat with the same id, days and note stores nothing. Refused: a day after today"
        " (`evidence_from_the_future`), a closed month (`month_already_closed`), a day off"
        " post, the same id with other content (`duplicate_id`)."
    ),
)
async def confirm_cadre_presence(
    cadre_id: CadreId, body: ConfirmPresenceBody, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.confirm_cadre_presence(
        ctx,
        _actor(principal),
        cadre_id,
        confirmation_id=body.confirmation_id,
        days=body.days,
        note=body.note,
    )


@router.post(
    "/cadres/{cadre_id}/spot-checks",
    status_code=status.HTTP_201_CREATED,
    summary="Record an unannounced spot check (四不两直)",
    description=(
        "Records a spot check finding the cadre present or absent on a day; an absence on a"
        " day of approved leave is recorded as excused by it. Refused: a day after today"
        " (`evidence_from_the_future`), a closed month (`month_already_closed`), a day off"
        " post, the same id with other content (`duplicate_id`)."
    ),
)
async def record_cadre_spot_check(
    cadre_id: CadreId, body: SpotCheckBody, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.record_cadre_spot_check(
        ctx,
        _actor(principal),
        cadre_id,
        spot_check_id=body.spot_check_id,
        day=body.day,
        result=body.result,
        findings=body.findings,
    )


# --- leave ----------------------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/leave",
    status_code=status.HTTP_201_CREATED,
    summary="Request leave (personal, sick, or village business 公出)",
    description=(
        "Records a leave request from its first to its last day inclusive (days to come, as"
        " a rule), and who must approve it by its length under the pack in force. A repeat"
        " stores nothing. Refused: dates out of order (`dates_out_of_order`), more than 366"
        " days (`leave_too_long`), village business without a purpose (`purpose_required`),"
        " days off post, an overlap with pending or approved leave (`leave_overlaps`), a"
        " closed month (`month_already_closed`)."
    ),
)
async def request_cadre_leave(
    cadre_id: CadreId, body: LeaveRequestBody, principal: Cadre, ctx: Ctx
) -> CommandAccepted:
    return await application.request_cadre_leave(
        ctx,
        _actor(principal),
        cadre_id,
        leave_id=body.leave_id,
        kind=body.kind,
        first_day=body.first_day,
        last_day=body.last_day,
        purpose=body.purpose,
    )


@router.post(
    "/cadres/{cadre_id}/leave/{leave_id}/approve",
    summary="Approve a leave request",
    description=(
        "Approves pending leave at the caller's level: the township up to the pack's limit"
        " of days, the county any. Approving it again stores nothing. Refused: unknown leave"
        " (404 `unknown_leave`), leave that is not pending (`leave_not_pending`), leave only"
        " the county may decide (403 `approval_beyond_level`), a closed month it touches"
        " (`month_already_closed`)."
    ),
)
async def approve_cadre_leave(
    cadre_id: CadreId, leave_id: LeaveId, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.approve_cadre_leave(ctx, _actor(principal), cadre_id, leave_id)


@router.post(
    "/cadres/{cadre_id}/leave/{leave_id}/reject",
    summary="Reject a leave request",
    description=(
        "Rejects pending leave, for a reason, at the caller's level (as an approval)."
        " Rejecting it again stores nothing. Refused: unknown leave (404 `unknown_leave`),"
        " leave that is not pending (`leave_not_pending`), leave only the county may decide"
        " (403 `approval_beyond_level`)."
    ),
)
async def reject_cadre_leave(
    cadre_id: CadreId, leave_id: LeaveId, body: RejectBody, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.reject_cadre_leave(
        ctx, _actor(principal), cadre_id, leave_id, reason=body.reason
    )


@router.post(
    "/cadres/{cadre_id}/leave/{leave_id}/cancel",
    summary="Cancel a leave",
    description=(
        "Withdraws pending or approved leave (the cadre's own, or by an approver); its days"
        " no longer count. Cancelling it again stores nothing. Refused: unknown leave (404"
        " `unknown_leave`), rejected leave (`leave_not_pending`), approved leave touching a"
        " closed month (`month_already_closed`)."
    ),
)
async def cancel_cadre_leave(
    cadre_id: CadreId,
    leave_id: LeaveId,
    body: CancelBody,
    principal: CadreOrSupervisor,
    ctx: Ctx,
) -> CommandAccepted:
    return await application.cancel_cadre_leave(
        ctx, _actor(principal), cadre_id, leave_id, reason=body.reason
    )


# --- work record ----------------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/diary",
    status_code=status.HTTP_201_CREATED,
    summary="Write a work diary entry (驻村日记)",
    description=(
        "Records a diary entry for a day on post: a record of work, not presence evidence,"
        " so a closed month does not stop it. A repeat stores nothing. Refused: a day after"
        " today (`evidence_from_the_future`), a day off post, the same id with other text"
        " (`duplicate_id`)."
    ),
)
async def write_cadre_diary_entry(
    cadre_id: CadreId, body: DiaryBody, principal: Cadre, ctx: Ctx
) -> CommandAccepted:
    return await application.write_cadre_diary_entry(
        ctx, _actor(principal), cadre_id, entry_id=body.entry_id, day=body.day, text=body.text
    )


@router.post(
    "/cadres/{cadre_id}/visits",
    status_code=status.HTTP_201_CREATED,
    summary="Record a household visit (入户走访)",
    description=(
        "Records a visit to a household of the village (by its number, never a name) on a"
        " day on post; it counts toward the coverage of the current assignment. A repeat"
        " stores nothing. Refused: a day after today (`evidence_from_the_future`), a day off"
        " post, the same id with other content (`duplicate_id`)."
    ),
)
async def record_cadre_visit(
    cadre_id: CadreId, body: VisitBody, principal: Cadre, ctx: Ctx
) -> CommandAccepted:
    return await application.record_cadre_visit(
        ctx,
        _actor(principal),
        cadre_id,
        visit_id=body.visit_id,
        household_id=body.household_id,
        visited_on=body.visited_on,
        note=body.note,
    )


# --- month close ----------------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/months/{month}/close",
    status_code=status.HTTP_201_CREATED,
    summary="Close a cadre's month: days in the village, leave, required days, shortfall",
    description=(
        "Records `MonthClosed` with the month's figures under the pack in force on its last"
        " day; no evidence for the month is accepted after it. Refused: a month not over yet"
        " (`month_not_over`), one closed before (`month_already_closed`), a post of the month"
        " outside the caller's jurisdiction, no post in the month (retryable"
        " `no_active_assignment`)."
    ),
)
async def close_cadre_month(
    cadre_id: CadreId, month: Month, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.close_cadre_month(ctx, _actor(principal), cadre_id, month)


@router.post(
    "/counties/{county}/months/{month}/close",
    summary="Close a month for every cadre on post in the county (or the caller's township)",
    description=(
        "Closes the month for each cadre on post in it in the county (a township: its own"
        " cadres), each its own decision, answered cadre by cadre: `closed`, `already_closed`"
        " or `refused` with its problem document; one refusal never stops the others."
        " Refused as a whole: a month not over yet (`month_not_over`), a county outside the"
        " caller's jurisdiction."
    ),
)
async def close_county_month(
    request: Request, county: CountyCode, month: Month, principal: CountyAdmin, ctx: Ctx
) -> CountyCloseResult:
    outcome = await application.close_county_month(ctx, _actor(principal), county, month)
    async with _Refusals(request, [cadre.refusal for cadre in outcome.cadres]) as refusals:
        cadres = [await _close_outcome(cadre, refusals) for cadre in outcome.cadres]
    return CountyCloseResult(
        month=outcome.month,
        closed=outcome.count("closed"),
        already_closed=outcome.count("already_closed"),
        refused=outcome.count("refused"),
        cadres=cadres,
    )


# --- reads ----------------------------------------------------------------------------------


@router.get(
    "/cadres/{cadre_id}/months/{month}",
    summary="A cadre's month: closed, or so far",
    description=(
        "The figures of a closed month as decided at its close, or of an open month as the"
        " streams stand now (with the days behind them), under the pack in force on its last"
        " day. Refused: a cadre outside the caller's jurisdiction, a cadre the replica of"
        " dispatch knows no post of (retryable `no_active_assignment`)."
    ),
    openapi_extra=MAY_CONFLICT,
)
async def read_cadre_month(
    cadre_id: CadreId, month: Month, principal: Reader, ctx: Ctx
) -> MonthView:
    return await application.read_cadre_month(ctx, principal, cadre_id, month)


@router.get(
    "/cadres/{cadre_id}/leave",
    summary="A cadre's leave requests and their status",
    description=(
        "Every leave request of the cadre, in the order requested, with its status and who"
        " decides it. Refused: a cadre outside the caller's jurisdiction, a cadre the replica"
        " of dispatch knows no post of (retryable `no_active_assignment`)."
    ),
    openapi_extra=MAY_CONFLICT,
)
async def read_cadre_leave(cadre_id: CadreId, principal: Reader, ctx: Ctx) -> list[LeaveView]:
    return await application.read_cadre_leave(ctx, principal, cadre_id)


@router.get(
    "/cadres/{cadre_id}/leave/{leave_id}",
    summary="One leave request of a cadre",
    description=(
        "The leave request, its status and who decides it. Refused: unknown leave (404"
        " `unknown_leave`), a cadre outside the caller's jurisdiction, a cadre the replica of"
        " dispatch knows no post of (retryable `no_active_assignment`)."
    ),
    openapi_extra=MAY_CONFLICT,
)
async def read_cadre_leave_request(
    cadre_id: CadreId, leave_id: LeaveId, principal: Reader, ctx: Ctx
) -> LeaveView:
    return await application.read_cadre_leave_request(ctx, principal, cadre_id, leave_id)


@router.get(
    "/counties/{county}/leave",
    summary="A county's leave requests by status (pending: waiting for approval)",
    description=(
        "The leave requests of the posts in the county (a township: in its township), of the"
        " status asked for (pending by default) and, if given, of one approval level, the"
        " soonest first, a page at a time (`next`: pass it as `after`). A list of requests,"
        " never of people by their presence. Refused: a county outside the caller's"
        " jurisdiction."
    ),
)
async def list_county_leave(
    county: CountyCode,
    principal: CountyReader,
    ctx: Ctx,
    leave_status: Annotated[
        LeaveStatus, Query(alias="status", description="the requests' status")
    ] = LeaveStatus.PENDING,
    approval_level: Annotated[
        ApprovalLevel | None, Query(description="only the requests decided at this level")
    ] = None,
    limit: Limit = DEFAULT_PAGE_SIZE,
    after: After = None,
) -> Page[CountyLeaveView]:
    return await application.list_county_leave(
        ctx,
        principal,
        county,
        status=leave_status,
        approval_level=approval_level,
        after=after,
        limit=limit,
    )


@router.get(
    "/cadres/{cadre_id}/visits/coverage",
    summary="Household visit coverage of the cadre's current village",
    description=(
        "How far the cadre has come visiting every household of the village in the current"
        " assignment: households, distinct households visited, the share, the deadline, and"
        " once all are visited the day and whether it was within the deadline. Refused: a"
        " cadre outside the caller's jurisdiction, a cadre the replica of dispatch knows no"
        " post of (retryable `no_active_assignment`)."
    ),
    openapi_extra=MAY_CONFLICT,
)
async def read_visit_coverage(cadre_id: CadreId, principal: Reader, ctx: Ctx) -> VisitCoverageView:
    return await application.read_visit_coverage(ctx, principal, cadre_id)
