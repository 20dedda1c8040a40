"""Commands to the assessment decider, and the facts from other services they carry.

Ids of new things come with the command (a retried command decides the same events); dates
and "today" come with the command (the decider reads no clock). What the decider needs from
dispatch (the cadre's posts: county, township, the assignment's end) and from attendance
(unexcused spot-check absences in a year) comes from the service's replicas of those topics,
looked up by the use cases (``zhucun.assessment.application``), as ``Post`` and
``AttendanceFacts`` values.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from zhucun.contracts.assessment.events import QUARTER_PATTERN, AnnualGrade, InspectionKind, TalkBy
from zhucun.shared.inputs import Input


class Command(Input):
    """A command to the assessment decider (immutable, no unknown members, strings stripped)."""


class Post(BaseModel):
    """One assignment of a cadre as the dispatch replica knows it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    assignment_id: str
    cadre_id: str
    team_id: str
    village_id: str
    township: str
    county: str
    term_start: date
    term_end: date
    #: Last day on post once the assignment ended (term completed or recalled).
    ended_on: date | None = None


class AttendanceFacts(BaseModel):
    """What attendance published about a cadre's year: unexcused spot-check absences (from
    closed months where closed, else from the spot checks recorded)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cadre_id: str
    year: int
    unexcused_absences: int = Field(ge=0)


class InspectCadre(Command):
    inspection_id: str = Field(min_length=1, max_length=100)
    kind: InspectionKind
    post: Post
    held_on: date
    findings: str = Field(default="", max_length=10_000)
    problems_found: int = Field(default=0, ge=0)
    today: date


class InspectTeam(Command):
    inspection_id: str = Field(min_length=1, max_length=100)
    kind: InspectionKind
    team_id: str
    village_id: str
    county: str
    township: str
    held_on: date
    findings: str = Field(default="", max_length=10_000)
    problems_found: int = Field(default=0, ge=0)
    today: date


class RecordVillagerEvaluation(Command):
    evaluation_id: str = Field(min_length=1, max_length=100)
    post: Post
    period: str = Field(pattern=r"^\d{4}(-Q[1-4])?$")
    satisfaction: float = Field(ge=0, le=100)
    respondents: int = Field(ge=1)


class AssessQuarter(Command):
    """The quarterly inputs for one cadre (each part 0-100)."""

    post: Post
    quarter: str = Field(pattern=QUARTER_PATTERN)
    township_score: float = Field(ge=0, le=100)
    villager_score: float = Field(ge=0, le=100)
    county_panel_score: float = Field(ge=0, le=100)
    #: Id of the 双约谈 obligation opened when the grade is 一般.
    obligation_id: str = Field(min_length=1, max_length=100)
    today: date


class RecordAdmonitionTalk(Command):
    obligation_id: str
    cadre_id: str
    by: TalkBy
    held_on: date
    note: str = Field(default="", max_length=5_000)
    today: date


class PublishLists(Command):
    list_id: str = Field(min_length=1, max_length=100)
    county: str
    quarter: str = Field(pattern=QUARTER_PATTERN)
    today: date


class OpenAnnualRound(Command):
    round_id: str = Field(min_length=1, max_length=100)
    county: str
    year: int = Field(ge=2000, le=2100)
    today: date


class ProposeAnnualGrade(Command):
    round_id: str
    county: str
    year: int
    post: Post
    grade: AnnualGrade
    attendance: AttendanceFacts


class FinaliseAnnualRound(Command):
    round_id: str
    county: str
    year: int
    today: date


class AssessTerm(Command):
    """The term-end assessment; ``attendance`` is the facts of the term's last year."""

    post: Post
    grade: AnnualGrade
    attendance: AttendanceFacts
    today: date


class RecordSanction(Command):
    sanction_id: str = Field(min_length=1, max_length=100)
    post: Post
    kind: str = Field(min_length=1, max_length=200)
    decided_on: date
    authority: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=5_000)
    today: date
