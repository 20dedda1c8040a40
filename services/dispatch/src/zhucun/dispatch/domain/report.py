"""The round report: cadres sent per unit level, against the county's previous round.

Principle "省市只增不减、县级只减不增": compared with the previous round, province and city
units must not send fewer people, county units must not send more. The report flags a breach;
it does not refuse the close (the county explains it to the prefecture, the numbers stand),
and each breach is a warning of the close (:func:`breach_warnings`), so the answer to the
close says it at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from zhucun.contracts.dispatch.events import (
    LevelComparison,
    RoundReport,
    RuleWarning,
    UnitLevel,
)

#: Levels whose numbers must not fall; the others must not rise.
MUST_NOT_FALL = frozenset({UnitLevel.PROVINCE, UnitLevel.CITY})
#: The warning of a province or city level that fell (省市只增不减).
UNIT_LEVEL_DECREASED: Final = "unit_level_decreased"
#: The warning of the county level that rose (县级只减不增).
COUNTY_LEVEL_INCREASED: Final = "county_level_increased"


def round_report(
    round_id: str,
    sent: Mapping[UnitLevel, int],
    *,
    teams: int,
    previous: RoundReport | None,
) -> RoundReport:
    """Compare ``sent`` (cadres on post per unit level) with the previous round's report."""
    levels = []
    for level in UnitLevel:
        now = sent.get(level, 0)
        before = previous.level(level).sent if previous else None
        change = None if before is None else now - before
        if change is None:
            violation = False
        elif level in MUST_NOT_FALL:
            violation = change < 0
        else:
            violation = change > 0
        levels.append(
            LevelComparison(
                level=level, sent=now, previous=before, change=change, violation=violation
            )
        )
    return RoundReport(
        round_id=round_id,
        previous_round_id=previous.round_id if previous else None,
        teams=teams,
        levels=tuple(levels),
    )


def breach_warnings(report: RoundReport) -> tuple[RuleWarning, ...]:
    """One warning per level of ``report`` that breaks the principle, in the report's order
    of levels."""
    warnings = []
    for level in report.violations:
        if level.level in MUST_NOT_FALL:
            code, rule = UNIT_LEVEL_DECREASED, "省市只增不减"
        else:
            code, rule = COUNTY_LEVEL_INCREASED, "县级只减不增"
        warnings.append(
            RuleWarning(
                code=code,
                message=(
                    f"{rule}: {level.level.value} units sent {level.sent} to round"
                    f" {report.round_id!r}, against {level.previous} to round"
                    f" {report.previous_round_id!r}"
                ),
            )
        )
    return tuple(warnings)
