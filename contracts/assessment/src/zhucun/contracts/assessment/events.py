"""The published contract of the assessment service (topic ``assessment.events.v1``).

Every class is one event type, frozen and registered in ``registry``. The read side (recall
decisions, promotion pools, the audit trail) and downstream systems decode them; change a
field only by adding a schema version and an upcaster.

Keys: the cadre id where an event concerns one cadre (per-cadre order), the village id for a
team inspection, the county for a round's and a list's own events.

Streams (one consistency boundary each):

* ``assessment-cadre-{cadre}``: inspections of the cadre, villager evaluations, the term-end
  assessment, sanctions;
* ``assessment-team-{team}``: inspections of a work team;
* ``assessment-quarter-{county}-{YYYY}-Q{n}``: the county's quarterly assessments, the
  admonition-talk obligations (双约谈) they open, and the red and blue lists of the quarter;
* ``assessment-annual-{county}-{YYYY}``: the county's annual round: proposals, finalisation,
  one result per cadre.

Grades are English slugs; the Chinese terms are in the enums' comments.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from zhucun.shared.events import DomainEvent, EventRegistry

registry = EventRegistry()

QUARTER_PATTERN = r"^\d{4}-Q[1-4]$"


# --- vocabulary -----------------------------------------------------------------------------


class QuarterlyGrade(StrEnum):
    GOOD = "good"  # 好
    FAIRLY_GOOD = "fairly_good"  # 较好
    AVERAGE = "average"  # 一般: requires 双约谈
    POOR = "poor"  # 差


class AnnualGrade(StrEnum):
    """Annual and term-end scale, best first."""

    EXCELLENT = "excellent"  # 优秀
    COMPETENT = "competent"  # 称职
    BASICALLY_COMPETENT = "basically_competent"  # 基本称职
    INCOMPETENT = "incompetent"  # 不称职


class InspectionKind(StrEnum):
    WEEKLY_INSPECTION = "weekly_inspection"  # 一周一督查
    MONTHLY_REVIEW = "monthly_review"  # 一月一调度


class TalkBy(StrEnum):
    """Who held an admonition talk of the 双约谈."""

    TOWNSHIP = "township"  # 乡镇党委
    SENDING_UNIT = "sending_unit"  # 派出单位


class GradeCap(BaseModel):
    """Why a proposed annual or term grade was lowered: the attendance facts of the year."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unexcused_absences: int = Field(ge=0)
    #: The best grade those absences allow.
    best_allowed: AnnualGrade
    reason: str


class ListEntry(BaseModel):
    """One cadre on a red or blue list: rank (ties share one), score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: int = Field(ge=1)
    cadre_id: str
    score: float


# --- per cadre (stream assessment-cadre-{cadre}) --------------------------------------------


@registry.register
class CadreInspected(DomainEvent):
    """A weekly inspection (督查) or monthly review (调度) of one cadre, with its findings."""

    event_type: ClassVar[str] = "assessment.CadreInspected"
    key_field: ClassVar[str] = "cadre_id"
    inspection_id: str
    kind: InspectionKind
    cadre_id: str
    county: str
    township: str
    held_on: date
    findings: str = Field(default="", max_length=10_000)
    #: Problems found that must be put right (0 when all was in order).
    problems_found: int = Field(default=0, ge=0)


@registry.register
class VillagerEvaluationRecorded(DomainEvent):
    """Villagers' evaluation (群众评议) of the cadre for ``period`` (``YYYY`` or ``YYYY-Qn``):
    satisfaction 0-100 among ``respondents`` people."""

    event_type: ClassVar[str] = "assessment.VillagerEvaluationRecorded"
    key_field: ClassVar[str] = "cadre_id"
    evaluation_id: str
    cadre_id: str
    county: str
    period: str = Field(pattern=r"^\d{4}(-Q[1-4])?$")
    satisfaction: float = Field(ge=0, le=100)
    respondents: int = Field(ge=1)


@registry.register
class TermAssessed(DomainEvent):
    """The term-end assessment of an assignment, on the annual scale. ``proposed_grade`` is
    what the county proposed; ``grade`` the grade given after ``cap`` (attendance facts)."""

    event_type: ClassVar[str] = "assessment.TermAssessed"
    key_field: ClassVar[str] = "cadre_id"
    assignment_id: str
    cadre_id: str
    county: str
    term_end: date
    proposed_grade: AnnualGrade
    grade: AnnualGrade
    cap: GradeCap | None = None
    policy_version: str


@registry.register
class SanctionRecorded(DomainEvent):
    """A disciplinary sanction against the cadre (the read side recommends a recall)."""

    event_type: ClassVar[str] = "assessment.SanctionRecorded"
    key_field: ClassVar[str] = "cadre_id"
    sanction_id: str
    cadre_id: str
    county: str
    kind: str = Field(min_length=1, max_length=200)
    decided_on: date
    authority: str = Field(min_length=1, max_length=200)
    reason: str = Field(default="", max_length=5_000)


# --- per team (stream assessment-team-{team}) -----------------------------------------------


@registry.register
class TeamInspected(DomainEvent):
    """A weekly inspection or monthly review of a whole work team."""

    event_type: ClassVar[str] = "assessment.TeamInspected"
    key_field: ClassVar[str] = "village_id"
    inspection_id: str
    kind: InspectionKind
    team_id: str
    village_id: str
    county: str
    township: str
    held_on: date
    findings: str = Field(default="", max_length=10_000)
    problems_found: int = Field(default=0, ge=0)


# --- quarters (stream assessment-quarter-{county}-{quarter}) --------------------------------


@registry.register
class QuarterlyAssessed(DomainEvent):
    """The cadre's quarterly assessment (一季一考核): each part scored 0-100, ``score`` their
    weighted sum under ``policy_version``, and the grade of that score."""

    event_type: ClassVar[str] = "assessment.QuarterlyAssessed"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: str
    county: str
    township: str
    quarter: str = Field(pattern=QUARTER_PATTERN)
    township_score: float = Field(ge=0, le=100)
    villager_score: float = Field(ge=0, le=100)
    county_panel_score: float = Field(ge=0, le=100)
    score: float = Field(ge=0, le=100)
    grade: QuarterlyGrade
    policy_version: str


@registry.register
class AdmonitionTalksRequired(DomainEvent):
    """A quarterly 一般 opened the 双约谈 obligation: talks by the township and by the sending
    unit, both due by ``due_on``."""

    event_type: ClassVar[str] = "assessment.AdmonitionTalksRequired"
    key_field: ClassVar[str] = "cadre_id"
    obligation_id: str
    cadre_id: str
    quarter: str = Field(pattern=QUARTER_PATTERN)
    due_on: date


@registry.register
class AdmonitionTalkHeld(DomainEvent):
    """One of the two talks of an obligation was held."""

    event_type: ClassVar[str] = "assessment.AdmonitionTalkHeld"
    key_field: ClassVar[str] = "cadre_id"
    obligation_id: str
    cadre_id: str
    by: TalkBy
    held_on: date
    note: str = Field(default="", max_length=5_000)


@registry.register
class AdmonitionTalksCompleted(DomainEvent):
    """Both talks were held: the obligation is fulfilled (``overdue`` when after the due
    date)."""

    event_type: ClassVar[str] = "assessment.AdmonitionTalksCompleted"
    key_field: ClassVar[str] = "cadre_id"
    obligation_id: str
    cadre_id: str
    completed_on: date
    overdue: bool


@registry.register
class RedBlueListsPublished(DomainEvent):
    """The red (best) and blue (worst) lists (红蓝榜) of the county for ``quarter``, by
    quarterly score; cadres tied at a list's edge are all on it."""

    event_type: ClassVar[str] = "assessment.RedBlueListsPublished"
    key_field: ClassVar[str] = "county"
    list_id: str
    county: str
    quarter: str = Field(pattern=QUARTER_PATTERN)
    red: tuple[ListEntry, ...]
    blue: tuple[ListEntry, ...]
    cadres_ranked: int = Field(ge=0)
    published_on: date
    policy_version: str


# --- annual rounds (stream assessment-annual-{county}-{year}) -------------------------------


@registry.register
class AnnualRoundOpened(DomainEvent):
    """The county's annual assessment (年终算总账) for ``year`` is open for proposals."""

    event_type: ClassVar[str] = "assessment.AnnualRoundOpened"
    key_field: ClassVar[str] = "county"
    round_id: str
    county: str
    year: int = Field(ge=2000, le=2100)
    opened_on: date


@registry.register
class AnnualGradeProposed(DomainEvent):
    """A grade proposed for one cadre in the round (a later proposal replaces it until the
    round is finalised). ``grade`` is ``proposed_grade`` after ``cap``."""

    event_type: ClassVar[str] = "assessment.AnnualGradeProposed"
    key_field: ClassVar[str] = "cadre_id"
    round_id: str
    county: str
    year: int
    cadre_id: str
    proposed_grade: AnnualGrade
    grade: AnnualGrade
    cap: GradeCap | None = None
    policy_version: str


@registry.register
class AnnualRoundFinalised(DomainEvent):
    """The round is final: ``excellent`` 优秀 among ``cadres_assessed``, within
    ``excellent_cap`` = floor(share x cadres assessed). One ``AnnualResultIssued`` per cadre
    follows."""

    event_type: ClassVar[str] = "assessment.AnnualRoundFinalised"
    key_field: ClassVar[str] = "county"
    round_id: str
    county: str
    year: int
    finalised_on: date
    cadres_assessed: int = Field(ge=0)
    excellent: int = Field(ge=0)
    excellent_cap: int = Field(ge=0)
    policy_version: str


@registry.register
class AnnualResultIssued(DomainEvent):
    """A cadre's final annual grade for ``year``."""

    event_type: ClassVar[str] = "assessment.AnnualResultIssued"
    key_field: ClassVar[str] = "cadre_id"
    round_id: str
    county: str
    year: int
    cadre_id: str
    grade: AnnualGrade
    cap: GradeCap | None = None
