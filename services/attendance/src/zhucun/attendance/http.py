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

Refusals are problem details with a stable ``type`` per rule (``attendance/<code>``): the
service maps every ``RuleViolation`` a use case raises (422 invalid input, 404 an unknown
leave, 403 a role, a jurisdiction or an approval level, 409 a broken rule, a *retryable* 409
with ``Retry-After`` when the replica of dispatch does not know the cadre's post yet). The
items of a batch and the cadres of a county-wide close are answered one by one, each with
its own problem. No route ranks or lists people by check-ins or time online (the law forbids
it).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from zhucun.attendance import application
from zhucun.attendance.application import (
    MAX_BATCH,
    Actor,
    BatchItem,
    CadreClose,
    CheckInAccepted,
    CheckInItem,
    Context,
    InvalidItem,
    LeaveView,
    MonthView,
    VisitCoverageView,
)
from zhucun.attendance.domain import Coordinates
from zhucun.contracts.attendance.events import LeaveKind, SpotCheckResult
from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.http import CadreId, CountyCode, command_metadata, use_cases
from zhucun.shared.inputs import Input
from zhucun.shared.problems import (
    FieldError,
    field_errors,
    problem_document,
    rule_problem,
    validation_problem,
)

#: The prefix of the service's problem types (``https://zhucun.dev/problems/attendance/...``).
SERVICE = "attendance"

Month = Annotated[str, Path(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]

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


#: The use cases' context, wired by the composition root (``app.py``).
Ctx = Annotated[Context, Depends(use_cases(Context))]


def _actor(principal: Principal) -> Actor:
    return Actor(principal, command_metadata(principal))


router = APIRouter(tags=["attendance"])


# --- bodies and answers ---------------------------------------------------------------------


class CheckInBody(Input):
    check_in_id: str = Field(min_length=1, max_length=100, description="chosen by the app")
    occurred_at: AwareDatetime = Field(description="when it happened (the app may be offline)")
    location: Coordinates | None = Field(
        default=None, description="optional evidence: checked against the geofence, not kept"
    )

    def item(self) -> CheckInItem:
        return CheckInItem(self.check_in_id, self.occurred_at, self.location)


class CheckInBatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Validated one by one, so one bad item does not refuse the others.
    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class ConfirmPresenceBody(Input):
    confirmation_id: str = Field(min_length=1, max_length=100)
    days: list[date] = Field(min_length=1, max_length=366)
    note: str = Field(default="", max_length=2_000)


class SpotCheckBody(Input):
    spot_check_id: str = Field(min_length=1, max_length=100)
    day: date
    result: SpotCheckResult
    findings: str = Field(default="", max_length=5_000)


class LeaveRequestBody(Input):
    leave_id: str = Field(min_length=1, max_length=100)
    kind: LeaveKind
    first_day: date
    last_day: date
    purpose: str = Field(default="", max_length=2_000)


class RejectBody(Input):
    reason: str = Field(min_length=1, max_length=2_000)


class CancelBody(Input):
    reason: str = Field(default="", max_length=2_000)


class DiaryBody(Input):
    entry_id: str = Field(min_length=1, max_length=100)
    day: date
    text: str = Field(min_length=1, max_length=10_000)


class VisitBody(Input):
    visit_id: str = Field(min_length=1, max_length=100)
    household_id: str = Field(min_length=1, max_length=100)
    visited_on: date
    note: str = Field(default="", max_length=2_000)


class ItemResult(BaseModel):
    """One item of a batch: ``recorded``, ``duplicate`` (stored before) or ``refused``."""

    index: int
    check_in_id: str | None
    status: str
    problem: dict[str, Any] | None = None


class BatchResult(BaseModel):
    recorded: int
    duplicates: int
    refused: int
    items: list[ItemResult]


class CloseOutcome(BaseModel):
    cadre_id: str
    status: str
    problem: dict[str, Any] | None = None


class CountyCloseResult(BaseModel):
    month: str
    closed: int
    already_closed: int
    refused: int
    cadres: list[CloseOutcome]


def _batch_item(raw: dict[str, Any]) -> CheckInItem | InvalidItem:
    try:
        return CheckInBody.model_validate(raw).item()
    except ValidationError as error:
        check_in_id = raw.get("check_in_id")
        errors = [field.model_dump() for field in field_errors(error.errors())]
        return InvalidItem(check_in_id if isinstance(check_in_id, str) else None, errors)


def _item_result(item: BatchItem) -> ItemResult:
    problem = None
    if item.invalid is not None:
        fields = [FieldError.model_validate(e) for e in item.invalid.errors]
        problem = problem_document(validation_problem(fields, title="Invalid item"))
    elif item.refusal is not None:
        problem = problem_document(rule_problem(item.refusal, service=SERVICE))
    return ItemResult(
        index=item.index, check_in_id=item.check_in_id, status=item.status, problem=problem
    )


def _close_outcome(cadre: CadreClose) -> CloseOutcome:
    problem = None
    if cadre.refusal is not None:
        problem = problem_document(rule_problem(cadre.refusal, service=SERVICE))
    return CloseOutcome(cadre_id=cadre.cadre_id, status=cadre.status, problem=problem)


# --- presence evidence ----------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/check-ins",
    status_code=status.HTTP_201_CREATED,
    summary="Check in (the cadre, for themselves)",
)
async def record_check_in(
    cadre_id: CadreId, body: CheckInBody, principal: Cadre, ctx: Ctx
) -> CheckInAccepted:
    return await application.record_check_in(ctx, _actor(principal), cadre_id, body.item())


@router.post(
    "/cadres/{cadre_id}/check-ins/batch",
    summary="Upload check-ins recorded offline (up to 500); answers per item",
)
async def record_check_in_batch(
    cadre_id: CadreId, body: CheckInBatchBody, principal: Cadre, ctx: Ctx
) -> BatchResult:
    items = [_batch_item(raw) for raw in body.items]
    outcome = await application.record_check_in_batch(ctx, _actor(principal), cadre_id, items)
    return BatchResult(
        recorded=outcome.count("recorded"),
        duplicates=outcome.count("duplicate"),
        refused=outcome.count("refused"),
        items=[_item_result(item) for item in outcome.items],
    )


@router.post(
    "/cadres/{cadre_id}/presence-confirmations",
    status_code=status.HTTP_201_CREATED,
    summary="Confirm a cadre's presence on days (the township)",
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


@router.post("/cadres/{cadre_id}/leave/{leave_id}/approve", summary="Approve a leave request")
async def approve_cadre_leave(
    cadre_id: CadreId, leave_id: str, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.approve_cadre_leave(ctx, _actor(principal), cadre_id, leave_id)


@router.post("/cadres/{cadre_id}/leave/{leave_id}/reject", summary="Reject a leave request")
async def reject_cadre_leave(
    cadre_id: CadreId, leave_id: str, body: RejectBody, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.reject_cadre_leave(
        ctx, _actor(principal), cadre_id, leave_id, reason=body.reason
    )


@router.post("/cadres/{cadre_id}/leave/{leave_id}/cancel", summary="Cancel a leave")
async def cancel_cadre_leave(
    cadre_id: CadreId, leave_id: str, body: CancelBody, principal: CadreOrSupervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.cancel_cadre_leave(
        ctx, _actor(principal), cadre_id, leave_id, reason=body.reason
    )


# --- work record ----------------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/diary",
    status_code=status.HTTP_201_CREATED,
    summary="Write a work diary entry (驻村日记)",
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
)
async def close_cadre_month(
    cadre_id: CadreId, month: Month, principal: Supervisor, ctx: Ctx
) -> CommandAccepted:
    return await application.close_cadre_month(ctx, _actor(principal), cadre_id, month)


@router.post(
    "/counties/{county}/months/{month}/close",
    summary="Close a month for every cadre on post in the county (or the caller's township)",
)
async def close_county_month(
    county: CountyCode, month: Month, principal: CountyAdmin, ctx: Ctx
) -> CountyCloseResult:
    outcome = await application.close_county_month(ctx, _actor(principal), county, month)
    return CountyCloseResult(
        month=outcome.month,
        closed=outcome.count("closed"),
        already_closed=outcome.count("already_closed"),
        refused=outcome.count("refused"),
        cadres=[_close_outcome(cadre) for cadre in outcome.cadres],
    )


# --- reads ----------------------------------------------------------------------------------


@router.get("/cadres/{cadre_id}/months/{month}", summary="A cadre's month: closed, or so far")
async def read_cadre_month(
    cadre_id: CadreId, month: Month, principal: Reader, ctx: Ctx
) -> MonthView:
    return await application.read_cadre_month(ctx, principal, cadre_id, month)


@router.get("/cadres/{cadre_id}/leave", summary="A cadre's leave requests and their status")
async def read_cadre_leave(cadre_id: CadreId, principal: Reader, ctx: Ctx) -> list[LeaveView]:
    return await application.read_cadre_leave(ctx, principal, cadre_id)


@router.get(
    "/cadres/{cadre_id}/visits/coverage",
    summary="Household visit coverage of the cadre's current village",
)
async def read_visit_coverage(cadre_id: CadreId, principal: Reader, ctx: Ctx) -> VisitCoverageView:
    return await application.read_visit_coverage(ctx, principal, cadre_id)
