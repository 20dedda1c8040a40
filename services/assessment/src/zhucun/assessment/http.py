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
retryable 409 when the replicas do not know the cadre yet. Every path and body value is
bounded as the event contract bounds it (``zhucun.shared.bounds``: ids, names, texts, dates,
quarters and years of the window, strict counts and scores), so a value out of its bounds is
a 422 naming it and never reaches a decider.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, status

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
from zhucun.contracts.assessment.events import (
    AnnualGrade,
    EvaluationPeriod,
    InspectionKind,
    TalkBy,
)
from zhucun.shared.auth import Principal, Role, require_roles
from zhucun.shared.bounds import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    QUARTER_PATTERN,
    YEAR_MAX,
    YEAR_MIN,
    BusinessDate,
    Count,
    Id,
    Name,
    Note,
    Percent,
    PositiveCount,
    Text,
)
from zhucun.shared.commands import CommandAccepted
from zhucun.shared.http import CadreId, CountyCode, use_cases
from zhucun.shared.inputs import Input
from zhucun.shared.openapi import CONFLICTS_FLAG

QuarterPath = Annotated[
    str, Path(pattern=QUARTER_PATTERN, description="a quarter of 2000 to 2099: YYYY-Qn")
]
YearPath = Annotated[int, Path(ge=YEAR_MIN, le=YEAR_MAX, description="a year, 2000 to 2099")]
TeamId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="a work team's id")
]
AssignmentId = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="an assignment's id")
]
ObligationId = Annotated[
    str,
    Path(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH, description="a 双约谈 obligation's id"),
]

Township = Annotated[Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN))]
Admin = Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN))]
Reader = Annotated[Principal, Depends(require_roles(Role.TOWNSHIP, Role.ORG_ADMIN, Role.AUDITOR))]


#: The use cases' dependencies, as the composition root wires them (``app.py``).
App = Annotated[Application, Depends(use_cases(Application))]

router = APIRouter(tags=["assessment"])


# --- bodies ---------------------------------------------------------------------------------


class InspectionBody(Input):
    inspection_id: Id
    kind: InspectionKind
    held_on: BusinessDate
    findings: Text = ""
    problems_found: Count = 0


class EvaluationBody(Input):
    evaluation_id: Id
    #: A year (``2025``) or a quarter (``2025-Q2``).
    period: EvaluationPeriod
    satisfaction: Percent
    respondents: PositiveCount


class QuarterlyBody(Input):
    """Each part of the quarterly score, 0-100."""

    township_score: Percent
    villager_score: Percent
    county_panel_score: Percent


class TalkBody(Input):
    cadre_id: Id
    by: TalkBy
    held_on: BusinessDate
    note: Note = ""


class ListsBody(Input):
    list_id: Id


class RoundBody(Input):
    round_id: Id


class GradeBody(Input):
    grade: AnnualGrade


class SanctionBody(Input):
    sanction_id: Id
    kind: Name
    decided_on: BusinessDate
    authority: Name
    reason: Note = ""


_CREATED: dict[str, Any] = {"status_code": status.HTTP_201_CREATED}
#: A read that answers a retryable 409 while the replica of dispatch does not know the cadre.
_MAY_LAG: dict[str, Any] = {"openapi_extra": {CONFLICTS_FLAG: True}}


# --- inspections, evaluations, sanctions, term assessments (cadre and team streams) ---------


@router.post(
    "/cadres/{cadre_id}/inspections",
    **_CREATED,
    summary="Record an inspection (督查) of a cadre",
    description=(
        "Records a weekly inspection (督查) or a monthly review (调度) of the cadre, with its"
        " findings and the number of problems found, held on a day the cadre was on post and"
        " not after today; the county and township are those of the post as the replica of"
        " dispatch knows it. The same inspection again is a no-op. Refused: the inspection id"
        " taken with other content (409 `duplicate-id`), a day after today (422"
        " `future-date`), a day off post or a cadre the replica does not know yet (retryable"
        " 409), a post outside the caller's township (403)."
    ),
)
async def inspect_a_cadre(
    cadre_id: CadreId, body: InspectionBody, principal: Township, app: App
) -> CommandAccepted:
    return await records.inspect_cadre(app, principal, cadre_id, **body.model_dump())


@router.post(
    "/teams/{team_id}/inspections",
    **_CREATED,
    summary="Record an inspection of a work team",
    description=(
        "Records a weekly inspection or monthly review of a whole work team, at the village"
        " of the team's latest post, not after today; it is in no cadre's file. The same"
        " inspection again is a no-op. Refused: the inspection id taken with other content"
        " (409 `duplicate-id`), a day after today (422 `future-date`), a team the replica of"
        " dispatch does not know yet (retryable 409 `unknown-team`), a team outside the"
        " caller's township (403)."
    ),
)
async def inspect_a_team(
    team_id: TeamId, body: InspectionBody, principal: Township, app: App
) -> CommandAccepted:
    return await records.inspect_team(app, principal, team_id, **body.model_dump())


@router.post(
    "/cadres/{cadre_id}/villager-evaluations",
    **_CREATED,
    summary="Record a villager evaluation (群众评议)",
    description=(
        "Records the villagers' evaluation of the cadre for a year (`YYYY`) or a quarter"
        " (`YYYY-Qn`) in which the cadre was on post: a satisfaction of 0 to 100 among at"
        " least one respondent. It feeds the read side's publicise pool. The same evaluation"
        " again is a no-op. Refused: the evaluation id taken with other content (409"
        " `duplicate-id`), a period the cadre's post does not overlap or a cadre the replica"
        " of dispatch does not know yet (retryable 409), a post outside the caller's township"
        " (403)."
    ),
)
async def evaluate_by_villagers(
    cadre_id: CadreId, body: EvaluationBody, principal: Township, app: App
) -> CommandAccepted:
    return await records.record_villager_evaluation(app, principal, cadre_id, **body.model_dump())


@router.post(
    "/cadres/{cadre_id}/sanctions",
    **_CREATED,
    summary="Record a sanction",
    description=(
        "Records a disciplinary sanction against the cadre (its kind, the deciding authority,"
        " the day decided, a reason), in the county of the cadre's latest post; it may follow"
        " the end of the assignment, and makes a recall candidate on the read side. The same"
        " sanction again is a no-op. Refused: the sanction id taken with other content (409"
        " `duplicate-id`), a decision after today (422 `future-date`), a cadre the replica of"
        " dispatch does not know yet (retryable 409), a cadre outside the caller's county"
        " (403)."
    ),
)
async def sanction_a_cadre(
    cadre_id: CadreId, body: SanctionBody, principal: Admin, app: App
) -> CommandAccepted:
    return await records.record_sanction(app, principal, cadre_id, **body.model_dump())


@router.post(
    "/cadres/{cadre_id}/term-assessments/{assignment_id}",
    **_CREATED,
    summary="Assess a term at its end (capped by the last year's unexcused absences)",
    description=(
        "Assesses the assignment's term on the annual scale once it has ended or its planned"
        " end has come, capped by the unexcused spot-check absences of the year of its last"
        " day, under the policy pack in force that day. The same assessment again is a"
        " no-op. Refused: a term not over (409 `term-not-over`), a second, different"
        " assessment (409 `already-assessed`), an assignment the replica of dispatch does not"
        " know yet (retryable 409), no policy pack in force (422 `no-policy-in-force`), a"
        " cadre outside the caller's county (403)."
    ),
)
async def assess_a_term(
    cadre_id: CadreId, assignment_id: AssignmentId, body: GradeBody, principal: Admin, app: App
) -> CommandAccepted:
    return await records.assess_term(app, principal, cadre_id, assignment_id, body.grade)


@router.get(
    "/cadres/{cadre_id}/attendance/{year}",
    summary="The attendance facts that cap the cadre's grades for a year",
    description=(
        "The unexcused spot-check absences of the cadre in the year, as assessment's replica"
        " of attendance knows them (a closed month's figure, else the spot checks recorded so"
        " far): what caps the cadre's annual and term grades. Refused: a cadre the replica of"
        " dispatch does not know yet (retryable 409), a cadre outside the caller's reach"
        " (403)."
    ),
    **_MAY_LAG,
)
async def read_attendance_facts(
    cadre_id: CadreId, year: YearPath, principal: Reader, app: App
) -> AttendanceFacts:
    return await records.attendance_facts(app, principal, cadre_id, year)


@router.get(
    "/cadres/{cadre_id}/record",
    summary="A cadre's assessment record",
    description=(
        "The cadre's inspections, villager evaluations, term assessments and sanctions, each"
        " by its id, as recorded. Refused: a cadre the replica of dispatch does not know yet"
        " (retryable 409), a cadre outside the caller's reach (403)."
    ),
    **_MAY_LAG,
)
async def read_cadre_record(cadre_id: CadreId, principal: Reader, app: App) -> CadreRecord:
    return await records.cadre_record(app, principal, cadre_id)


# --- quarters -------------------------------------------------------------------------------


@router.put(
    "/cadres/{cadre_id}/quarters/{quarter}",
    **_CREATED,
    summary="Enter the quarterly assessment (一季一考核); a 一般 opens the 双约谈",
    description=(
        "Enters the cadre's quarterly assessment in the quarter of the post's county, from"
        " the quarter's last day on: the three parts are weighted into the score and its grade"
        " under the policy pack in force on that day, and a 一般 opens the 双约谈 obligation"
        " (`talks-{cadre}-{quarter}`). The same assessment again is a no-op. Refused: a"
        " quarter not over (409 `quarter-not-over`), a second, different assessment (409"
        " `already-assessed`), a quarter whose lists are published (409"
        " `lists-already-published`), a cadre not on post in the quarter or not known to the"
        " replica of dispatch yet (retryable 409), a post outside the caller's township"
        " (403)."
    ),
)
async def assess_a_quarter(
    cadre_id: CadreId, quarter: QuarterPath, body: QuarterlyBody, principal: Township, app: App
) -> CommandAccepted:
    return await quarters.assess_quarter(app, principal, cadre_id, quarter, **body.model_dump())


@router.post(
    "/counties/{county}/quarters/{quarter}/obligations/{obligation_id}/talks",
    **_CREATED,
    summary="Record one admonition talk of a 双约谈",
    description=(
        "Records the talk of one party (the township party committee or the sending unit)"
        " of a 双约谈 obligation of the quarter, with a cadre on post during the quarter; the"
        " second party's talk completes the obligation, marked overdue when after its due"
        " date. The same talk again is a no-op. Refused: no such obligation of the cadre (404"
        " `unknown-obligation`), the party's talk already held on another day (409"
        " `duplicate-talk`), a day after today (422 `future-date`), a cadre the replica of"
        " dispatch does not know yet (retryable 409), a post outside the caller's township"
        " (403)."
    ),
)
async def hold_a_talk(
    county: CountyCode,
    quarter: QuarterPath,
    obligation_id: ObligationId,
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
    description=(
        "The county's 双约谈 obligations of the quarter that are not completed yet, each"
        " flagged `overdue` when its due date is past today. Readable by the county's staff"
        " and townships and by auditors; refused outside the caller's county (403)."
    ),
)
async def read_obligations(
    county: CountyCode, quarter: QuarterPath, principal: Reader, app: App
) -> list[OpenObligation]:
    return await quarters.open_obligations(app, principal, county, quarter)


@router.post(
    "/counties/{county}/quarters/{quarter}/lists",
    **_CREATED,
    summary="Publish the quarter's red and blue lists (红蓝榜)",
    description=(
        "Publishes the quarter's red list (the best) and blue list (the worst) by quarterly"
        " score, ranked over every assessment of the quarter, once a quarter; the quarter"
        " then takes no new assessment. The same list id again is a no-op. Refused: lists"
        " already published under another id (409 `lists-already-published`), no assessment"
        " to rank (409 `nothing-to-rank`), no policy pack in force (422), another county"
        " (403)."
    ),
)
async def publish_quarter_lists(
    county: CountyCode, quarter: QuarterPath, body: ListsBody, principal: Admin, app: App
) -> CommandAccepted:
    return await quarters.publish_lists(app, principal, county, quarter, list_id=body.list_id)


@router.get(
    "/counties/{county}/quarters/{quarter}",
    summary="A county's quarter",
    description=(
        "The county's quarter: the latest assessment of each cadre, the 双约谈 obligations"
        " (open and completed) and the red and blue lists once published; a quarter without"
        " any is answered empty. Refused outside the caller's county (403)."
    ),
)
async def read_quarter(
    county: CountyCode, quarter: QuarterPath, principal: Reader, app: App
) -> QuarterRecord:
    return await quarters.quarter_record(app, principal, county, quarter)


# --- annual rounds --------------------------------------------------------------------------


@router.post(
    "/counties/{county}/annual/{year}",
    **_CREATED,
    summary="Open the annual round (年终算总账)",
    description=(
        "Opens the county's annual round of the year, from 1 December of that year on (年终"
        " 考核 is prepared in the year's last month). The same round id again is a no-op."
        " Refused: a year whose December has not come (409 `year-not-over`), another round"
        " open for the year (409 `round-already-open`), another county (403)."
    ),
)
async def open_round(
    county: CountyCode, year: YearPath, body: RoundBody, principal: Admin, app: App
) -> CommandAccepted:
    return await annual.open_annual_round(app, principal, county, year, round_id=body.round_id)


@router.put(
    "/counties/{county}/annual/{year}/proposals/{cadre_id}",
    summary="Propose a cadre's annual grade (capped by unexcused spot-check absences)",
    description=(
        "Proposes the cadre's grade in the year's open round, from the year's last day (31"
        " December) on, capped by the cadre's unexcused spot-check absences of the year (the"
        " event keeps the proposal, the grade given and the cap's reason), under the policy"
        " pack in force on 31 December. A later proposal replaces the earlier one until the"
        " round is final; the same proposal again is a no-op. Refused: a year not over (409"
        " `year-not-over`), no round open (409 `round-not-open`), a final round (409"
        " `round-already-finalised`), a cadre not on post in the county during the year or"
        " not known to the replica of dispatch yet (retryable 409), no policy pack in force"
        " (422), another county (403)."
    ),
)
async def propose_grade(
    county: CountyCode,
    year: YearPath,
    cadre_id: CadreId,
    body: GradeBody,
    principal: Admin,
    app: App,
) -> CommandAccepted:
    return await annual.propose_annual_grade(app, principal, county, year, cadre_id, body.grade)


@router.post(
    "/counties/{county}/annual/{year}/finalise",
    summary="Finalise the annual round (refused over the share of 优秀)",
    description=(
        "Finalises the year's open round, from the year's last day on: one result per cadre"
        " proposed, provided at most floor(share x cadres assessed) are 优秀 under the policy"
        " pack in force on 31 December. Finalising a final round again is a no-op. Refused: a"
        " year not over (409 `year-not-over`), no round open (409 `round-not-open`), no"
        " proposal (409 `nothing-to-finalise`), too many 优秀 (409 `excellent-share-exceeded`,"
        " with the counts), no policy pack in force (422), another county (403)."
    ),
)
async def finalise_round(
    county: CountyCode, year: YearPath, principal: Admin, app: App
) -> CommandAccepted:
    return await annual.finalise_annual_round(app, principal, county, year)


@router.get(
    "/counties/{county}/annual/{year}",
    summary="A county's annual round",
    description=(
        "The county's annual round of the year: its id and opening day once opened, the"
        " latest proposal for each cadre and, once final, the finalisation and each cadre's"
        " result; a year without a round is answered empty (`round_id` null). A round is"
        " found by its county and year. Refused outside the caller's county (403)."
    ),
)
async def read_round(
    county: CountyCode, year: YearPath, principal: Reader, app: App
) -> AnnualRoundRecord:
    return await annual.annual_round(app, principal, county, year)
