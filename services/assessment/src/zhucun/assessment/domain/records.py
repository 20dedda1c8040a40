"""Deciders of the cadre and team streams: inspections (一周一督查, 一月一调度), villager
evaluations (群众评议), the term-end assessment and sanctions.

A repeat with the same id and content is a no-op; the same id with other content is a
``DuplicateId``. The term assessment has no id of its own: there is one per assignment, and a
second one with other content is ``AlreadyAssessed``.
"""

from __future__ import annotations

from zhucun.assessment.domain.commands import (
    AssessTerm,
    InspectCadre,
    InspectTeam,
    RecordSanction,
    RecordVillagerEvaluation,
)
from zhucun.assessment.domain.errors import AlreadyAssessed, DuplicateId, TermNotOver
from zhucun.assessment.domain.guards import (
    require_cadre_stream,
    require_covers,
    require_facts_of,
    require_not_after,
    require_overlaps,
)
from zhucun.assessment.domain.periods import period_bounds
from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.domain.rules import capped_grade
from zhucun.assessment.domain.state import CadreState, TeamState
from zhucun.contracts.assessment.events import (
    CadreInspected,
    SanctionRecorded,
    TeamInspected,
    TermAssessed,
    VillagerEvaluationRecorded,
)
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyPack


def inspect_cadre(command: InspectCadre, state: CadreState) -> list[DomainEvent]:
    """An inspection of the cadre, held on a day on post and not after today."""
    post = command.post
    require_cadre_stream(state, post)
    event = CadreInspected(
        inspection_id=command.inspection_id,
        kind=command.kind,
        cadre_id=post.cadre_id,
        county=post.county,
        township=post.township,
        held_on=command.held_on,
        findings=command.findings,
        problems_found=command.problems_found,
    )
    known = state.inspections.get(command.inspection_id)
    if known is not None:
        if known == event:
            return []
        raise DuplicateId("inspection", command.inspection_id)
    require_not_after(command.held_on, command.today, "an inspection")
    require_covers(post, command.held_on)
    return [event]


def inspect_team(command: InspectTeam, state: TeamState) -> list[DomainEvent]:
    """An inspection of a whole work team, not after today."""
    if state.team_id != command.team_id:
        raise ValueError(f"the stream of team {state.team_id!r} is not that of {command.team_id!r}")
    event = TeamInspected(
        inspection_id=command.inspection_id,
        kind=command.kind,
        team_id=command.team_id,
        village_id=command.village_id,
        county=command.county,
        township=command.township,
        held_on=command.held_on,
        findings=command.findings,
        problems_found=command.problems_found,
    )
    known = state.inspections.get(command.inspection_id)
    if known is not None:
        if known == event:
            return []
        raise DuplicateId("inspection", command.inspection_id)
    require_not_after(command.held_on, command.today, "an inspection")
    return [event]


def record_villager_evaluation(
    command: RecordVillagerEvaluation, state: CadreState
) -> list[DomainEvent]:
    """Villagers' evaluation of the cadre for a year or quarter the cadre was on post."""
    post = command.post
    require_cadre_stream(state, post)
    event = VillagerEvaluationRecorded(
        evaluation_id=command.evaluation_id,
        cadre_id=post.cadre_id,
        county=post.county,
        period=command.period,
        satisfaction=command.satisfaction,
        respondents=command.respondents,
    )
    known = state.evaluations.get(command.evaluation_id)
    if known is not None:
        if known == event:
            return []
        raise DuplicateId("villager evaluation", command.evaluation_id)
    first, last = period_bounds(command.period)
    require_overlaps(post, first, last, command.period, post.county)
    return [event]


def record_sanction(command: RecordSanction, state: CadreState) -> list[DomainEvent]:
    """A disciplinary sanction, decided not after today (it may follow the assignment's end:
    the post only says which county decided)."""
    post = command.post
    require_cadre_stream(state, post)
    event = SanctionRecorded(
        sanction_id=command.sanction_id,
        cadre_id=post.cadre_id,
        county=post.county,
        kind=command.kind,
        decided_on=command.decided_on,
        authority=command.authority,
        reason=command.reason,
    )
    known = state.sanctions.get(command.sanction_id)
    if known is not None:
        if known == event:
            return []
        raise DuplicateId("sanction", command.sanction_id)
    require_not_after(command.decided_on, command.today, "a sanction decided")
    return [event]


def assess_term(command: AssessTerm, state: CadreState, pack: PolicyPack) -> list[DomainEvent]:
    """The term-end assessment of the assignment, once it ended (``ended_on``) or its
    planned ``term_end`` has come. The event's ``term_end`` is the last day on post (the
    planned end while the assignment was not ended early). The attendance facts are those of
    that day's year; their cap is applied as in the annual round."""
    rules = pack.rules(AssessmentPolicy)
    post = command.post
    require_cadre_stream(state, post)
    last_day = post.ended_on or post.term_end
    require_facts_of(command.attendance, post, last_day.year)
    grade, cap = capped_grade(command.grade, command.attendance.unexcused_absences, rules)
    known = state.term_assessments.get(post.assignment_id)
    if known is not None:
        if (known.proposed_grade, known.grade, known.cap, known.term_end) == (
            command.grade,
            grade,
            cap,
            last_day,
        ):
            return []
        raise AlreadyAssessed(post.cadre_id, f"the term of assignment {post.assignment_id!r}")
    if post.ended_on is None and command.today < post.term_end:
        raise TermNotOver(post.assignment_id, post.term_end)
    return [
        TermAssessed(
            assignment_id=post.assignment_id,
            cadre_id=post.cadre_id,
            county=post.county,
            term_end=last_day,
            proposed_grade=command.grade,
            grade=grade,
            cap=cap,
            policy_version=pack.version,
        )
    ]
