"""Versioned policy packs: every threshold of docs/domain.md, per jurisdiction and date.

A *pack* is one TOML file in ``policies/``: a version string (what events record), the date
it takes effect, the jurisdiction it governs and one table per section (``[dispatch]``,
``[attendance]``, ``[assessment]``, ``[decisions]``). Numbers are never constants in code: a
section's fields have no defaults, so each pack states every rule it applies and an auditor
reading an event's ``policy_version`` can read exactly which numbers were used.

Jurisdictions are ``"default"`` or an administrative division code (GB/T 2260), written
either short (``"53"`` Yunnan, ``"5301"`` Kunming, ``"530102"`` a county) or as the usual six
digits with trailing zeros (``"530000"``, ``"530100"``). A pack covers a county when its code
is a prefix of the county's code; ``"default"`` covers everything.

``PolicyBook.in_force(county, on)`` picks, among the packs covering the county with an
effective date not after ``on``, the most specific jurisdiction and then the latest date.
Packs are complete, not layered: a county pack replaces the province's pack as a whole, so
one version string is enough to say which rules applied.
"""

from __future__ import annotations

import calendar
import re
import tomllib
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_JURISDICTION = "default"
_DIVISION_CODE = re.compile(r"^\d{2}(\d{2}){0,2}$")


class PolicyError(Exception):
    """Base of the policy module's errors."""


class PolicyFileError(PolicyError):
    """A pack file cannot be read or does not match the pack schema."""


class DuplicatePolicy(PolicyError):
    """Two packs share a version, or a jurisdiction and effective date (ambiguous)."""


class NoPolicyInForce(PolicyError):
    """No pack covers the jurisdiction on the date asked."""


class PolicySectionMissing(PolicyError):
    """The pack in force has no section for the rules a command needs."""


class PolicySection(BaseModel):
    """Base of a pack section: frozen, and strict so that a misspelt key fails loudly."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class DispatchPolicy(PolicySection):
    """Rules of 派 (dispatch): team composition, eligibility, terms, township leaders."""

    #: Team size (first secretary + members), normally 3..5.
    team_size_min: int = Field(ge=1)
    team_size_max: int = Field(ge=1)
    #: Villages with at least this many people under poverty-relapse monitoring get a larger
    #: team (Yunnan: 200 people -> 1 + 4).
    large_village_monitored_population: int = Field(ge=0)
    large_village_team_size_min: int = Field(ge=1)
    #: Years of party standing a first secretary needs at the start of the term
    #: (1 = past the probationary year, a full member).
    first_secretary_min_party_years: int = Field(ge=0)
    #: Age normally not exceeded ("45 or under"); above it the assignment is accepted with a
    #: warning.
    normal_max_age: int = Field(ge=18)
    #: "一老一新": a team should have someone at least this old and someone younger.
    age_mix_threshold: int = Field(ge=18)
    #: "一深一浅": someone with at least this many years of rural work and someone with fewer.
    experienced_rural_years: int = Field(ge=1)
    #: A term normally lasts at least this long ("at least 2 years").
    min_term_months: int = Field(ge=1)
    #: A township needs this many assigned cadres before one is appointed leader.
    township_leader_min_cadres: int = Field(ge=1)
    township_leader_term_months: int = Field(ge=1)
    #: Every weak-party-branch village (党组织软弱涣散村) gets a first secretary.
    weak_branch_village_requires_first_secretary: bool

    @model_validator(mode="after")
    def _sizes_are_consistent(self) -> Self:
        if not self.team_size_min <= self.large_village_team_size_min <= self.team_size_max:
            raise ValueError(
                "team sizes must satisfy team_size_min <= large_village_team_size_min"
                " <= team_size_max"
            )
        return self

    def team_size_bounds(self, monitored_population: int) -> tuple[int, int]:
        """(minimum, maximum) team size for a village with this monitored population."""
        if monitored_population >= self.large_village_monitored_population:
            return self.large_village_team_size_min, self.team_size_max
        return self.team_size_min, self.team_size_max


class AttendancePolicy(PolicySection):
    """Rules of 管 (attendance): days in the village, leave approval, evidence checks."""

    #: "吃住在村": at least ``minimum_days`` in the village per ``minimum_period`` (20 a month
    #: by default; other packs: 50 a quarter, 200 a year). A month close requires the
    #: prorated share: ceil(minimum_days x eligible days / days in the period).
    minimum_days: int = Field(ge=0)
    minimum_period: Literal["month", "quarter", "year"]
    #: Leave of up to this many days is approved by the township party committee; longer
    #: leave by the county organisation department.
    township_leave_approval_max_days: int = Field(ge=0)
    #: Personal and sick leave beyond this many days in a calendar year → recall (read side).
    annual_leave_limit_days: int = Field(ge=0)
    #: Two check-ins implying a faster journey than this are flagged as impossible travel.
    max_travel_speed_kmh: float = Field(gt=0)
    #: A new cadre visits every household of the village within this many days.
    household_visit_days: int = Field(ge=1)

    def period_days(self, year: int, month: int) -> int:
        """Days in the period of the rule that contains the month ``year-month``."""
        if self.minimum_period == "month":
            months = [month]
        elif self.minimum_period == "quarter":
            first = 3 * ((month - 1) // 3) + 1
            months = [first, first + 1, first + 2]
        else:
            months = list(range(1, 13))
        return sum(calendar.monthrange(year, m)[1] for m in months)

    def required_days(self, eligible_days: int, period_days: int) -> int:
        """Days in the village required of a month with ``eligible_days`` in post and not on
        leave: ceil(minimum_days x eligible_days / period_days), in integers so there is no
        float rounding at the boundaries."""
        if eligible_days <= 0:
            return 0
        return -(-self.minimum_days * eligible_days // period_days)


class AssessmentPolicy(PolicySection):
    """Rules of 考 (assessment): score weights, grade bands, caps, shares and lists."""

    #: Weights of the quarterly score's parts (Pu County: township 70, villagers' secret
    #: ballot 20, county panel 10); each part is scored 0-100 and the weights sum to 100.
    township_weight: int = Field(ge=0, le=100)
    villager_weight: int = Field(ge=0, le=100)
    county_panel_weight: int = Field(ge=0, le=100)
    #: Lowest composite score (0-100) of each quarterly grade: 好, 较好, 一般; below: 差.
    quarterly_good_min: float = Field(ge=0, le=100)
    quarterly_fairly_good_min: float = Field(ge=0, le=100)
    quarterly_average_min: float = Field(ge=0, le=100)
    #: Days within which both admonition talks (双约谈) follow a quarterly 一般.
    admonition_talk_days: int = Field(ge=1)
    #: Most 优秀 in a county's annual round: floor(share x cadres assessed).
    excellent_share_cap: float = Field(ge=0, le=1)
    #: Unexcused spot-check absences in the year that cap the annual grade: from this many,
    #: no 优秀; at most 基本称职; 不称职.
    absences_bar_excellent: int = Field(ge=1)
    absences_cap_basic: int = Field(ge=1)
    absences_incompetent: int = Field(ge=1)
    #: Sizes of the red (best) and blue (worst) lists of a period (ties at the edge all go in).
    red_list_size: int = Field(ge=0)
    blue_list_size: int = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.township_weight + self.villager_weight + self.county_panel_weight != 100:
            raise ValueError("the quarterly score weights must sum to 100")
        if not (
            self.quarterly_good_min >= self.quarterly_fairly_good_min >= self.quarterly_average_min
        ):
            raise ValueError("quarterly grade bands must satisfy good >= fairly good >= average")
        if not self.absences_bar_excellent <= self.absences_cap_basic <= self.absences_incompetent:
            raise ValueError("absence caps must satisfy bar_excellent <= cap_basic <= incompetent")
        return self


AnnualGradeName = Literal["excellent", "competent", "basically_competent", "incompetent"]
QuarterlyGradeName = Literal["good", "fairly_good", "average", "poor"]
PoolName = Literal["reserve", "promote", "publicise", "commend"]
#: The annual and term scale, best first (优秀, 称职, 基本称职, 不称职).
ANNUAL_GRADE_RANK: tuple[AnnualGradeName, ...] = (
    "excellent",
    "competent",
    "basically_competent",
    "incompetent",
)


class DecisionPolicy(PolicySection):
    """Rules of 用 (the read side's decisions): when a cadre becomes a recall candidate, who
    enters the four promotion pools (四个一批), and what a recall bars. The rules themselves
    are written out in ``docs/decisions.md``; rule 2 (leave) reads
    ``[attendance].annual_leave_limit_days``."""

    #: Rule 1: short of the required days in this many consecutive closed months.
    recall_shortfall_consecutive_months: int = Field(ge=1)
    #: Rule 3: this many unexcused spot-check absences in a calendar year.
    recall_unexcused_absences: int = Field(ge=1)
    #: Rule 4: annual and term grades, and quarterly grades, that make a recall candidate.
    recall_annual_grades: tuple[AnnualGradeName, ...]
    recall_quarterly_grades: tuple[QuarterlyGradeName, ...]
    #: Rule 5: a quarterly 一般 (average) in this many consecutive quarters.
    recall_average_consecutive_quarters: int = Field(ge=1)
    #: Rule 6: a disciplinary sanction makes a recall candidate.
    recall_on_sanction: bool
    #: After a recall by dispatch, entries of these pools are barred for this many years.
    recall_ban_years: int = Field(ge=0)
    recall_barred_pools: tuple[PoolName, ...]
    #: 发现储备: an annual grade of this, with every closed month of the year compliant.
    reserve_annual_grade: AnnualGradeName
    #: 提拔使用: a term grade of this, no recall decision in the term, and no annual grade in
    #: the term below ``promote_lowest_annual_grade``.
    promote_term_grade: AnnualGradeName
    promote_lowest_annual_grade: AnnualGradeName
    #: 宣传推介: on the red list this many times in one term, or a villagers' evaluation of at
    #: least this satisfaction (0-100).
    publicise_red_lists_in_term: int = Field(ge=1)
    publicise_villager_satisfaction_min: float = Field(ge=0, le=100)
    #: 表彰奖励: an annual grade of this and on a red list in the same year.
    commend_annual_grade: AnnualGradeName
    #: Grades that withdraw pool entries that qualified before them.
    disqualifying_annual_grades: tuple[AnnualGradeName, ...]
    disqualifying_quarterly_grades: tuple[QuarterlyGradeName, ...]

    def annual_below(self, grade: str, lowest: str) -> bool:
        """Whether ``grade`` ranks below ``lowest`` on the annual scale."""
        ranks: tuple[str, ...] = ANNUAL_GRADE_RANK
        return ranks.index(grade) > ranks.index(lowest)


class PolicyPack(BaseModel):
    """One versioned, dated set of rules for one jurisdiction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Stable id recorded by every event that applied one of the pack's rules.
    version: str = Field(min_length=1)
    effective_from: date
    jurisdiction: str = DEFAULT_JURISDICTION
    description: str = ""
    dispatch: DispatchPolicy | None = None
    attendance: AttendancePolicy | None = None
    assessment: AssessmentPolicy | None = None
    decisions: DecisionPolicy | None = None

    @model_validator(mode="after")
    def _jurisdiction_is_known(self) -> Self:
        jurisdiction_prefix(self.jurisdiction)  # raises ValueError when malformed
        return self

    def dispatch_rules(self) -> DispatchPolicy:
        if self.dispatch is None:
            raise PolicySectionMissing(f"policy {self.version} has no [dispatch] section")
        return self.dispatch

    def attendance_rules(self) -> AttendancePolicy:
        if self.attendance is None:
            raise PolicySectionMissing(f"policy {self.version} has no [attendance] section")
        return self.attendance

    def assessment_rules(self) -> AssessmentPolicy:
        if self.assessment is None:
            raise PolicySectionMissing(f"policy {self.version} has no [assessment] section")
        return self.assessment

    def decision_rules(self) -> DecisionPolicy:
        if self.decisions is None:
            raise PolicySectionMissing(f"policy {self.version} has no [decisions] section")
        return self.decisions

    def covers(self, jurisdiction: str) -> bool:
        return jurisdiction_prefix(jurisdiction).startswith(jurisdiction_prefix(self.jurisdiction))

    @property
    def specificity(self) -> int:
        """0 for the default pack, then 2 (province), 4 (city), 6 (county)."""
        return len(jurisdiction_prefix(self.jurisdiction))


def jurisdiction_prefix(jurisdiction: str) -> str:
    """The significant digits of a division code (``"530100"`` -> ``"5301"``); ``""`` for
    the default jurisdiction."""
    if jurisdiction == DEFAULT_JURISDICTION:
        return ""
    code = jurisdiction
    while len(code) > 2 and code.endswith("00"):
        code = code[:-2]
    if not _DIVISION_CODE.match(code):
        raise ValueError(f"jurisdiction {jurisdiction!r} is neither 'default' nor a division code")
    return code


def load_pack(path: Path) -> PolicyPack:
    """Read and validate one pack file."""
    try:
        with path.open("rb") as file:
            raw = tomllib.load(file)
        return PolicyPack.model_validate(raw)
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise PolicyFileError(f"{path}: {exc}") from exc


class PolicyBook:
    """All known packs; answers which one is in force where and when."""

    def __init__(self, packs: Iterable[PolicyPack]) -> None:
        self._by_version: dict[str, PolicyPack] = {}
        slots: dict[tuple[str, date], str] = {}
        for pack in packs:
            if pack.version in self._by_version:
                raise DuplicatePolicy(f"policy version {pack.version!r} appears twice")
            slot = (jurisdiction_prefix(pack.jurisdiction), pack.effective_from)
            if slot in slots:
                raise DuplicatePolicy(
                    f"policies {slots[slot]!r} and {pack.version!r} both take effect for"
                    f" {pack.jurisdiction} on {pack.effective_from}"
                )
            slots[slot] = pack.version
            self._by_version[pack.version] = pack

    @classmethod
    def load(cls, folder: Path) -> PolicyBook:
        """Every ``*.toml`` file of ``folder``."""
        if not folder.is_dir():
            raise PolicyFileError(f"{folder} is not a folder")
        return cls(load_pack(path) for path in sorted(folder.glob("*.toml")))

    def __len__(self) -> int:
        return len(self._by_version)

    def version(self, version: str) -> PolicyPack:
        """The pack an event names (replays and audits apply the same rules again)."""
        try:
            return self._by_version[version]
        except KeyError:
            raise NoPolicyInForce(f"unknown policy version {version!r}") from None

    def in_force(self, jurisdiction: str, on: date) -> PolicyPack:
        """The most specific pack covering ``jurisdiction`` whose effective date is the latest
        one not after ``on``."""
        candidates = [
            pack
            for pack in self._by_version.values()
            if pack.effective_from <= on and pack.covers(jurisdiction)
        ]
        if not candidates:
            raise NoPolicyInForce(f"no policy covers {jurisdiction} on {on}")
        return max(candidates, key=lambda pack: (pack.specificity, pack.effective_from))
