"""The sections of a policy pack the read side applies: ``[decisions]`` (the rules of 用) and
the one number of ``[attendance]`` that rule 2 reads.

The pack's format and the book that says which pack is in force live in
``zhucun.shared.policy``; the rules themselves are written out in ``docs/decisions.md``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from zhucun.shared.policy import PolicySection

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
    ``[attendance].annual_leave_limit_days`` (:class:`LeaveLimit`)."""

    section = "decisions"

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


class LeaveLimit(PolicySection):
    """The read side's own view of the pack's ``[attendance]`` table: only the number rule 2
    reads. The table belongs to attendance (``zhucun.attendance.domain.policy``, which the
    read side does not import, and which validates every other field of it when attendance
    starts), so the other fields are ignored here rather than refused."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    section = "attendance"

    #: Rule 2: personal and sick leave beyond this many days in a calendar year.
    annual_leave_limit_days: int = Field(ge=0)


#: What the read side validates in every pack when it starts (``PolicyBook.load``).
DECISION_SECTIONS: tuple[type[PolicySection], ...] = (DecisionPolicy, LeaveLimit)


__all__ = [
    "ANNUAL_GRADE_RANK",
    "DECISION_SECTIONS",
    "AnnualGradeName",
    "DecisionPolicy",
    "LeaveLimit",
    "PoolName",
    "QuarterlyGradeName",
]
