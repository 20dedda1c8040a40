"""The ``[attendance]`` section of a policy pack: the rules of 管 and their arithmetic.

The pack's format and the book that says which pack is in force live in
``zhucun.shared.policy``; this is what attendance reads from the pack's ``[attendance]``
table (``pack.rules(AttendancePolicy)``). ``docs/domain.md`` cites the source of every rule.
"""

from __future__ import annotations

import calendar
from typing import Final, Literal, Self

from pydantic import Field, model_validator

from zhucun.contracts.attendance.events import MAX_LEAVE_DAYS, SPEED_MAX_KMH
from zhucun.shared.policy import PolicySection

#: Days of the shortest month, quarter and year.
_SHORTEST_PERIOD_DAYS: Final = {"month": 28, "quarter": 90, "year": 365}


class AttendancePolicy(PolicySection):
    """Rules of 管 (attendance): days in the village, leave approval, evidence checks."""

    section = "attendance"

    #: "吃住在村": at least ``minimum_days`` in the village per ``minimum_period`` (20 a month
    #: by default; other packs: 50 a quarter, 200 a year). A month close requires the
    #: prorated share: ceil(minimum_days x eligible days / days in the period). At most the
    #: days of the period's shortest instance (28 for a month, 90 for a quarter, 365 for a
    #: year): more could never be met, and a month would require more days than it has.
    minimum_days: int = Field(ge=0, le=366)
    minimum_period: Literal["month", "quarter", "year"]
    #: Leave of up to this many days is approved by the township party committee; longer
    #: leave by the county organisation department.
    township_leave_approval_max_days: int = Field(ge=0, le=MAX_LEAVE_DAYS)
    #: Personal and sick leave beyond this many days in a calendar year → recall (read side,
    #: which reads this field through a view of its own).
    annual_leave_limit_days: int = Field(ge=0, le=366)
    #: Two check-ins implying a faster journey than this are flagged as impossible travel
    #: (below ``SPEED_MAX_KMH``, the most a ``TravelFlag`` records).
    max_travel_speed_kmh: float = Field(gt=0, le=SPEED_MAX_KMH)
    #: A new cadre visits every household of the village within this many days (at most a
    #: year: the deadline of a term starting late in 2099 stays a date).
    household_visit_days: int = Field(ge=1, le=366)

    @model_validator(mode="after")
    def _minimum_can_be_met(self) -> Self:
        shortest = _SHORTEST_PERIOD_DAYS[self.minimum_period]
        if self.minimum_days > shortest:
            raise ValueError(
                f"minimum_days {self.minimum_days} is more than a {self.minimum_period}"
                f" may have ({shortest})"
            )
        return self

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


__all__ = ["AttendancePolicy"]
