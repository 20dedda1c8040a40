"""The arithmetic of assessment: the quarterly score and grade, the attendance caps of annual
and term grades, the share cap of 优秀 and the red and blue lists. Pure functions of a pack's
``AssessmentPolicy``.

Numbers that come as floats (scores, the share) are read as the decimal they print as
(``0.2`` is one fifth, ``89.995`` is 89.995), so that a boundary is never missed by a binary
rounding error: 20 % of 10 cadres is 2, never 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.contracts.assessment.events import AnnualGrade, GradeCap, ListEntry, QuarterlyGrade

#: The annual and term scale, best first.
ANNUAL_ORDER: tuple[AnnualGrade, ...] = (
    AnnualGrade.EXCELLENT,
    AnnualGrade.COMPETENT,
    AnnualGrade.BASICALLY_COMPETENT,
    AnnualGrade.INCOMPETENT,
)

_CHINESE: Mapping[AnnualGrade, str] = {
    AnnualGrade.EXCELLENT: "优秀",
    AnnualGrade.COMPETENT: "称职",
    AnnualGrade.BASICALLY_COMPETENT: "基本称职",
    AnnualGrade.INCOMPETENT: "不称职",
}

_CENT = Decimal("0.01")


def _decimal(number: float) -> Decimal:
    """The decimal a number prints as (``repr`` of a float is its shortest round trip)."""
    return Decimal(repr(number))


# --- the quarter ----------------------------------------------------------------------------


def quarterly_score(
    township: float, villager: float, panel: float, rules: AssessmentPolicy
) -> float:
    """(township x its weight + villagers x theirs + panel x its) / 100, each part 0-100,
    rounded half up to 2 decimals."""
    for part in (township, villager, panel):
        if not 0 <= part <= 100:
            raise ValueError(f"a part of the quarterly score is 0-100, not {part}")
    total = (
        _decimal(township) * rules.township_weight
        + _decimal(villager) * rules.villager_weight
        + _decimal(panel) * rules.county_panel_weight
    ) / 100
    return float(total.quantize(_CENT, rounding=ROUND_HALF_UP))


def quarterly_grade(score: float, rules: AssessmentPolicy) -> QuarterlyGrade:
    """好 from ``quarterly_good_min``, 较好 from ``quarterly_fairly_good_min``, 一般 from
    ``quarterly_average_min``, else 差 (each minimum belongs to its band)."""
    if score >= rules.quarterly_good_min:
        return QuarterlyGrade.GOOD
    if score >= rules.quarterly_fairly_good_min:
        return QuarterlyGrade.FAIRLY_GOOD
    if score >= rules.quarterly_average_min:
        return QuarterlyGrade.AVERAGE
    return QuarterlyGrade.POOR


# --- annual and term grades -----------------------------------------------------------------


def grade_cap(unexcused_absences: int, rules: AssessmentPolicy) -> GradeCap | None:
    """The best annual grade that many unexcused spot-check absences in the year allow, or
    None when they allow any grade."""
    if unexcused_absences < 0:
        raise ValueError("absences are not negative")
    if unexcused_absences >= rules.absences_incompetent:
        best, threshold = AnnualGrade.INCOMPETENT, rules.absences_incompetent
        rule = f"{threshold} or more make the grade {_label(best)}"
    elif unexcused_absences >= rules.absences_cap_basic:
        best, threshold = AnnualGrade.BASICALLY_COMPETENT, rules.absences_cap_basic
        rule = f"{threshold} or more allow at most {_label(best)}"
    elif unexcused_absences >= rules.absences_bar_excellent:
        best, threshold = AnnualGrade.COMPETENT, rules.absences_bar_excellent
        rule = f"{threshold} or more bar {_label(AnnualGrade.EXCELLENT)}"
    else:
        return None
    noun = "absence" if unexcused_absences == 1 else "absences"
    return GradeCap(
        unexcused_absences=unexcused_absences,
        best_allowed=best,
        reason=f"{unexcused_absences} unexcused spot-check {noun} in the year: {rule}",
    )


def _label(grade: AnnualGrade) -> str:
    return f"{_CHINESE[grade]} ({grade.value})"


def grade_rank(grade: AnnualGrade) -> int:
    """0 for 优秀 up to 3 for 不称职: a larger number is a worse grade."""
    return ANNUAL_ORDER.index(grade)


def apply_cap(grade: AnnualGrade, cap: GradeCap | None) -> AnnualGrade:
    """The worse of ``grade`` and the cap's best allowed grade (``grade`` without a cap).

    With as many absences as ``absences_incompetent`` the cap is 不称职, so the result is
    不称职 whatever was proposed."""
    if cap is None:
        return grade
    return max(grade, cap.best_allowed, key=grade_rank)


def capped_grade(
    proposed: AnnualGrade, unexcused_absences: int, rules: AssessmentPolicy
) -> tuple[AnnualGrade, GradeCap | None]:
    """The grade given for ``proposed`` and the cap to record: the cap only when it lowered
    the grade (a proposal already at or below the cap records none)."""
    cap = grade_cap(unexcused_absences, rules)
    grade = apply_cap(proposed, cap)
    return grade, (cap if grade != proposed else None)


def excellent_cap(cadres_assessed: int, rules: AssessmentPolicy) -> int:
    """Most 优秀 allowed among ``cadres_assessed``: floor(share x cadres), computed exactly."""
    if cadres_assessed < 0:
        raise ValueError("the number of cadres assessed is not negative")
    return math.floor(Fraction(repr(rules.excellent_share_cap)) * cadres_assessed)


# --- red and blue lists ---------------------------------------------------------------------


def _edge(ordered: list[tuple[float, str]], size: int) -> list[tuple[float, str]]:
    """The first ``size`` of ``ordered`` and everyone tied with the last of them."""
    if size <= 0 or not ordered:
        return []
    if len(ordered) <= size:
        return list(ordered)
    edge_score = ordered[size - 1][0]
    return ordered[:size] + [item for item in ordered[size:] if item[0] == edge_score]


def _ranked(entries: list[tuple[float, str]]) -> tuple[ListEntry, ...]:
    """Standard competition ranking ("1224") of entries already in list order."""
    result: list[ListEntry] = []
    for position, (score, cadre_id) in enumerate(entries):
        rank = result[-1].rank if result and result[-1].score == score else position + 1
        result.append(ListEntry(rank=rank, cadre_id=cadre_id, score=score))
    return tuple(result)


def rank_lists(
    scores: Mapping[str, float], rules: AssessmentPolicy
) -> tuple[tuple[ListEntry, ...], tuple[ListEntry, ...]]:
    """The red list (the best ``red_list_size`` by score, highest first) and the blue list
    (the worst ``blue_list_size``, lowest first) of ``scores`` (cadre id -> score).

    Ranks are standard competition ranks ("1224"); every cadre tied with the last place of a
    list is on it. Nobody is on both: with fewer cadres than the two sizes together, each
    list takes at most half of the cadres (rounded down), so a county of five does not put
    its worst performer on the red list; the red list is drawn first and the blue one from
    those not on it. Equal scores are ordered by cadre id."""
    best_first = sorted(((score, cadre) for cadre, score in scores.items()), key=_best_first)
    red_size, blue_size = rules.red_list_size, rules.blue_list_size
    if len(best_first) < red_size + blue_size:
        red_size = min(red_size, len(best_first) // 2)
        blue_size = min(blue_size, len(best_first) // 2)
    red = _edge(best_first, red_size)
    on_red = {cadre for _, cadre in red}
    worst_first = sorted((score, cadre) for score, cadre in best_first if cadre not in on_red)
    blue = _edge(worst_first, blue_size)
    return _ranked(red), _ranked(blue)


def _best_first(item: tuple[float, str]) -> tuple[float, str]:
    score, cadre = item
    return -score, cadre
