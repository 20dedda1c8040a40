"""Use cases of the cadre and team streams: inspections (一周一督查), villager evaluations
(群众评议), sanctions, the term-end assessment, and the reads of a cadre's record and of
the attendance facts that cap the cadre's grades.

Each command's consistency boundary is its one stream (``assessment-cadre-{cadre}`` or
``assessment-team-{team}``); the post it acts on comes from the replica of dispatch and must
lie within the caller's reach.
"""

from __future__ import annotations

from datetime import date

from zhucun.assessment import domain
from zhucun.assessment.application.context import Application, cadre_model, team_model
from zhucun.assessment.application.views import CadreRecord
from zhucun.assessment.domain import (
    AssessTerm,
    AttendanceFacts,
    InspectCadre,
    InspectTeam,
    RecordSanction,
    RecordVillagerEvaluation,
    year_bounds,
)
from zhucun.contracts.assessment.events import AnnualGrade, InspectionKind
from zhucun.shared.auth import Principal
from zhucun.shared.commands import CommandAccepted


async def inspect_cadre(
    app: Application,
    principal: Principal,
    cadre_id: str,
    *,
    inspection_id: str,
    kind: InspectionKind,
    held_on: date,
    findings: str = "",
    problems_found: int = 0,
) -> CommandAccepted:
    """An inspection of a cadre, on a day of the cadre's post."""
    post = await app.post_between(principal, cadre_id, held_on, held_on)
    command = InspectCadre(
        inspection_id=inspection_id,
        kind=kind,
        post=post,
        held_on=held_on,
        findings=findings,
        problems_found=problems_found,
        today=app.today(),
    )
    return await app.run(
        principal, cadre_model(cadre_id), lambda s: domain.inspect_cadre(command, s)
    )


async def inspect_team(
    app: Application,
    principal: Principal,
    team_id: str,
    *,
    inspection_id: str,
    kind: InspectionKind,
    held_on: date,
    findings: str = "",
    problems_found: int = 0,
) -> CommandAccepted:
    """An inspection of a work team, at its village (that of the team's latest post)."""
    post = await app.team_post(principal, team_id)
    command = InspectTeam(
        inspection_id=inspection_id,
        kind=kind,
        team_id=team_id,
        village_id=post.village_id,
        county=post.county,
        township=post.township,
        held_on=held_on,
        findings=findings,
        problems_found=problems_found,
        today=app.today(),
    )
    return await app.run(principal, team_model(team_id), lambda s: domain.inspect_team(command, s))


async def record_villager_evaluation(
    app: Application,
    principal: Principal,
    cadre_id: str,
    *,
    evaluation_id: str,
    period: str,
    satisfaction: float,
    respondents: int,
) -> CommandAccepted:
    """The villagers' evaluation of a cadre for a year or a quarter (``YYYY[-Qn]``), on the
    cadre's post of that year."""
    post = await app.post_between(principal, cadre_id, *year_bounds(int(period[:4])))
    command = RecordVillagerEvaluation(
        evaluation_id=evaluation_id,
        post=post,
        period=period,
        satisfaction=satisfaction,
        respondents=respondents,
    )
    return await app.run(
        principal, cadre_model(cadre_id), lambda s: domain.record_villager_evaluation(command, s)
    )


async def record_sanction(
    app: Application,
    principal: Principal,
    cadre_id: str,
    *,
    sanction_id: str,
    kind: str,
    decided_on: date,
    authority: str,
    reason: str = "",
) -> CommandAccepted:
    """A sanction of a cadre, on the cadre's latest post."""
    post = await app.latest_post(principal, cadre_id)
    command = RecordSanction(
        sanction_id=sanction_id,
        post=post,
        kind=kind,
        decided_on=decided_on,
        authority=authority,
        reason=reason,
        today=app.today(),
    )
    return await app.run(
        principal, cadre_model(cadre_id), lambda s: domain.record_sanction(command, s)
    )


async def assess_term(
    app: Application, principal: Principal, cadre_id: str, assignment_id: str, grade: AnnualGrade
) -> CommandAccepted:
    """The assessment of an assignment's term at its end: capped by the unexcused absences
    of the year of the term's last day, under the pack in force on that day."""
    post = await app.post_called(principal, cadre_id, assignment_id)
    last_day = post.ended_on or post.term_end
    facts = await app.attendance(cadre_id, last_day.year)
    pack = app.pack(post.county, last_day)
    command = AssessTerm(post=post, grade=grade, attendance=facts, today=app.today())
    return await app.run(
        principal, cadre_model(cadre_id), lambda s: domain.assess_term(command, s, pack)
    )


async def attendance_facts(
    app: Application, principal: Principal, cadre_id: str, year: int
) -> AttendanceFacts:
    """The attendance facts that cap the cadre's grades of ``year`` (a cadre within reach)."""
    await app.latest_post(principal, cadre_id)
    return await app.attendance(cadre_id, year)


async def cadre_record(app: Application, principal: Principal, cadre_id: str) -> CadreRecord:
    """A cadre's assessment record (a cadre within reach)."""
    await app.latest_post(principal, cadre_id)
    return CadreRecord.model_validate(await app.state(cadre_model(cadre_id)))


__all__ = [
    "assess_term",
    "attendance_facts",
    "cadre_record",
    "inspect_cadre",
    "inspect_team",
    "record_sanction",
    "record_villager_evaluation",
]
