"""The attendance HTTP edge: evidence, leave, spot checks, diaries, visits and month closes.

Every route is about one cadre (``/cadres/{cadre_id}/...``) except the county-wide month
close. The edge looks up the cadre's posts in the replica of dispatch (``replica.py``), checks
the caller's role and jurisdiction against the post's county and township, builds a command
and runs the pure decider through ``execute``: the streams a decision reads are the
streams its append is guarded by, so a concurrent change re-runs the decision.

Who may do what:

* ``cadre`` — for themselves only: check-ins (one, or an offline batch of up to 500), leave
  requests and cancellations, diary entries, household visits.
* ``township`` — in its township: presence confirmations, leave approvals up to the pack's
  limit, spot checks, month closes.
* ``org_admin`` — in its county: all of the township's, any leave, county-wide month closes.
* ``auditor`` — reads.

Refusals are problem details with a stable ``type`` per rule: 422 for invalid input, 404 for
an unknown leave, 403 for a role, a jurisdiction or an approval level, 409 for a broken rule
and a *retryable* 409 (``Retry-After``) when the cadre has no assignment in the replica yet.
No route ranks or lists people by check-ins or time online (the law forbids it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from zhucun.attendance.domain import (
    SHANGHAI,
    AttendanceRuleViolation,
    ItemOutcome,
    LeaveState,
    MonthState,
    WorkState,
    approve_leave,
    cancel_leave,
    check_in,
    check_in_batch,
    close_month,
    confirm_presence,
    evolve_leave,
    evolve_month,
    evolve_work,
    leave_stream,
    local_day,
    month_bounds,
    month_key,
    month_stream,
    month_tally,
    months_touched,
    record_household_visit,
    record_spot_check,
    reject_leave,
    request_leave,
    visit_coverage,
    work_stream,
    write_diary_entry,
)
from zhucun.attendance.domain.commands import (
    ApproveLeave,
    CancelLeave,
    CheckIn,
    CloseMonth,
    ConfirmPresence,
    Coordinates,
    Post,
    RecordHouseholdVisit,
    RecordSpotCheck,
    RejectLeave,
    RequestLeave,
    WriteDiaryEntry,
)
from zhucun.attendance.replicas.posts import PostDirectory
from zhucun.contracts.attendance.events import (
    ApprovalLevel,
    LeaveKind,
    LocationEvidence,
    SpotCheckResult,
    TravelFlag,
    registry,
)
from zhucun.shared.auth import Principal, Role, Scope, require_roles
from zhucun.shared.commands import StreamModel, execute, load
from zhucun.shared.events import DomainEvent
from zhucun.shared.http import command_metadata
from zhucun.shared.policy import NoPolicyInForce, PolicyBook, PolicyPack, PolicySectionMissing
from zhucun.shared.problems import ProblemError
from zhucun.shared.service import ServiceRuntime
from zhucun.shared.store import AppendResult

#: The most check-ins one offline upload may carry.
MAX_BATCH = 500
#: What a client waits before retrying when the replica of dispatch has not caught up.
RETRY_AFTER_SECONDS = 5

CadreId = Annotated[str, Path(min_length=1, max_length=100)]
Month = Annotated[str, Path(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM")]
CountyCode = Annotated[str, Path(pattern=r"^\d{2}(\d{2}){0,2}$", description="e.g. 530102")]

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

router = APIRouter(tags=["attendance"])


# --- bodies and answers ---------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class CheckInBody(Body):
    check_in_id: str = Field(min_length=1, max_length=100, description="chosen by the app")
    occurred_at: AwareDatetime = Field(description="when it happened (the app may be offline)")
    location: Coordinates | None = Field(
        default=None, description="optional evidence: checked against the geofence, not kept"
    )


class CheckInBatchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: Validated one by one, so one bad item does not refuse the others.
    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class ConfirmPresenceBody(Body):
    confirmation_id: str = Field(min_length=1, max_length=100)
    days: list[date] = Field(min_length=1, max_length=366)
    note: str = Field(default="", max_length=2_000)


class SpotCheckBody(Body):
    spot_check_id: str = Field(min_length=1, max_length=100)
    day: date
    result: SpotCheckResult
    findings: str = Field(default="", max_length=5_000)


class LeaveRequestBody(Body):
    leave_id: str = Field(min_length=1, max_length=100)
    kind: LeaveKind
    first_day: date
    last_day: date
    purpose: str = Field(default="", max_length=2_000)


class RejectBody(Body):
    reason: str = Field(min_length=1, max_length=2_000)


class CancelBody(Body):
    reason: str = Field(default="", max_length=2_000)


class DiaryBody(Body):
    entry_id: str = Field(min_length=1, max_length=100)
    day: date
    text: str = Field(min_length=1, max_length=10_000)


class VisitBody(Body):
    visit_id: str = Field(min_length=1, max_length=100)
    household_id: str = Field(min_length=1, max_length=100)
    visited_on: date
    note: str = Field(default="", max_length=2_000)


class CommandAccepted(BaseModel):
    """What a command stored: nothing when it repeated one already stored (``duplicate``)."""

    duplicate: bool
    event_ids: list[UUID]
    event_types: list[str]


class CheckInAccepted(CommandAccepted):
    check_in_id: str
    day: date
    location: LocationEvidence | None = None
    travel_flag: TravelFlag | None = None


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


# --- plumbing -------------------------------------------------------------------------------


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _posts(request: Request) -> PostDirectory:
    runtime = _runtime(request)
    if runtime.pool is None:
        raise RuntimeError("the service is not started")
    return PostDirectory(runtime.pool, runtime.settings.postgres.schema_name)


def _now() -> datetime:
    return datetime.now(UTC)


def _today() -> date:
    return _now().astimezone(SHANGHAI).date()


_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403, "retryable": 409}
_TITLES = {
    "invalid": "Invalid attendance input",
    "not_found": "Not found",
    "conflict": "Attendance rule violated",
    "forbidden": "Not allowed",
    "retryable": "Not yet known; retry",
}


def rule_problem(error: AttendanceRuleViolation) -> ProblemError:
    """The problem document of a refused command."""
    kind = error.kind
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if kind == "retryable" else None
    return ProblemError(
        _STATUS.get(kind, 409),
        "attendance/" + error.code.replace("_", "-"),
        _TITLES.get(kind, "Attendance rule violated"),
        error.message,
        headers=headers,
        code=error.code,
        retryable=kind == "retryable",
    )


def _not_on_post(cadre_id: str, when: str) -> ProblemError:
    return ProblemError(
        409,
        "attendance/no-active-assignment",
        "No active assignment",
        f"cadre {cadre_id!r} has no assignment covering {when} in this service's replica of "
        "dispatch; if the cadre was assigned just now, retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        code="no_active_assignment",
        retryable=True,
    )


def _known_village(post: Post) -> Post:
    if not post.township:
        raise ProblemError(
            409,
            "attendance/village-not-replicated",
            "Village not yet known",
            f"village {post.village_id!r} of the assignment is not in the replica yet; retry",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            code="village_not_replicated",
            retryable=True,
        )
    return post


def _policy(request: Request, county: str, on: date) -> PolicyPack:
    book: PolicyBook = request.app.state.policies
    try:
        pack = book.in_force(county, on)
        pack.attendance_rules()
    except (NoPolicyInForce, PolicySectionMissing) as error:
        raise ProblemError(
            422, "attendance/no-policy-in-force", "No policy in force", str(error)
        ) from error
    return pack


def _scope(post: Post) -> Scope:
    return Scope(county=post.county, township=post.township, cadre=post.cadre_id)


def _ensure_self(principal: Principal, cadre_id: str) -> None:
    """A cadre acts for themselves only (their token's ``cadre`` claim)."""
    if principal.role is Role.CADRE and principal.jurisdiction.cadre != cadre_id:
        raise ProblemError(
            403,
            "attendance/not-yourself",
            "Cadres act for themselves",
            "a cadre may record evidence, leave, diaries and visits only for themselves",
        )


async def _post_on(request: Request, principal: Principal, cadre_id: str, day: date) -> Post:
    _ensure_self(principal, cadre_id)
    post = await _posts(request).post_on(cadre_id, day)
    if post is None:
        raise _not_on_post(cadre_id, str(day))
    post = _known_village(post)
    principal.ensure_covers(_scope(post))
    return post


async def _latest_post(request: Request, principal: Principal, cadre_id: str) -> Post:
    """The cadre's most recent post: the scope of a cadre-wide resource (leave, a file)."""
    _ensure_self(principal, cadre_id)
    posts = await _posts(request).posts_of(cadre_id)
    if not posts:
        raise _not_on_post(cadre_id, "any day")
    post = _known_village(posts[-1])
    principal.ensure_covers(_scope(post))
    return post


def _month_model(cadre_id: str, month: str) -> StreamModel[MonthState]:
    return StreamModel(
        month_stream(cadre_id, month), MonthState.empty(cadre_id, month), evolve_month
    )


def _leave_model(cadre_id: str) -> StreamModel[LeaveState]:
    return StreamModel(leave_stream(cadre_id), LeaveState.empty(cadre_id), evolve_leave)


def _work_model(cadre_id: str) -> StreamModel[WorkState]:
    return StreamModel(work_stream(cadre_id), WorkState.empty(cadre_id), evolve_work)


async def _execute(
    request: Request,
    principal: Principal,
    streams: Sequence[StreamModel[Any]],
    decide: Callable[[list[Any]], Mapping[str, Sequence[DomainEvent]]],
) -> AppendResult | None:
    try:
        return await execute(
            _runtime(request).event_store(),
            streams=streams,
            registry=registry,
            decide=decide,
            metadata=command_metadata(principal),
            cache=_runtime(request).states,
        )
    except AttendanceRuleViolation as error:
        raise rule_problem(error) from error


def _accepted(result: AppendResult | None) -> CommandAccepted:
    if result is None or result.duplicate:
        return CommandAccepted(
            duplicate=True,
            event_ids=[e.event_id for e in result.events] if result else [],
            event_types=[e.event_type for e in result.events] if result else [],
        )
    return CommandAccepted(
        duplicate=False,
        event_ids=[e.event_id for e in result.events],
        event_types=[e.event_type for e in result.events],
    )


def _approver_level(principal: Principal) -> ApprovalLevel:
    return ApprovalLevel.COUNTY if principal.role is Role.ORG_ADMIN else ApprovalLevel.TOWNSHIP


# --- presence evidence ----------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/check-ins",
    status_code=status.HTTP_201_CREATED,
    summary="Check in (the cadre, for themselves)",
)
async def record_check_in(
    request: Request, cadre_id: CadreId, body: CheckInBody, principal: Cadre
) -> CheckInAccepted:
    day = local_day(body.occurred_at)
    post = await _post_on(request, principal, cadre_id, day)
    pack = _policy(request, post.county, day)
    command = CheckIn(
        check_in_id=body.check_in_id,
        cadre_id=cadre_id,
        occurred_at=body.occurred_at,
        location=body.location,
        post=post,
        received_at=_now(),
    )
    month = month_key(day)
    model = _month_model(cadre_id, month)
    result = await _execute(
        request,
        principal,
        [model],
        lambda states: {model.stream_id: check_in(command, states[0], pack)},
    )
    accepted = _accepted(result)
    recorded = next(
        (
            event
            for event in (r.decode(registry) for r in (result.events if result else ()))
            if getattr(event, "check_in_id", None) == body.check_in_id
        ),
        None,
    )
    return CheckInAccepted(
        **accepted.model_dump(),
        check_in_id=body.check_in_id,
        day=day,
        location=getattr(recorded, "location", None),
        travel_flag=getattr(recorded, "travel_flag", None),
    )


@router.post(
    "/cadres/{cadre_id}/check-ins/batch",
    summary="Upload check-ins recorded offline (up to 500); answers per item",
)
async def record_check_in_batch(
    request: Request, cadre_id: CadreId, body: CheckInBatchBody, principal: Cadre
) -> BatchResult:
    _ensure_self(principal, cadre_id)
    results: dict[int, ItemResult] = {}
    valid: list[tuple[int, CheckInBody]] = []
    for index, raw in enumerate(body.items):
        try:
            valid.append((index, CheckInBody.model_validate(raw)))
        except ValidationError as error:
            results[index] = ItemResult(
                index=index,
                check_in_id=raw.get("check_in_id") if isinstance(raw, dict) else None,
                status="refused",
                problem=_item_validation_problem(error),
            )
    posts = await _posts(request).posts_of(cadre_id)
    received_at = _now()
    by_month: dict[str, list[tuple[int, CheckIn]]] = defaultdict(list)
    for index, item in valid:
        day = local_day(item.occurred_at)
        post = next((p for p in reversed(posts) if p.covers(day)), None)
        if post is None or not post.township:
            results[index] = ItemResult(
                index=index,
                check_in_id=item.check_in_id,
                status="refused",
                problem=_not_on_post(cadre_id, str(day))
                .to_problem()
                .model_dump(mode="json", exclude_none=True),
            )
            continue
        principal.ensure_covers(_scope(post))
        command = CheckIn(
            check_in_id=item.check_in_id,
            cadre_id=cadre_id,
            occurred_at=item.occurred_at,
            location=item.location,
            post=post,
            received_at=received_at,
        )
        by_month[month_key(day)].append((index, command))
    for month, entries in sorted(by_month.items()):
        commands = [command for _, command in entries]
        pack = _policy(request, commands[0].post.county, month_bounds(month)[0])
        model = _month_model(cadre_id, month)
        outcomes: list[ItemOutcome] = []

        def decide(
            states: list[Any],
            commands: list[CheckIn] = commands,
            pack: PolicyPack = pack,
            model: StreamModel[MonthState] = model,
            outcomes: list[ItemOutcome] = outcomes,
        ) -> dict[str, list[DomainEvent]]:
            events, decided = check_in_batch(commands, states[0], pack)
            outcomes[:] = decided  # the last run's outcomes (decide re-runs after a conflict)
            return {model.stream_id: events}

        await _execute(request, principal, [model], decide)
        for (index, _), outcome in zip(entries, outcomes, strict=True):
            problem = None
            if outcome.error is not None:
                problem = (
                    rule_problem(outcome.error)
                    .to_problem()
                    .model_dump(mode="json", exclude_none=True)
                )
            results[index] = ItemResult(
                index=index, check_in_id=outcome.check_in_id, status=outcome.status, problem=problem
            )
    items = [results[i] for i in range(len(body.items))]
    return BatchResult(
        recorded=sum(1 for i in items if i.status == "recorded"),
        duplicates=sum(1 for i in items if i.status == "duplicate"),
        refused=sum(1 for i in items if i.status == "refused"),
        items=items,
    )


def _item_validation_problem(error: ValidationError) -> dict[str, Any]:
    # Location and message only: pydantic's ``input`` would echo coordinates.
    errors = [
        {"location": list(e["loc"]), "message": e["msg"], "type": e["type"]} for e in error.errors()
    ]
    return (
        ProblemError(
            422, "validation-error", "Invalid item", f"{len(errors)} input error(s)", errors=errors
        )
        .to_problem()
        .model_dump(mode="json", exclude_none=True)
    )


@router.post(
    "/cadres/{cadre_id}/presence-confirmations",
    status_code=status.HTTP_201_CREATED,
    summary="Confirm a cadre's presence on days (the township)",
)
async def confirm_cadre_presence(
    request: Request, cadre_id: CadreId, body: ConfirmPresenceBody, principal: Supervisor
) -> CommandAccepted:
    days = sorted(set(body.days))
    post = await _post_on(request, principal, cadre_id, days[0])
    command = ConfirmPresence(
        confirmation_id=body.confirmation_id,
        cadre_id=cadre_id,
        days=tuple(days),
        note=body.note,
        post=post,
        today=_today(),
    )
    months = sorted({month_key(day) for day in days})
    models = [_month_model(cadre_id, month) for month in months]

    def decide(states: list[Any]) -> dict[str, list[DomainEvent]]:
        decided = confirm_presence(command, dict(zip(months, states, strict=True)))
        return {month_stream(cadre_id, month): events for month, events in decided.items()}

    return _accepted(await _execute(request, principal, models, decide))


@router.post(
    "/cadres/{cadre_id}/spot-checks",
    status_code=status.HTTP_201_CREATED,
    summary="Record an unannounced spot check (四不两直)",
)
async def record_cadre_spot_check(
    request: Request, cadre_id: CadreId, body: SpotCheckBody, principal: Supervisor
) -> CommandAccepted:
    post = await _post_on(request, principal, cadre_id, body.day)
    command = RecordSpotCheck(
        spot_check_id=body.spot_check_id,
        cadre_id=cadre_id,
        day=body.day,
        result=body.result,
        findings=body.findings,
        post=post,
        today=_today(),
    )
    month = _month_model(cadre_id, month_key(body.day))
    leave = _leave_model(cadre_id)
    return _accepted(
        await _execute(
            request,
            principal,
            [month, leave],
            lambda states: {month.stream_id: record_spot_check(command, states[0], states[1])},
        )
    )


# --- leave ----------------------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/leave",
    status_code=status.HTTP_201_CREATED,
    summary="Request leave (personal, sick, or village business 公出)",
)
async def request_cadre_leave(
    request: Request, cadre_id: CadreId, body: LeaveRequestBody, principal: Cadre
) -> CommandAccepted:
    post = await _post_on(request, principal, cadre_id, body.first_day)
    pack = _policy(request, post.county, body.first_day)
    command = RequestLeave(
        leave_id=body.leave_id,
        cadre_id=cadre_id,
        kind=body.kind,
        first_day=body.first_day,
        last_day=body.last_day,
        purpose=body.purpose,
        post=post,
    )
    if body.last_day < body.first_day:
        months: list[str] = []  # the decider refuses it with a clear error
    else:
        months = months_touched(body.first_day, body.last_day)
    leave = _leave_model(cadre_id)
    models: list[StreamModel[Any]] = [leave, *(_month_model(cadre_id, m) for m in months)]
    return _accepted(
        await _execute(
            request,
            principal,
            models,
            lambda states: {
                leave.stream_id: request_leave(
                    command, states[0], dict(zip(months, states[1:], strict=True)), pack
                )
            },
        )
    )


async def _leave_decision(
    request: Request,
    principal: Principal,
    cadre_id: str,
    leave_id: str,
    decide: Callable[[LeaveState, dict[str, MonthState], PolicyPack], list[DomainEvent]],
) -> CommandAccepted:
    """Run a decision on one leave: read it to learn the months it touches, then decide on
    the leave and those months together."""
    post = await _latest_post(request, principal, cadre_id)
    leave = _leave_model(cadre_id)
    state, _ = await load(
        _runtime(request).event_store(),
        stream_id=leave.stream_id,
        registry=registry,
        initial=leave.initial,
        evolve=leave.evolve,
        cache=_runtime(request).states,
    )
    known = state.leaves.get(leave_id)
    if known is None:
        raise ProblemError(
            404,
            "attendance/unknown-leave",
            "Not found",
            f"cadre {cadre_id!r} has no leave {leave_id!r}",
            code="unknown_leave",
        )
    months = months_touched(known.first_day, known.last_day)
    pack = _policy(request, post.county, known.first_day)
    models: list[StreamModel[Any]] = [leave, *(_month_model(cadre_id, m) for m in months)]
    return _accepted(
        await _execute(
            request,
            principal,
            models,
            lambda states: {
                leave.stream_id: decide(states[0], dict(zip(months, states[1:], strict=True)), pack)
            },
        )
    )


@router.post("/cadres/{cadre_id}/leave/{leave_id}/approve", summary="Approve a leave request")
async def approve_cadre_leave(
    request: Request, cadre_id: CadreId, leave_id: str, principal: Supervisor
) -> CommandAccepted:
    command = ApproveLeave(
        leave_id=leave_id, cadre_id=cadre_id, approver_level=_approver_level(principal)
    )
    return await _leave_decision(
        request,
        principal,
        cadre_id,
        leave_id,
        lambda leave, months, pack: approve_leave(command, leave, months, pack),
    )


@router.post("/cadres/{cadre_id}/leave/{leave_id}/reject", summary="Reject a leave request")
async def reject_cadre_leave(
    request: Request, cadre_id: CadreId, leave_id: str, body: RejectBody, principal: Supervisor
) -> CommandAccepted:
    command = RejectLeave(
        leave_id=leave_id,
        cadre_id=cadre_id,
        approver_level=_approver_level(principal),
        reason=body.reason,
    )
    return await _leave_decision(
        request, principal, cadre_id, leave_id, lambda leave, _m, _p: reject_leave(command, leave)
    )


@router.post("/cadres/{cadre_id}/leave/{leave_id}/cancel", summary="Cancel a leave")
async def cancel_cadre_leave(
    request: Request,
    cadre_id: CadreId,
    leave_id: str,
    body: CancelBody,
    principal: CadreOrSupervisor,
) -> CommandAccepted:
    command = CancelLeave(leave_id=leave_id, cadre_id=cadre_id, reason=body.reason)
    return await _leave_decision(
        request,
        principal,
        cadre_id,
        leave_id,
        lambda leave, months, _p: cancel_leave(command, leave, months),
    )


# --- work record ----------------------------------------------------------------------------


@router.post(
    "/cadres/{cadre_id}/diary",
    status_code=status.HTTP_201_CREATED,
    summary="Write a work diary entry (驻村日记)",
)
async def write_cadre_diary_entry(
    request: Request, cadre_id: CadreId, body: DiaryBody, principal: Cadre
) -> CommandAccepted:
    post = await _post_on(request, principal, cadre_id, body.day)
    command = WriteDiaryEntry(
        entry_id=body.entry_id, cadre_id=cadre_id, day=body.day, text=body.text, post=post
    )
    work = _work_model(cadre_id)
    return _accepted(
        await _execute(
            request,
            principal,
            [work],
            lambda states: {work.stream_id: write_diary_entry(command, states[0])},
        )
    )


@router.post(
    "/cadres/{cadre_id}/visits",
    status_code=status.HTTP_201_CREATED,
    summary="Record a household visit (入户走访)",
)
async def record_cadre_visit(
    request: Request, cadre_id: CadreId, body: VisitBody, principal: Cadre
) -> CommandAccepted:
    post = await _post_on(request, principal, cadre_id, body.visited_on)
    command = RecordHouseholdVisit(
        visit_id=body.visit_id,
        cadre_id=cadre_id,
        household_id=body.household_id,
        visited_on=body.visited_on,
        note=body.note,
        post=post,
    )
    work = _work_model(cadre_id)
    return _accepted(
        await _execute(
            request,
            principal,
            [work],
            lambda states: {work.stream_id: record_household_visit(command, states[0])},
        )
    )


# --- month close ----------------------------------------------------------------------------


async def _close_one(
    request: Request, principal: Principal, cadre_id: str, month: str
) -> CommandAccepted:
    first, last = month_bounds(month)
    posts = [_known_village(p) for p in await _posts(request).posts_between(cadre_id, first, last)]
    if not posts:
        raise _not_on_post(cadre_id, f"any day of {month}")
    for post in posts:
        principal.ensure_covers(_scope(post))
    pack = _policy(request, posts[-1].county, last)
    command = CloseMonth(cadre_id=cadre_id, month=month, posts=tuple(posts), today=_today())
    month_model = _month_model(cadre_id, month)
    leave = _leave_model(cadre_id)
    return _accepted(
        await _execute(
            request,
            principal,
            [month_model, leave],
            lambda states: {
                month_model.stream_id: close_month(command, states[0], states[1], pack)
            },
        )
    )


@router.post(
    "/cadres/{cadre_id}/months/{month}/close",
    status_code=status.HTTP_201_CREATED,
    summary="Close a cadre's month: days in the village, leave, required days, shortfall",
)
async def close_cadre_month(
    request: Request, cadre_id: CadreId, month: Month, principal: Supervisor
) -> CommandAccepted:
    return await _close_one(request, principal, cadre_id, month)


@router.post(
    "/counties/{county}/months/{month}/close",
    summary="Close a month for every cadre on post in the county (or the caller's township)",
)
async def close_county_month(
    request: Request, county: CountyCode, month: Month, principal: CountyAdmin
) -> CountyCloseResult:
    principal.ensure_covers(Scope(county=county, township=principal.jurisdiction.township))
    first, last = month_bounds(month)
    cadres = await _posts(request).cadres_between(
        county, first, last, township=principal.jurisdiction.township
    )
    outcomes: list[CloseOutcome] = []
    for cadre_id in cadres:
        try:
            await _close_one(request, principal, cadre_id, month)
            outcomes.append(CloseOutcome(cadre_id=cadre_id, status="closed"))
        except ProblemError as problem:
            document = problem.to_problem().model_dump(mode="json", exclude_none=True)
            already = problem.extensions.get("code") == "month_already_closed"
            outcomes.append(
                CloseOutcome(
                    cadre_id=cadre_id,
                    status="already_closed" if already else "refused",
                    problem=None if already else document,
                )
            )
    return CountyCloseResult(
        month=month,
        closed=sum(1 for o in outcomes if o.status == "closed"),
        already_closed=sum(1 for o in outcomes if o.status == "already_closed"),
        refused=sum(1 for o in outcomes if o.status == "refused"),
        cadres=outcomes,
    )


# --- reads ----------------------------------------------------------------------------------


async def _fold(request: Request, model: StreamModel[Any]) -> Any:
    state, _ = await load(
        _runtime(request).event_store(),
        stream_id=model.stream_id,
        registry=registry,
        initial=model.initial,
        evolve=model.evolve,
        cache=_runtime(request).states,
    )
    return state


@router.get("/cadres/{cadre_id}/months/{month}", summary="A cadre's month: closed, or so far")
async def read_cadre_month(
    request: Request, cadre_id: CadreId, month: Month, principal: Reader
) -> dict[str, Any]:
    await _latest_post(request, principal, cadre_id)
    state: MonthState = await _fold(request, _month_model(cadre_id, month))
    if state.closed is not None:
        return {"status": "closed", **state.closed.to_data()}
    first, last = month_bounds(month)
    posts = await _posts(request).posts_between(cadre_id, first, last)
    if not posts:
        raise _not_on_post(cadre_id, f"any day of {month}")
    leave: LeaveState = await _fold(request, _leave_model(cadre_id))
    pack = _policy(request, posts[-1].county, last)
    tally = month_tally(state, leave, posts, pack)
    return {"status": "open", **_as_dict(tally)}


@router.get("/cadres/{cadre_id}/leave", summary="A cadre's leave requests and their status")
async def read_cadre_leave(
    request: Request, cadre_id: CadreId, principal: Reader
) -> list[dict[str, Any]]:
    await _latest_post(request, principal, cadre_id)
    state: LeaveState = await _fold(request, _leave_model(cadre_id))
    return [_as_dict(leave) for leave in state.leaves.values()]


@router.get(
    "/cadres/{cadre_id}/visits/coverage",
    summary="Household visit coverage of the cadre's current village",
)
async def read_visit_coverage(
    request: Request, cadre_id: CadreId, principal: Reader
) -> dict[str, Any]:
    post = await _latest_post(request, principal, cadre_id)
    work: WorkState = await _fold(request, _work_model(cadre_id))
    pack = _policy(request, post.county, post.term_start)
    return _as_dict(visit_coverage(work, post, pack))


def _as_dict(value: Any) -> dict[str, Any]:
    """A domain value (a dataclass or a pydantic model) as JSON-ready data."""
    data: dict[str, Any] = TypeAdapter(type(value)).dump_python(value, mode="json")
    return data
