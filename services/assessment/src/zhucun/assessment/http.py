"""The assessment HTTP edge: inspections, villager evaluations, quarterly assessments and
their admonition talks, red and blue lists, annual rounds, term-end assessments, sanctions.

Each route parses its path and body, requires a role, and calls one use case of
``zhucun.assessment.application``, which looks up the cadre's post and attendance facts in
the replicas, checks the caller's jurisdiction over them and runs the decider.

Who may do what (the roles; jurisdiction is the use cases'):

* ``township`` — in its township: inspections, villager evaluations, quarterly inputs,
  admonition talks;
* ``org_admin`` — in its county: all of the township's, the red and blue lists, annual
  rounds (open, propose, finalise), term-end assessments, sanctions;
* ``auditor`` — reads.

Refusals are problem details with a stable ``type`` per rule (``assessment/<code>``, mapped
by the service's problem handler): 422 invalid input, 404 unknown, 403 role or jurisdiction,
409 a broken rule (with its figures, e.g. the 优秀 counts of a refused finalisation), and a
retryable 409 when the replicas do not know the cadre yet.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, status
from pydantic import Field

from zhucun.assessment.application import (
    AnnualRoundRecord,
    Application,
    CadreRecord,
    OpenObligation,
    QuarterRecord,
    annual,
    quarters,
    records,
)
from zhucun.assessment.domain import AttendanceFacts
from zhucun.contracts.assessment.events import QUARTER_PATTERN, AnnualGrade, InspectionKind, TalkBy
from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.http import CadreId, CountyCode, use_cases
from zhucun.shared.inputs import Input

Quarter = Annotated[str, Path(pattern=QUARTER_PATTERN, description="YYYY-Qn")]
Year = Annotated[int, Path(ge=2000, le=2100)]

Township = Annotated[Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN, Role.AUDITOR))]


#: The use cases' dependencies, as the composition root wires them (``app.py``).
App = Annotated[Application, Depends(use_cases(Application))]

router = APIRouter(tags=["assessment"])


# --- bodies ---------------------------------------------------------------------------------


class InspectionBody(Input):
    inspection_id: str = Field(min_length=1, max_length=100)
    kind: InspectionKind
    held_on: date
    findings: str = Field(default="", max_length=10_000)
    problems_found: int = Field(default=0, ge=0)


class EvaluationBody(Input):
    evaluation_id: str = Field(min_length=1, max_length=100)
    period: str = Field(pattern=r"^\d{4}(-Q[1-4])?$")
    satisfaction: float = Field(ge=0, le=100)
    respondents: int = Field(ge=1)


class QuarterlyBody(Input):
    """Each part of the quarterly score, 0-100."""

    township_score: float = Field(ge=0, le=100)
    villager_score: float = Field(ge=0, le=100)
    county_panel_score: float = Field(ge=0, le=100)


class TalkBody(Input):
    cadre_id: str = Field(min_length=1, max_length=100)
    by: TalkBy
    held_on: date
    note: str = Field(default="", max_length=5_000)


class ListsBody(Input):
    list_id: str = Field(min_length=1, max_length=100)


class RoundBody(Input):
    round_id: str = Field(min_length=1, max_length=100)


class GradeBody(Input):
    grade: AnnualGrade


class SanctionBody(Input):
    sanction_id: str = Field(min_length=1, max_length=100)
    kind: str = Field(min_length=1, max_length=200)
    decided_on: date
    authority: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=5_000)


_CREATED: dict[str, Any] = {"status_code": status.HTTP_201_CREATED}


# --- inspections, evaluations, sanctions, term assessments (cadre and team streams) ---------


@router.post("/cadres/{cadre_id}/inspections", **_CREATED, summary="Record an inspection (督查)")
async def inspect_a_cadre(
    cadre_id: CadreId, body: InspectionBody, principal: Township, app: App
) -> CommandAccepted:
    return await records.inspect_cadre(app, principal, cadre_id, **body.model_dump())


@router.post("/teams/{team_id}/inspections", **_CREATED, summary="Inspect a work team")
async def inspect_a_team(
    team_id: str, body: InspectionBody, principal: Township, app: App
) -> CommandAccepted:
    return await records.inspect_team(app, principal, team_id, **body.model_dump())


@router.post(
    "/cadres/{cadre_id}/villager-evaluations",
    **_CREATED,
    summary="Record a villager evaluation (群众评议)",
)
async def evaluate_by_villagers(
    cadre_id: CadreId, body: EvaluationBody, principal: Township, app: App
) -> CommandAccepted:
    return await records.record_villager_evaluation(app, principal, cadre_id, **body.model_dump())


@router.post("/cadres/{cadre_id}/sanctions", **_CREATED, summary="Record a sanction")
async def sanction_a_cadre(
    cadre_id: CadreId, body: SanctionBody, principal: Admin, app: App
) -> CommandAccepted:
    return await records.record_sanction(app, principal, cadre_id, **body.model_dump())


@router.post(
    "/cadres/{cadre_id}/term-assessments/{assignment_id}",
    **_CREATED,
    summary="Assess a term at its end (capped by the last year's unexcused absences)",
)
async def assess_a_term(
    cadre_id: CadreId, assignment_id: str, body: GradeBody, principal: Admin, app: App
) -> CommandAccepted:
    return await records.assess_term(app, principal, cadre_id, assignment_id, body.grade)


@router.get(
    "/cadres/{cadre_id}/attendance/{year}",
    summary="The attendance facts that cap the cadre's grades for a year",
)
async def read_attendance_facts(
    cadre_id: CadreId, year: Year, principal: Reader, app: App
) -> AttendanceFacts:
    return await records.attendance_facts(app, principal, cadre_id, year)


@router.get("/cadres/{cadre_id}/record", summary="A cadre's assessment record")
async def read_cadre_record(cadre_id: CadreId, principal: Reader, app: App) -> CadreRecord:
    return await records.cadre_record(app, principal, cadre_id)


# --- quarters -------------------------------------------------------------------------------


@router.put(
    "/cadres/{cadre_id}/quarters/{quarter}",
    **_CREATED,
    summary="Enter the quarterly assessment (一季一考核); a 一般 opens the 双约谈",
)
async def assess_a_quarter(
    cadre_id: CadreId, quarter: Quarter, body: QuarterlyBody, principal: Township, app: App
) -> CommandAccepted:
    return await quarters.assess_quarter(app, principal, cadre_id, quarter, **body.model_dump())


@router.post(
    "/counties/{county}/quarters/{quarter}/obligations/{obligation_id}/talks",
    **_CREATED,
    summary="Record one admonition talk of a 双约谈",
)
async def hold_a_talk(
    county: CountyCode,
    quarter: Quarter,
    obligation_id: str,
    body: TalkBody,
    principal: Township,
    app: App,
) -> CommandAccepted:
    return await quarters.record_admonition_talk(
        app, principal, county, quarter, obligation_id, **body.model_dump()
    )


@router.get(
    "/counties/{county}/quarters/{quarter}/obligations",
    summary="Open 双约谈 obligations of a quarter (overdue ones flagged)",
)
async def read_obligations(
    county: CountyCode, quarter: Quarter, principal: Reader, app: App
) -> list[OpenObligation]:
    return await quarters.open_obligations(app, principal, county, quarter)


@router.post(
    "/counties/{county}/quarters/{quarter}/lists",
    **_CREATED,
    summary="Publish the quarter's red and blue lists (红蓝榜)",
)
async def publish_quarter_lists(
    county: CountyCode, quarter: Quarter, body: ListsBody, principal: Admin, app: App
) -> CommandAccepted:
    return await quarters.publish_lists(app, principal, county, quarter, list_id=body.list_id)


@router.get("/counties/{county}/quarters/{quarter}", summary="A county's quarter")
async def read_quarter(
    county: CountyCode, quarter: Quarter, principal: Reader, app: App
) -> QuarterRecord:
    return await quarters.quarter_record(app, principal, county, quarter)


# --- annual rounds --------------------------------------------------------------------------


@router.post("/counties/{county}/annual/{year}", **_CREATED, summary="Open the annual round")
async def open_round(
    county: CountyCode, year: Year, body: RoundBody, principal: Admin, app: App
) -> CommandAccepted:
    return await annual.open_annual_round(app, principal, county, year, round_id=body.round_id)


@router.put(
    "/counties/{county}/annual/{year}/proposals/{cadre_id}",
    summary="Propose a cadre's annual grade (capped by unexcused spot-check absences)",
)
async def propose_grade(
    county: CountyCode,
    year: Year,
    cadre_id: CadreId,
    body: GradeBody,
    principal: Admin,
    app: App,
) -> CommandAccepted:
    return await annual.propose_annual_grade(app, principal, county, year, cadre_id, body.grade)


@router.post(
    "/counties/{county}/annual/{year}/finalise",
    summary="Finalise the annual round (refused over the share of 优秀)",
)
async def finalise_round(
    county: CountyCode, year: Year, principal: Admin, app: App
) -> CommandAccepted:
    return await annual.finalise_annual_round(app, principal, county, year)


@router.get("/counties/{county}/annual/{year}", summary="A county's annual round")
async def read_round(
    county: CountyCode, year: Year, principal: Reader, app: App
) -> AnnualRoundRecord:
    return await annual.annual_round(app, principal, county, year)
