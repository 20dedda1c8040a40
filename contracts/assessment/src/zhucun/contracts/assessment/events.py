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

Every field is bounded with the types of ``zhucun.shared.bounds`` (ids, names, texts, dates
of the window, quarters, years, strict counts and scores), so the AsyncAPI document shows
each bound as the service enforces it; lists of cadres are at most a county's cadres
(:data:`COUNTY_CADRES_MAX`) and hold each cadre once. The bounds were tightened without a
schema version bump, Zhucun not being in production yet: an event written earlier decodes as
before when its values lie within them (all the service's own deciders ever produced from
sane input do); one outside them (a NUL in a finding, the year 2100) no longer decodes.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from zhucun.shared.bounds import (
    BusinessDate,
    Count,
    Flag,
    Id,
    Name,
    Note,
    Percent,
    PolicyVersion,
    PositiveCount,
    Quarter,
    Text,
    Year,
)
from zhucun.shared.events import DomainEvent, EventRegistry

registry = EventRegistry()

#: A villager evaluation's period: a year (``2025``) or a quarter (``2025-Q2``) of the window.
EVALUATION_PERIOD_PATTERN: Final = r"^20\d{2}(-Q[1-4])?$"
#: A GB/T 2260 division code as the routes take it (``zhucun.shared.http.CountyCode``): a
#: county's six digits, or a prefecture's four or a province's two.
COUNTY_PATTERN: Final = r"^\d{2}(\d{2}){0,2}$"
#: The most cadres one county holds (a county sends a few hundred; ten thousand is far
#: above any): the bound of every list of a county's cadres.
COUNTY_CADRES_MAX: Final = 10_000

County = Annotated[str, StringConstraints(pattern=COUNTY_PATTERN)]
EvaluationPeriod = Annotated[str, StringConstraints(pattern=EVALUATION_PERIOD_PATTERN)]


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

    unexcused_absences: Count
    #: The best grade those absences allow.
    best_allowed: AnnualGrade
    reason: Note


class ListEntry(BaseModel):
    """One cadre on a red or blue list: rank (ties share one), score."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rank: Annotated[PositiveCount, Field(le=COUNTY_CADRES_MAX)]
    cadre_id: Id
    score: Percent


def _each_cadre_once(entries: tuple[ListEntry, ...]) -> tuple[ListEntry, ...]:
    seen: set[str] = set()
    for entry in entries:
        if entry.cadre_id in seen:
            raise ValueError(f"cadre {entry.cadre_id!r} is on the list twice")
        seen.add(entry.cadre_id)
    return entries


#: A red or blue list: at most a county's cadres, each once.
CadreList = Annotated[
    tuple[ListEntry, ...],
    Field(max_length=COUNTY_CADRES_MAX, json_schema_extra={"x-unique-by": "cadre_id"}),
    AfterValidator(_each_cadre_once),
]


# --- per cadre (stream assessment-cadre-{cadre}) --------------------------------------------


@registry.register
class CadreInspected(DomainEvent):
    """A weekly inspection (督查) or monthly review (调度) of one cadre, with its findings."""

    event_type: ClassVar[str] = "assessment.CadreInspected"
    key_field: ClassVar[str] = "cadre_id"
    inspection_id: Id
    kind: InspectionKind
    cadre_id: Id
    county: County
    township: Name
    held_on: BusinessDate
    findings: Text = ""
    #: Problems found that must be put right (0 when all was in order).
    problems_found: Count = 0


@registry.register
class VillagerEvaluationRecorded(DomainEvent):
    """Villagers' evaluation (群众评议) of the cadre for ``period`` (``YYYY`` or ``YYYY-Qn``):
    satisfaction 0-100 among ``respondents`` people."""

    event_type: ClassVar[str] = "assessment.VillagerEvaluationRecorded"
    key_field: ClassVar[str] = "cadre_id"
    evaluation_id: Id
    cadre_id: Id
    county: County
    period: EvaluationPeriod
    satisfaction: Percent
    respondents: PositiveCount


@registry.register
class TermAssessed(DomainEvent):
    """The term-end assessment of an assignment, on the annual scale. ``proposed_grade`` is
    what the county proposed; ``grade`` the grade given after ``cap`` (attendance facts)."""

    event_type: ClassVar[str] = "assessment.TermAssessed"
    key_field: ClassVar[str] = "cadre_id"
    assignment_id: Id
    cadre_id: Id
    county: County
    term_end: BusinessDate
    proposed_grade: AnnualGrade
    grade: AnnualGrade
    cap: GradeCap | None = None
    policy_version: PolicyVersion


@registry.register
class SanctionRecorded(DomainEvent):
    """A disciplinary sanction against the cadre (the read side recommends a recall)."""

    event_type: ClassVar[str] = "assessment.SanctionRecorded"
    key_field: ClassVar[str] = "cadre_id"
    sanction_id: Id
    cadre_id: Id
    county: County
    kind: Name
    decided_on: BusinessDate
    authority: Name
    reason: Note = ""


# --- per team (stream assessment-team-{team}) -----------------------------------------------


@registry.register
class TeamInspected(DomainEvent):
    """A weekly inspection or monthly review of a whole work team."""

    event_type: ClassVar[str] = "assessment.TeamInspected"
    key_field: ClassVar[str] = "village_id"
    inspection_id: Id
    kind: InspectionKind
    team_id: Id
    village_id: Id
    county: County
    township: Name
    held_on: BusinessDate
    findings: Text = ""
    problems_found: Count = 0


# --- quarters (stream assessment-quarter-{county}-{quarter}) --------------------------------


@registry.register
class QuarterlyAssessed(DomainEvent):
    """The cadre's quarterly assessment (一季一考核): each part scored 0-100, ``score`` their
    weighted sum under ``policy_version``, and the grade of that score."""

    event_type: ClassVar[str] = "assessment.QuarterlyAssessed"
    key_field: ClassVar[str] = "cadre_id"
    cadre_id: Id
    county: County
    township: Name
    quarter: Quarter
    township_score: Percent
    villager_score: Percent
    county_panel_score: Percent
    score: Percent
    grade: QuarterlyGrade
    policy_version: PolicyVersion


@registry.register
class AdmonitionTalksRequired(DomainEvent):
    """A quarterly 一般 opened the 双约谈 obligation: talks by the township and by the sending
    unit, both due by ``due_on``."""

    event_type: ClassVar[str] = "assessment.AdmonitionTalksRequired"
    key_field: ClassVar[str] = "cadre_id"
    obligation_id: Id
    cadre_id: Id
    quarter: Quarter
    due_on: BusinessDate


@registry.register
class AdmonitionTalkHeld(DomainEvent):
    """One of the two talks of an obligation was held."""

    event_type: ClassVar[str] = "assessment.AdmonitionTalkHeld"
    key_field: ClassVar[str] = "cadre_id"
    obligation_id: Id
    cadre_id: Id
    by: TalkBy
    held_on: BusinessDate
    note: Note = ""


@registry.register
class AdmonitionTalksCompleted(DomainEvent):
    """Both talks were held: the obligation is fulfilled (``overdue`` when after the due
    date)."""

    event_type: ClassVar[str] = "assessment.AdmonitionTalksCompleted"
    key_field: ClassVar[str] = "cadre_id"
    obligation_id: Id
    cadre_id: Id
    completed_on: BusinessDate
    overdue: Flag


@registry.register
class RedBlueListsPublished(DomainEvent):
    """The red (best) and blue (worst) lists (红蓝榜) of the county for ``quarter``, by
    quarterly score; cadres tied at a list's edge are all on it."""

    event_type: ClassVar[str] = "assessment.RedBlueListsPublished"
    key_field: ClassVar[str] = "county"
    list_id: Id
    county: County
    quarter: Quarter
    red: CadreList
    blue: CadreList
    cadres_ranked: Annotated[Count, Field(le=COUNTY_CADRES_MAX)]
    published_on: BusinessDate
    policy_version: PolicyVersion


# --- annual rounds (stream assessment-annual-{county}-{year}) -------------------------------


@registry.register
class AnnualRoundOpened(DomainEvent):
    """The county's annual assessment (年终算总账) for ``year`` is open for proposals."""

    event_type: ClassVar[str] = "assessment.AnnualRoundOpened"
    key_field: ClassVar[str] = "county"
    round_id: Id
    county: County
    year: Year
    opened_on: BusinessDate


@registry.register
class AnnualGradeProposed(DomainEvent):
    """A grade proposed for one cadre in the round (a later proposal replaces it until the
    round is finalised). ``grade`` is ``proposed_grade`` after ``cap``."""

    event_type: ClassVar[str] = "assessment.AnnualGradeProposed"
    key_field: ClassVar[str] = "cadre_id"
    round_id: Id
    county: County
    year: Year
    cadre_id: Id
    proposed_grade: AnnualGrade
    grade: AnnualGrade
    cap: GradeCap | None = None
    policy_version: PolicyVersion


@registry.register
class AnnualRoundFinalised(DomainEvent):
    """The round is final: ``excellent`` 优秀 among ``cadres_assessed``, within
    ``excellent_cap`` = floor(share x cadres assessed). One ``AnnualResultIssued`` per cadre
    follows."""

    event_type: ClassVar[str] = "assessment.AnnualRoundFinalised"
    key_field: ClassVar[str] = "county"
    round_id: Id
    county: County
    year: Year
    finalised_on: BusinessDate
    cadres_assessed: Annotated[Count, Field(le=COUNTY_CADRES_MAX)]
    excellent: Annotated[Count, Field(le=COUNTY_CADRES_MAX)]
    excellent_cap: Annotated[Count, Field(le=COUNTY_CADRES_MAX)]
    policy_version: PolicyVersion


@registry.register
class AnnualResultIssued(DomainEvent):
    """A cadre's final annual grade for ``year``."""

    event_type: ClassVar[str] = "assessment.AnnualResultIssued"
    key_field: ClassVar[str] = "cadre_id"
    round_id: Id
    county: County
    year: Year
    cadre_id: Id
    grade: AnnualGrade
    cap: GradeCap | None = None
