"""Commands to the assessment decider, and the facts from other services they carry.

Ids of new things come with the command (a retried command decides the same events); dates
and "today" come with the command (the decider reads no clock). What the decider needs from
dispatch (the cadre's posts: county, township, the assignment's end) and from attendance
(unexcused spot-check absences in a year) comes from the service's replicas of those topics,
looked up by the use cases (``zhucun.assessment.application``), as ``Post`` and
``AttendanceFacts`` values.

Every field is bounded as the event contract bounds it (``zhucun.shared.bounds`` and
``zhucun.contracts.assessment.events``): a command the HTTP edge could not have produced
never reaches a decider, and every event a decider builds from one is within its contract.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from zhucun.contracts.assessment.events import (
    AnnualGrade,
    County,
    EvaluationPeriod,
    InspectionKind,
    TalkBy,
)
from zhucun.shared.bounds import (
    BusinessDate,
    Count,
    Id,
    Name,
    Note,
    Percent,
    PositiveCount,
    Quarter,
    Text,
    Year,
)
from zhucun.shared.inputs import Input


class Command(Input):
    """A command to the assessment decider (immutable, no unknown members, strings stripped)."""


class Post(BaseModel):
    """One assignment of a cadre as the dispatch replica knows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assignment_id: Id
    cadre_id: Id
    team_id: Id
    village_id: Id
    township: Name
    county: County
    term_start: BusinessDate
    term_end: BusinessDate
    #: Last day on post once the assignment ended (term completed or recalled).
    ended_on: BusinessDate | None = None


class AttendanceFacts(BaseModel):
    """What attendance published about a cadre's year: unexcused spot-check absences (from
    closed months where closed, else from the spot checks recorded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cadre_id: Id
    year: Year
    unexcused_absences: Count


class InspectCadre(Command):
    inspection_id: Id
    kind: InspectionKind
    post: Post
    held_on: BusinessDate
    findings: Text = ""
    problems_found: Count = 0
    today: BusinessDate


class InspectTeam(Command):
    inspection_id: Id
    kind: InspectionKind
    team_id: Id
    village_id: Id
    county: County
    township: Name
    held_on: BusinessDate
    findings: Text = ""
    problems_found: Count = 0
    today: BusinessDate


class RecordVillagerEvaluation(Command):
    evaluation_id: Id
    post: Post
    period: EvaluationPeriod
    satisfaction: Percent
    respondents: PositiveCount


class AssessQuarter(Command):
    """The quarterly inputs for one cadre (each part 0-100)."""

    post: Post
    quarter: Quarter
    township_score: Percent
    villager_score: Percent
    county_panel_score: Percent
    #: Id of the 双约谈 obligation opened when the grade is 一般.
    obligation_id: Id
    today: BusinessDate


class RecordAdmonitionTalk(Command):
    obligation_id: Id
    cadre_id: Id
    by: TalkBy
    held_on: BusinessDate
    note: Note = ""
    today: BusinessDate


class PublishLists(Command):
    list_id: Id
    county: County
    quarter: Quarter
    today: BusinessDate


class OpenAnnualRound(Command):
    round_id: Id
    county: County
    year: Year
    today: BusinessDate


class ProposeAnnualGrade(Command):
    """A grade for the round ``round_id`` (``None``: the stream has no round open, which
    the decider refuses)."""

    round_id: Id | None
    county: County
    year: Year
    post: Post
    grade: AnnualGrade
    attendance: AttendanceFacts
    today: BusinessDate


class FinaliseAnnualRound(Command):
    """Finalise the round ``round_id`` (``None``: the stream has no round open, which the
    decider refuses)."""

    round_id: Id | None
    county: County
    year: Year
    today: BusinessDate


class AssessTerm(Command):
    """The term-end assessment; ``attendance`` is the facts of the term's last year."""

    post: Post
    grade: AnnualGrade
    attendance: AttendanceFacts
    today: BusinessDate


class RecordSanction(Command):
    sanction_id: Id
    post: Post
    kind: Name
    decided_on: BusinessDate
    authority: Name
    reason: Note = ""
    today: BusinessDate
