"""The assessment HTTP edge: inspections, villager evaluations, quarterly assessments and
their admonition talks, red and blue lists, annual rounds, term-end assessments, sanctions.

The edge looks up the cadre's posts in the replica of dispatch and the year's unexcused
absences in the replica of attendance, checks role and jurisdiction against the post's
county and township, and runs the pure decider through ``execute``.

Who may do what:

* ``township`` — in its township: inspections, villager evaluations, quarterly inputs,
  admonition talks;
* ``org_admin`` — in its county: all of the township's, the red and blue lists, annual
  rounds (open, propose, finalise), term-end assessments, sanctions;
* ``auditor`` — reads.

Refusals are problem details with a stable ``type`` per rule: 422 invalid input, 404 unknown,
403 role or jurisdiction, 409 a broken rule (with its figures, e.g. the 优秀 counts of a
refused finalisation), and a retryable 409 when the replica does not know the cadre yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Path, Request, status
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from zhucun.assessment.domain import (
    AnnualState,
    AssessmentRuleViolation,
    CadreState,
    QuarterState,
    TeamState,
    annual_stream,
    assess_quarter,
    assess_term,
    cadre_stream,
    evolve_annual,
    evolve_cadre,
    evolve_quarter,
    evolve_team,
    finalise_annual_round,
    inspect_cadre,
    inspect_team,
    open_annual_round,
    overdue_obligations,
    propose_annual_grade,
    publish_lists,
    quarter_bounds,
    quarter_stream,
    record_admonition_talk,
    record_sanction,
    record_villager_evaluation,
    team_stream,
)
from zhucun.assessment.domain.commands import (
    AssessQuarter,
    AssessTerm,
    AttendanceFacts,
    FinaliseAnnualRound,
    InspectCadre,
    InspectTeam,
    OpenAnnualRound,
    Post,
    ProposeAnnualGrade,
    PublishLists,
    RecordAdmonitionTalk,
    RecordSanction,
    RecordVillagerEvaluation,
)
from zhucun.assessment.replicas.attendance import AttendanceFacts as AttendanceReplica
from zhucun.assessment.replicas.dispatch import AssignmentRow, DispatchFacts
from zhucun.contracts.assessment.events import (
    QUARTER_PATTERN,
    AnnualGrade,
    InspectionKind,
    TalkBy,
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

RETRY_AFTER_SECONDS = 5
#: Periods and due dates are counted in China's calendar days.
SHANGHAI = ZoneInfo("Asia/Shanghai")

CadreId = Annotated[str, Path(min_length=1, max_length=100)]
CountyCode = Annotated[str, Path(pattern=r"^\d{2}(\d{2}){0,2}$", description="e.g. 530102")]
Quarter = Annotated[str, Path(pattern=QUARTER_PATTERN, description="YYYY-Qn")]
Year = Annotated[int, Path(ge=2000, le=2100)]

Township = Annotated[Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN, Role.AUDITOR))]

router = APIRouter(tags=["assessment"])


# --- bodies and answers ---------------------------------------------------------------------


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class InspectionBody(Body):
    inspection_id: str = Field(min_length=1, max_length=100)
    kind: InspectionKind
    held_on: date
    findings: str = Field(default="", max_length=10_000)
    problems_found: int = Field(default=0, ge=0)


class EvaluationBody(Body):
    evaluation_id: str = Field(min_length=1, max_length=100)
    period: str = Field(pattern=r"^\d{4}(-Q[1-4])?$")
    satisfaction: float = Field(ge=0, le=100)
    respondents: int = Field(ge=1)


class QuarterlyBody(Body):
    """Each part of the quarterly score, 0-100."""

    township_score: float = Field(ge=0, le=100)
    villager_score: float = Field(ge=0, le=100)
    county_panel_score: float = Field(ge=0, le=100)


class TalkBody(Body):
    cadre_id: str = Field(min_length=1, max_length=100)
    by: TalkBy
    held_on: date
    note: str = Field(default="", max_length=5_000)


class ListsBody(Body):
    list_id: str = Field(min_length=1, max_length=100)


class RoundBody(Body):
    round_id: str = Field(min_length=1, max_length=100)


class GradeBody(Body):
    grade: AnnualGrade


class SanctionBody(Body):
    sanction_id: str = Field(min_length=1, max_length=100)
    kind: str = Field(min_length=1, max_length=200)
    decided_on: date
    authority: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=5_000)


class CommandAccepted(BaseModel):
    """What a command stored (nothing when it repeated one already stored), with the events'
    data so a capped grade or an opened obligation is visible at once."""

    duplicate: bool
    event_ids: list[UUID]
    event_types: list[str]
    events: list[dict[str, Any]]


# --- plumbing -------------------------------------------------------------------------------


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _schema(request: Request) -> str:
    return _runtime(request).settings.postgres.schema_name


def _dispatch(request: Request) -> DispatchFacts:
    pool = _runtime(request).pool
    if pool is None:
        raise RuntimeError("the service is not started")
    return DispatchFacts(pool, _schema(request))


def _attendance(request: Request) -> AttendanceReplica:
    pool = _runtime(request).pool
    if pool is None:
        raise RuntimeError("the service is not started")
    return AttendanceReplica(pool, _schema(request))


def _today() -> date:
    """Today in China (the calendar every period and due date is counted in)."""
    return datetime.now(SHANGHAI).date()


_STATUS = {"invalid": 422, "not_found": 404, "conflict": 409, "forbidden": 403, "retryable": 409}
_TITLES = {
    "invalid": "Invalid assessment input",
    "not_found": "Not found",
    "conflict": "Assessment rule violated",
    "forbidden": "Not allowed",
    "retryable": "Not yet known; retry",
}


def rule_problem(error: AssessmentRuleViolation) -> ProblemError:
    """The problem document of a refused command, with the rule's own figures."""
    kind = error.kind
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if kind == "retryable" else None
    figures = {
        name: value
        for name, value in vars(error).items()
        if name not in {"message", "args"} and isinstance(value, str | int | float | bool)
    }
    return ProblemError(
        _STATUS.get(kind, 409),
        "assessment/" + error.code.replace("_", "-"),
        _TITLES.get(kind, "Assessment rule violated"),
        error.message,
        headers=headers,
        **{**figures, "code": error.code, "retryable": kind == "retryable"},
    )


def _unknown_cadre(cadre_id: str, when: str) -> ProblemError:
    return ProblemError(
        409,
        "assessment/no-assignment",
        "No assignment known",
        f"cadre {cadre_id!r} has no assignment {when} in this service's replica of dispatch; "
        "if the cadre was assigned just now, retry shortly",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        code="no_assignment",
        retryable=True,
    )


def _post(row: AssignmentRow) -> Post:
    if row.township is None:
        raise ProblemError(
            409,
            "assessment/village-not-replicated",
            "Village not yet known",
            f"village {row.village_id!r} is not in the replica of dispatch yet; retry",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            code="village_not_replicated",
            retryable=True,
        )
    return Post(
        assignment_id=row.assignment_id,
        cadre_id=row.cadre_id,
        team_id=row.team_id,
        village_id=row.village_id,
        township=row.township,
        county=row.county,
        term_start=row.term_start,
        term_end=row.term_end,
        ended_on=row.ended_on,
    )


async def _post_between(
    request: Request, principal: Principal, cadre_id: str, first: date, last: date
) -> Post:
    """The cadre's latest post overlapping ``first..last``, within the caller's reach."""
    rows = await _dispatch(request).assignments_between(cadre_id, first, last)
    if not rows:
        raise _unknown_cadre(cadre_id, f"between {first} and {last}")
    post = _post(rows[-1])
    principal.ensure_covers(Scope(county=post.county, township=post.township))
    return post


async def _latest_post(request: Request, principal: Principal, cadre_id: str) -> Post:
    rows = await _dispatch(request).assignments_of(cadre_id)
    if not rows:
        raise _unknown_cadre(cadre_id, "at all")
    post = _post(rows[-1])
    principal.ensure_covers(Scope(county=post.county, township=post.township))
    return post


def _policy(request: Request, county: str, on: date) -> PolicyPack:
    book: PolicyBook = request.app.state.policies
    try:
        pack = book.in_force(county, on)
        pack.assessment_rules()
    except (NoPolicyInForce, PolicySectionMissing) as error:
        raise ProblemError(
            422, "assessment/no-policy-in-force", "No policy in force", str(error)
        ) from error
    return pack


def _county_reach(principal: Principal, county: str) -> None:
    principal.ensure_covers(Scope(county=county, township=principal.jurisdiction.township))


async def _execute(
    request: Request,
    principal: Principal,
    streams: Sequence[StreamModel[Any]],
    decide: Callable[[list[Any]], Mapping[str, Sequence[DomainEvent]]],
) -> CommandAccepted:
    try:
        result = await execute(
            _runtime(request).event_store(),
            streams=streams,
            registry=registry,
            decide=decide,
            metadata=command_metadata(principal),
            cache=_runtime(request).states,
        )
    except AssessmentRuleViolation as error:
        raise rule_problem(error) from error
    return _accepted(result)


def _accepted(result: AppendResult | None) -> CommandAccepted:
    if result is None:
        return CommandAccepted(duplicate=True, event_ids=[], event_types=[], events=[])
    return CommandAccepted(
        duplicate=result.duplicate,
        event_ids=[e.event_id for e in result.events],
        event_types=[e.event_type for e in result.events],
        events=[e.data for e in result.events],
    )


def _one(model: StreamModel[Any], decide: Callable[[Any], list[DomainEvent]]) -> Any:
    """A ``decide`` for a command on one stream."""
    return lambda states: {model.stream_id: decide(states[0])}


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


def _cadre(cadre_id: str) -> StreamModel[CadreState]:
    return StreamModel(cadre_stream(cadre_id), CadreState.empty(cadre_id), evolve_cadre)


def _quarter(county: str, quarter: str) -> StreamModel[QuarterState]:
    return StreamModel(
        quarter_stream(county, quarter), QuarterState.empty(county, quarter), evolve_quarter
    )


def _annual(county: str, year: int) -> StreamModel[AnnualState]:
    return StreamModel(annual_stream(county, year), AnnualState.empty(county, year), evolve_annual)


def _as_data(value: Any) -> Any:
    """A domain value (a dataclass or a pydantic model) as JSON data."""
    return TypeAdapter(type(value)).dump_python(value, mode="json")


_CREATED: dict[str, Any] = {"status_code": status.HTTP_201_CREATED}


# --- inspections, evaluations, sanctions (cadre streams) ------------------------------------


@router.post("/cadres/{cadre_id}/inspections", **_CREATED, summary="Record an inspection (督查)")
async def inspect_a_cadre(
    request: Request, cadre_id: CadreId, body: InspectionBody, principal: Township
) -> CommandAccepted:
    post = await _post_between(request, principal, cadre_id, body.held_on, body.held_on)
    command = InspectCadre(**body.model_dump(), post=post, today=_today())
    model = _cadre(cadre_id)
    return await _execute(
        request, principal, [model], _one(model, lambda s: inspect_cadre(command, s))
    )


@router.post("/teams/{team_id}/inspections", **_CREATED, summary="Inspect a work team")
async def inspect_a_team(
    request: Request, team_id: str, body: InspectionBody, principal: Township
) -> CommandAccepted:
    rows = await _dispatch(request).team_assignments(team_id)
    if not rows:
        raise ProblemError(
            409,
            "assessment/unknown-team",
            "Team not yet known",
            f"team {team_id!r} has no assignment in the replica of dispatch; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            code="unknown_team",
            retryable=True,
        )
    post = _post(rows[-1])
    principal.ensure_covers(Scope(county=post.county, township=post.township))
    command = InspectTeam(
        **body.model_dump(),
        team_id=team_id,
        village_id=post.village_id,
        county=post.county,
        township=post.township,
        today=_today(),
    )
    model = StreamModel(team_stream(team_id), TeamState.empty(team_id), evolve_team)
    return await _execute(
        request, principal, [model], _one(model, lambda s: inspect_team(command, s))
    )


@router.post(
    "/cadres/{cadre_id}/villager-evaluations",
    **_CREATED,
    summary="Record a villager evaluation (群众评议)",
)
async def evaluate_by_villagers(
    request: Request, cadre_id: CadreId, body: EvaluationBody, principal: Township
) -> CommandAccepted:
    year = int(body.period[:4])
    post = await _post_between(request, principal, cadre_id, date(year, 1, 1), date(year, 12, 31))
    command = RecordVillagerEvaluation(**body.model_dump(), post=post)
    model = _cadre(cadre_id)
    return await _execute(
        request, principal, [model], _one(model, lambda s: record_villager_evaluation(command, s))
    )


@router.post("/cadres/{cadre_id}/sanctions", **_CREATED, summary="Record a sanction")
async def sanction_a_cadre(
    request: Request, cadre_id: CadreId, body: SanctionBody, principal: Admin
) -> CommandAccepted:
    post = await _latest_post(request, principal, cadre_id)
    command = RecordSanction(**body.model_dump(), post=post, today=_today())
    model = _cadre(cadre_id)
    return await _execute(
        request, principal, [model], _one(model, lambda s: record_sanction(command, s))
    )


@router.post(
    "/cadres/{cadre_id}/term-assessments/{assignment_id}",
    **_CREATED,
    summary="Assess a term at its end (capped by the last year's unexcused absences)",
)
async def assess_a_term(
    request: Request, cadre_id: CadreId, assignment_id: str, body: GradeBody, principal: Admin
) -> CommandAccepted:
    rows = await _dispatch(request).assignments_of(cadre_id)
    row = next((r for r in rows if r.assignment_id == assignment_id), None)
    if row is None:
        raise _unknown_cadre(cadre_id, f"called {assignment_id!r}")
    post = _post(row)
    principal.ensure_covers(Scope(county=post.county, township=post.township))
    last_day = post.ended_on or post.term_end
    facts = AttendanceFacts(
        cadre_id=cadre_id,
        year=last_day.year,
        unexcused_absences=await _attendance(request).unexcused_absences(cadre_id, last_day.year),
    )
    pack = _policy(request, post.county, last_day)
    command = AssessTerm(post=post, grade=body.grade, attendance=facts, today=_today())
    model = _cadre(cadre_id)
    return await _execute(
        request, principal, [model], _one(model, lambda s: assess_term(command, s, pack))
    )


@router.get(
    "/cadres/{cadre_id}/attendance/{year}",
    summary="The attendance facts that cap the cadre's grades for a year",
)
async def read_attendance_facts(
    request: Request, cadre_id: CadreId, year: Year, principal: Reader
) -> AttendanceFacts:
    await _latest_post(request, principal, cadre_id)
    absences = await _attendance(request).unexcused_absences(cadre_id, year)
    return AttendanceFacts(cadre_id=cadre_id, year=year, unexcused_absences=absences)


@router.get("/cadres/{cadre_id}/record", summary="A cadre's assessment record")
async def read_cadre_record(
    request: Request, cadre_id: CadreId, principal: Reader
) -> dict[str, Any]:
    await _latest_post(request, principal, cadre_id)
    state: CadreState = await _fold(request, _cadre(cadre_id))
    data: dict[str, Any] = _as_data(state)
    return data


# --- quarters -------------------------------------------------------------------------------


@router.put(
    "/cadres/{cadre_id}/quarters/{quarter}",
    **_CREATED,
    summary="Enter the quarterly assessment (一季一考核); a 一般 opens the 双约谈",
)
async def assess_a_quarter(
    request: Request, cadre_id: CadreId, quarter: Quarter, body: QuarterlyBody, principal: Township
) -> CommandAccepted:
    first, last = quarter_bounds(quarter)
    post = await _post_between(request, principal, cadre_id, first, last)
    pack = _policy(request, post.county, last)
    command = AssessQuarter(
        **body.model_dump(),
        post=post,
        quarter=quarter,
        obligation_id=f"talks-{cadre_id}-{quarter}",
        today=_today(),
    )
    model = _quarter(post.county, quarter)
    return await _execute(
        request, principal, [model], _one(model, lambda s: assess_quarter(command, s, pack))
    )


@router.post(
    "/counties/{county}/quarters/{quarter}/obligations/{obligation_id}/talks",
    **_CREATED,
    summary="Record one admonition talk of a 双约谈",
)
async def hold_a_talk(
    request: Request,
    county: CountyCode,
    quarter: Quarter,
    obligation_id: str,
    body: TalkBody,
    principal: Township,
) -> CommandAccepted:
    first, last = quarter_bounds(quarter)
    await _post_between(request, principal, body.cadre_id, first, last)
    command = RecordAdmonitionTalk(**body.model_dump(), obligation_id=obligation_id, today=_today())
    model = _quarter(county, quarter)
    return await _execute(
        request, principal, [model], _one(model, lambda s: record_admonition_talk(command, s))
    )


@router.get(
    "/counties/{county}/quarters/{quarter}/obligations",
    summary="Open 双约谈 obligations of a quarter (overdue ones flagged)",
)
async def read_obligations(
    request: Request, county: CountyCode, quarter: Quarter, principal: Reader
) -> list[dict[str, Any]]:
    _county_reach(principal, county)
    state: QuarterState = await _fold(request, _quarter(county, quarter))
    overdue = {o.obligation_id for o in overdue_obligations(state, _today())}
    return [
        {**_as_data(o), "overdue": o.obligation_id in overdue}
        for o in state.obligations.values()
        if not o.completed
    ]


@router.post(
    "/counties/{county}/quarters/{quarter}/lists",
    **_CREATED,
    summary="Publish the quarter's red and blue lists (红蓝榜)",
)
async def publish_quarter_lists(
    request: Request, county: CountyCode, quarter: Quarter, body: ListsBody, principal: Admin
) -> CommandAccepted:
    principal.ensure_covers(Scope(county=county))
    pack = _policy(request, county, quarter_bounds(quarter)[1])
    command = PublishLists(list_id=body.list_id, county=county, quarter=quarter, today=_today())
    model = _quarter(county, quarter)
    return await _execute(
        request, principal, [model], _one(model, lambda s: publish_lists(command, s, pack))
    )


@router.get("/counties/{county}/quarters/{quarter}", summary="A county's quarter")
async def read_quarter(
    request: Request, county: CountyCode, quarter: Quarter, principal: Reader
) -> dict[str, Any]:
    _county_reach(principal, county)
    state: QuarterState = await _fold(request, _quarter(county, quarter))
    data: dict[str, Any] = _as_data(state)
    return data


# --- annual rounds --------------------------------------------------------------------------


@router.post("/counties/{county}/annual/{year}", **_CREATED, summary="Open the annual round")
async def open_round(
    request: Request, county: CountyCode, year: Year, body: RoundBody, principal: Admin
) -> CommandAccepted:
    principal.ensure_covers(Scope(county=county))
    command = OpenAnnualRound(round_id=body.round_id, county=county, year=year, today=_today())
    model = _annual(county, year)
    return await _execute(
        request, principal, [model], _one(model, lambda s: open_annual_round(command, s))
    )


@router.put(
    "/counties/{county}/annual/{year}/proposals/{cadre_id}",
    summary="Propose a cadre's annual grade (capped by unexcused spot-check absences)",
)
async def propose_grade(
    request: Request,
    county: CountyCode,
    year: Year,
    cadre_id: CadreId,
    body: GradeBody,
    principal: Admin,
) -> CommandAccepted:
    principal.ensure_covers(Scope(county=county))
    post = await _post_between(request, principal, cadre_id, date(year, 1, 1), date(year, 12, 31))
    facts = AttendanceFacts(
        cadre_id=cadre_id,
        year=year,
        unexcused_absences=await _attendance(request).unexcused_absences(cadre_id, year),
    )
    pack = _policy(request, county, date(year, 12, 31))
    model = _annual(county, year)

    def decide(states: list[Any]) -> dict[str, list[DomainEvent]]:
        state: AnnualState = states[0]
        command = ProposeAnnualGrade(
            round_id=state.round_id or "",
            county=county,
            year=year,
            post=post,
            grade=body.grade,
            attendance=facts,
        )
        return {model.stream_id: propose_annual_grade(command, state, pack)}

    return await _execute(request, principal, [model], decide)


@router.post(
    "/counties/{county}/annual/{year}/finalise",
    summary="Finalise the annual round (refused over the share of 优秀)",
)
async def finalise_round(
    request: Request, county: CountyCode, year: Year, principal: Admin
) -> CommandAccepted:
    principal.ensure_covers(Scope(county=county))
    pack = _policy(request, county, date(year, 12, 31))
    model = _annual(county, year)

    def decide(states: list[Any]) -> dict[str, list[DomainEvent]]:
        state: AnnualState = states[0]
        command = FinaliseAnnualRound(
            round_id=state.round_id or "", county=county, year=year, today=_today()
        )
        return {model.stream_id: finalise_annual_round(command, state, pack)}

    return await _execute(request, principal, [model], decide)


@router.get("/counties/{county}/annual/{year}", summary="A county's annual round")
async def read_round(
    request: Request, county: CountyCode, year: Year, principal: Reader
) -> dict[str, Any]:
    _county_reach(principal, county)
    state: AnnualState = await _fold(request, _annual(county, year))
    data: dict[str, Any] = _as_data(state)
    return data
