"""The published contract of the dispatch service (topic ``dispatch.events.v1``).

Every class here is one event type, frozen and registered in ``registry``. Names and fields
are stable: downstream systems (attendance's replica of assignments and geofences, the
provincial dashboard, payroll, the projections) decode them. Change a field only by adding a
schema version and an upcaster.

Kafka key (``key_field``): the cadre id where an event concerns one cadre, so one cadre's
history stays in order; else the village id (a handover or a replacement obligation keeps its
whole lifecycle on the village's key); round events, which concern neither, use the county.

Vocabulary values (enums) are English slugs; the Chinese terms are in the docstrings.
Personal data is limited to what the rules need: no names, a birth *year*, no contact data.

Bounds (``zhucun.shared.bounds``, docs/domain.md "Bounds of the contracts"): ids are ``Id``
(township codes too: they travel in tokens, paths and keys), a county is its division code
(``County``), typed names are ``Name``, a recall's reason is a ``Note``, dates are
``BusinessDate`` (joining the Party a ``HistoricDate``), counts are strict ``Count``, a
geofence is a latitude, a longitude and 1 to 50,000 metres, and a list of vocabulary values
holds each value at most once. The bounds were tightened in version 1.1.0 without a schema
version: Zhucun is not in production, so no stored event needs an upcaster (one written
before that breaks them, such as a 10^12 m radius, no longer decodes, as intended).
"""

from __future__ import annotations

from collections.abc import Hashable
from enum import StrEnum
from typing import Annotated, ClassVar, Final, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StringConstraints

from zhucun.shared.bounds import (
    COUNT_MAX,
    BusinessDate,
    Count,
    Flag,
    HistoricDate,
    Id,
    Latitude,
    Longitude,
    Name,
    Note,
    RadiusMetres,
)
from zhucun.shared.events import DomainEvent, EventRegistry

registry = EventRegistry()

_H = TypeVar("_H", bound=Hashable)


def _distinct(items: tuple[_H, ...]) -> tuple[_H, ...]:
    if len(set(items)) != len(items):
        raise ValueError("must not hold an item twice")
    return items


#: A GB/T 2260 division code, as the routes take it (``zhucun.shared.http.CountyCode``): a
#: county's six digits (or a prefecture's four, a province's two).
COUNTY_PATTERN: Final = r"^\d{2}(\d{2}){0,2}$"
County = Annotated[str, StringConstraints(pattern=COUNTY_PATTERN)]

#: ``uniqueItems`` in the schemas: a list of vocabulary values holds each at most once.
_UNIQUE: Final = Field(json_schema_extra={"uniqueItems": True})


# --- vocabulary -----------------------------------------------------------------------------


class VillageCategory(StrEnum):
    """Village categories (a village may have several)."""

    LIFTED_OUT_OF_POVERTY = "lifted_out_of_poverty"  # 脱贫村
    KEY_ASSISTANCE = "key_assistance"  # 乡村振兴重点帮扶村
    DEMONSTRATION = "demonstration"  # 示范创建村
    RELOCATION_SETTLEMENT = "relocation_settlement"  # 易地扶贫搬迁安置点
    WEAK_PARTY_BRANCH = "weak_party_branch"  # 党组织软弱涣散村
    WEAK_COLLECTIVE_ECONOMY = "weak_collective_economy"  # 集体经济薄弱村
    BORDER = "border"  # 抵边村


class Expertise(StrEnum):
    """What a village may ask for (村"点菜") and what a cadre can offer: one vocabulary, so
    needs and skills can be matched."""

    INDUSTRY = "industry"  # 产业发展
    FARMING_TECHNIQUE = "farming_technique"  # 种养技术
    PLANNING = "planning"  # 村庄规划
    PARTY_BUILDING = "party_building"  # 基层党建
    GOVERNANCE = "governance"  # 乡村治理
    ECOMMERCE = "ecommerce"  # 电商
    FINANCE = "finance"  # 金融
    LAW = "law"  # 法律
    HEALTH = "health"  # 医疗卫生
    EDUCATION = "education"  # 教育


class UnitKind(StrEnum):
    """Kind of sending unit (派出单位)."""

    ECONOMIC_DEPARTMENT = "economic_department"  # 经济部门
    PARTY_MASS_ORGANISATION = "party_mass_organisation"  # 党群部门
    LINE_DEPARTMENT = "line_department"  # 业务部门
    STATE_ENTERPRISE = "state_enterprise"  # 国有企业
    PUBLIC_INSTITUTION = "public_institution"  # 事业单位


class UnitLevel(StrEnum):
    """Level of the sending unit: 省 / 市(州) / 县."""

    PROVINCE = "province"
    CITY = "city"
    COUNTY = "county"


class Role(StrEnum):
    FIRST_SECRETARY = "first_secretary"  # 驻村第一书记 (team leader)
    MEMBER = "member"  # 工作队员


class AssignmentKind(StrEnum):
    INITIAL = "initial"  # sent with the round
    REPLACEMENT = "replacement"  # 调整撤换: fills the vacancy left by a recall
    REINFORCEMENT = "reinforcement"  # 增派: an extra member for a running team


class EndReason(StrEnum):
    TERM_COMPLETED = "term_completed"
    RECALLED = "recalled"


class HandoverItem(StrEnum):
    """The five items of the handover "五个一"."""

    HANDOVER_LIST = "handover_list"  # 一份交接清单
    JOINT_VILLAGE_TOUR = "joint_village_tour"  # 一次联合走村
    JOINT_HOUSEHOLD_VISITS = "joint_household_visits"  # 一次联合入户
    SPECIAL_MEETING = "special_meeting"  # 一次专题会议
    TRAINING = "training"  # 一次培训


#: A village's categories, each at most once.
Categories = Annotated[
    tuple[VillageCategory, ...],
    Field(max_length=len(VillageCategory)),
    _UNIQUE,
    AfterValidator(_distinct),
]
#: Needs or skills, each at most once.
Expertises = Annotated[
    tuple[Expertise, ...],
    Field(max_length=len(Expertise)),
    _UNIQUE,
    AfterValidator(_distinct),
]
#: Items of the handover 五个一, each at most once.
HandoverItems = Annotated[
    tuple[HandoverItem, ...],
    Field(max_length=len(HandoverItem)),
    _UNIQUE,
    AfterValidator(_distinct),
]
#: A difference of two counts.
CountChange = Annotated[int, Strict(), Field(ge=-COUNT_MAX, le=COUNT_MAX)]
#: A soft rule's stable code: a lower-case slug.
WarningCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
#: A cadre's birth year: of working age at some point of the system's window.
BirthYear = Annotated[int, Strict(), Field(ge=1940, le=2015)]
#: Years of rural work: at most a working life.
RuralYears = Annotated[int, Strict(), Field(ge=0, le=60)]
#: Soft rules a decision checks are few (four for an assignment, one per unit level at a
#: round's close): far above them.
WARNINGS_MAX: Final = 16


class Geofence(BaseModel):
    """The village's presence circle (attendance checks evidence against it): at most
    50 km across (a mountain village's scattered hamlets)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    latitude: Latitude
    longitude: Longitude
    radius_m: RadiusMetres


class RuleWarning(BaseModel):
    """A soft rule that was not met: the decision stands, the warning is on record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: WarningCode
    message: Note


#: The soft rules a decision did not meet.
RuleWarnings = Annotated[tuple[RuleWarning, ...], Field(max_length=WARNINGS_MAX)]


class LevelComparison(BaseModel):
    """Cadres sent at one unit level in a round, against the previous round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: UnitLevel
    sent: Count
    previous: Count | None
    #: ``sent - previous``; None for a county's first round.
    change: CountChange | None
    #: The principle "省市只增不减、县级只减不增" is broken at this level.
    violation: Flag


class RoundReport(BaseModel):
    """The numbers of a round at its close, compared with the county's previous round."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    round_id: Id
    previous_round_id: Id | None
    teams: Count
    #: One entry per unit level.
    levels: Annotated[tuple[LevelComparison, ...], Field(max_length=len(UnitLevel))]

    @property
    def violations(self) -> tuple[LevelComparison, ...]:
        return tuple(level for level in self.levels if level.violation)

    def level(self, level: UnitLevel) -> LevelComparison:
        return next(entry for entry in self.levels if entry.level is level)


# --- villages -------------------------------------------------------------------------------


class _VillageProfile(DomainEvent):
    village_id: Id
    name: Name
    #: The township's code (the one a township user's token names).
    township: Id
    categories: Categories
    geofence: Geofence
    households: Count
    #: People under poverty-relapse monitoring (防返贫监测对象); drives the team size.
    monitored_population: Count


@registry.register
class VillageRegistered(_VillageProfile):
    """A village entered the county's dispatch register (it may now get a team)."""

    event_type: ClassVar[str] = "dispatch.VillageRegistered"
    key_field: ClassVar[str] = "village_id"
    county: County


@registry.register
class VillageUpdated(_VillageProfile):
    """The village's profile after a correction or a change of category: every field is the
    new value (a full snapshot, not a diff)."""

    event_type: ClassVar[str] = "dispatch.VillageUpdated"
    key_field: ClassVar[str] = "village_id"


@registry.register
class VillageNeedsDeclared(DomainEvent):
    """The village declared what help it needs (村"点菜"); replaces earlier declarations."""

    event_type: ClassVar[str] = "dispatch.VillageNeedsDeclared"
    key_field: ClassVar[str] = "village_id"
    village_id: Id
    needs: Expertises
    declared_on: BusinessDate


# --- cadres ---------------------------------------------------------------------------------


class _CadreProfile(DomainEvent):
    cadre_id: Id
    sending_unit: Name
    unit_kind: UnitKind
    unit_level: UnitLevel
    birth_year: BirthYear
    #: Date of admission to the party; None when not a party member.
    party_member_since: HistoricDate | None
    rural_experience_years: RuralYears
    skills: Expertises


@registry.register
class CadreRegistered(_CadreProfile):
    """A cadre's dispatch file is held by the county: they may be matched and assigned there.
    A cadre is registered in one county at a time."""

    event_type: ClassVar[str] = "dispatch.CadreRegistered"
    key_field: ClassVar[str] = "cadre_id"
    county: County


@registry.register
class CadreUpdated(_CadreProfile):
    """The cadre's profile after an update: every field is the new value."""

    event_type: ClassVar[str] = "dispatch.CadreUpdated"
    key_field: ClassVar[str] = "cadre_id"


# --- rounds and teams -----------------------------------------------------------------------


@registry.register
class RoundOpened(DomainEvent):
    """The county opened a dispatch round (批次): teams may be formed and cadres assigned."""

    event_type: ClassVar[str] = "dispatch.RoundOpened"
    key_field: ClassVar[str] = "county"
    round_id: Id
    county: County
    name: Name
    opened_on: BusinessDate


@registry.register
class TeamFormed(DomainEvent):
    """A village gets a work team in a round, before anyone is assigned (先定村、再定人)."""

    event_type: ClassVar[str] = "dispatch.TeamFormed"
    key_field: ClassVar[str] = "village_id"
    team_id: Id
    round_id: Id
    county: County
    village_id: Id
    formed_on: BusinessDate


@registry.register
class CadreAssigned(DomainEvent):
    """A cadre starts an assignment to a team, as first secretary or member.

    ``kind`` says why: sent with the round, a replacement for a recalled cadre (``replaces``
    names the recalled assignment) or a reinforcement of a running team. ``warnings`` lists
    the soft rules not met (age above the normal limit, no 一老一新 or 一深一浅 mix, a term
    shorter than normal). The assignment is active from ``term_start`` until an
    ``AssignmentEnded``; ``term_end`` is the planned end.
    """

    event_type: ClassVar[str] = "dispatch.CadreAssigned"
    key_field: ClassVar[str] = "cadre_id"
    assignment_id: Id
    cadre_id: Id
    team_id: Id
    round_id: Id
    county: County
    village_id: Id
    role: Role
    kind: AssignmentKind
    replaces: Id | None = None
    term_start: BusinessDate
    term_end: BusinessDate
    warnings: RuleWarnings = ()
    policy_version: Id


@registry.register
class AssignmentEnded(DomainEvent):
    """An assignment is over (term completed, or recalled): the cadre is off post from
    ``ended_on`` and free for another assignment. Every end of an assignment emits this event,
    whatever the cause, so consumers need only this one to track who is on post."""

    event_type: ClassVar[str] = "dispatch.AssignmentEnded"
    key_field: ClassVar[str] = "cadre_id"
    assignment_id: Id
    cadre_id: Id
    team_id: Id
    village_id: Id
    ended_on: BusinessDate
    reason: EndReason


@registry.register
class CadreRecalled(DomainEvent):
    """The county recalled a cadre (召回) before the end of the term, for ``reason``, citing
    the recall decision (from the decisions service) when there is one. Followed by
    ``AssignmentEnded`` and ``ReplacementObligationOpened``."""

    event_type: ClassVar[str] = "dispatch.CadreRecalled"
    key_field: ClassVar[str] = "cadre_id"
    assignment_id: Id
    cadre_id: Id
    team_id: Id
    village_id: Id
    recalled_on: BusinessDate
    reason: Note
    decision_id: Id | None = None


@registry.register
class ReplacementObligationOpened(DomainEvent):
    """A recall left a vacancy in a team: it must be filled by a replacement (调整撤换)."""

    event_type: ClassVar[str] = "dispatch.ReplacementObligationOpened"
    key_field: ClassVar[str] = "village_id"
    obligation_id: Id
    team_id: Id
    village_id: Id
    role: Role
    vacated_assignment_id: Id
    opened_on: BusinessDate


@registry.register
class ReplacementObligationClosed(DomainEvent):
    """The vacancy was filled: ``replacement_assignment_id`` is the new cadre's assignment."""

    event_type: ClassVar[str] = "dispatch.ReplacementObligationClosed"
    key_field: ClassVar[str] = "village_id"
    obligation_id: Id
    team_id: Id
    village_id: Id
    replacement_assignment_id: Id
    closed_on: BusinessDate


@registry.register
class TownshipLeaderAppointed(DomainEvent):
    """One of the township's resident cadres is appointed township team leader (乡镇队长)
    for ``term_start``..``term_end``, besides their own village work."""

    event_type: ClassVar[str] = "dispatch.TownshipLeaderAppointed"
    key_field: ClassVar[str] = "cadre_id"
    appointment_id: Id
    county: County
    township: Id
    cadre_id: Id
    assignment_id: Id
    term_start: BusinessDate
    term_end: BusinessDate
    #: Active assignments in the township at the appointment (the rule's evidence).
    cadres_in_township: Count
    policy_version: Id


# --- handovers ------------------------------------------------------------------------------


@registry.register
class HandoverOpened(DomainEvent):
    """A cadre succeeds another in a village (a new first secretary, or a replacement): the
    five items of "五个一" are now due. The handover stays open until all are completed."""

    event_type: ClassVar[str] = "dispatch.HandoverOpened"
    key_field: ClassVar[str] = "village_id"
    handover_id: Id
    village_id: Id
    predecessor_cadre_id: Id
    predecessor_assignment_id: Id
    successor_cadre_id: Id
    successor_assignment_id: Id
    opened_on: BusinessDate
    items: HandoverItems


@registry.register
class HandoverItemCompleted(DomainEvent):
    """One of the five handover items was done."""

    event_type: ClassVar[str] = "dispatch.HandoverItemCompleted"
    key_field: ClassVar[str] = "village_id"
    handover_id: Id
    village_id: Id
    item: HandoverItem
    completed_on: BusinessDate


@registry.register
class HandoverCompleted(DomainEvent):
    """All five items of the handover are done."""

    event_type: ClassVar[str] = "dispatch.HandoverCompleted"
    key_field: ClassVar[str] = "village_id"
    handover_id: Id
    village_id: Id
    completed_on: BusinessDate


@registry.register
class RoundClosed(DomainEvent):
    """The round's dispatching is done: team sizes and first secretaries were checked, and
    ``report`` compares the numbers sent per unit level with the county's previous round,
    flagging breaches of "省市只增不减、县级只减不增"; each breach is also a ``warnings`` entry
    (``unit_level_decreased`` for province and city units, ``county_level_increased`` for
    county units). Recalls, replacements and reinforcements of the round's teams continue
    after the close."""

    event_type: ClassVar[str] = "dispatch.RoundClosed"
    key_field: ClassVar[str] = "county"
    round_id: Id
    county: County
    closed_on: BusinessDate
    report: RoundReport
    #: One per breach of the principle, as the report's violations (new in 1.1.0 of the
    #: contract: a record of 1.0.0, without it, decodes with none).
    warnings: RuleWarnings = ()
    policy_version: Id
