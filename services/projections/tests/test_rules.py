"""The rules of 用 as a pure function, rule by rule (``docs/decisions.md`` is the contract):
given a cadre's facts, then these recall decisions and pool entries, under the real packs of
``policies/`` (``reference-2021`` everywhere, ``liangshan-2025`` for 5134 from 2025)."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path

import pytest

from zhucun.projections.domain import rules
from zhucun.projections.domain.policy import DECISION_SECTIONS, DecisionPolicy
from zhucun.projections.domain.rules import Decision, Fact, Packs, PoolEntry, Verdict, evaluate
from zhucun.shared.policy import PolicyBook, PolicyPack

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
BOOK = PolicyBook.load(REPO / "policies", sections=DECISION_SECTIONS)

REFERENCE = "reference-2021"
LIANGSHAN = "liangshan-2025"
CADRE = "cadre-1"
#: A county without a pack of its own (Kunming): the reference pack applies.
COUNTY = "530102"
#: Ningyuan, under Liangshan (5134): the Liangshan pack applies from 2025-01-01.
NINGYUAN = "513427"


# --- builders: one fact each, with a deterministic event id --------------------------------


def day(text: str) -> date:
    return date.fromisoformat(text)


def close(
    month: str,
    shortfall: int = 0,
    *,
    leave: int = 0,
    absences: int = 0,
    version: str = REFERENCE,
    event_id: str | None = None,
) -> Fact:
    """``attendance.MonthClosed``: leave is personal + sick leave days."""
    return Fact(
        event_id or f"close-{month}",
        CADRE,
        "month_close",
        rules.month_end(month),
        month,
        policy_version=version,
        shortfall=shortfall,
        leave_days=leave,
        absences=absences,
    )


def quarterly(
    quarter: str,
    grade: str,
    *,
    county: str = COUNTY,
    version: str | None = REFERENCE,
    event_id: str | None = None,
) -> Fact:
    return Fact(
        event_id or f"quarterly-{quarter}",
        CADRE,
        "quarterly",
        rules.quarter_end(quarter),
        quarter,
        county=county,
        policy_version=version,
        grade=grade,
    )


def annual(year: int, grade: str, *, county: str = COUNTY, event_id: str | None = None) -> Fact:
    """``assessment.AnnualResultIssued`` (records no policy version)."""
    return Fact(
        event_id or f"annual-{year}",
        CADRE,
        "annual",
        date(year, 12, 31),
        str(year),
        county=county,
        grade=grade,
    )


def term(
    assignment_id: str,
    term_end: str,
    grade: str,
    *,
    county: str = COUNTY,
    version: str = REFERENCE,
    event_id: str | None = None,
) -> Fact:
    return Fact(
        event_id or f"term-{assignment_id}",
        CADRE,
        "term",
        day(term_end),
        assignment_id,
        county=county,
        policy_version=version,
        grade=grade,
        ref=assignment_id,
    )


def sanction(sanction_id: str, decided_on: str, *, county: str = COUNTY) -> Fact:
    return Fact(
        f"sanction-{sanction_id}", CADRE, "sanction", day(decided_on), sanction_id, county=county
    )


def red(quarter: str, *, county: str = COUNTY) -> Fact:
    """The cadre on the red list of ``quarter``."""
    return Fact(
        f"red-{quarter}", CADRE, "red_list", rules.quarter_end(quarter), quarter, county=county
    )


def villagers(
    period: str, satisfaction: float, *, county: str = COUNTY, event_id: str | None = None
) -> Fact:
    return Fact(
        event_id or f"villagers-{period}",
        CADRE,
        "villagers",
        rules.period_end(period),
        period,
        county=county,
        satisfaction=satisfaction,
    )


def assignment(assignment_id: str, term_start: str, term_end: str, *, county: str = COUNTY) -> Fact:
    return Fact(
        f"assigned-{assignment_id}",
        CADRE,
        "assignment",
        day(term_end),
        assignment_id,
        county=county,
        ref=assignment_id,
        start=day(term_start),
    )


def recall(
    recalled_on: str,
    *,
    decision: str | None = None,
    assignment_id: str = "a1",
    event_id: str | None = None,
) -> Fact:
    """``dispatch.CadreRecalled``, citing ``decision`` (or none)."""
    return Fact(
        event_id or f"recall-{recalled_on}",
        CADRE,
        "recall",
        day(recalled_on),
        assignment_id,
        ref=decision,
    )


def dismissal(decision: str, dismissed_on: str, *, event_id: str | None = None) -> Fact:
    return Fact(
        event_id or f"dismissal-{decision[:8]}",
        CADRE,
        "dismissal",
        day(dismissed_on),
        decision,
        ref=decision,
    )


def compliant_year(year: int, months: range = range(1, 13)) -> list[Fact]:
    """Closed months of ``year`` without a shortfall."""
    return [close(f"{year}-{m:02d}") for m in months]


# --- helpers ---------------------------------------------------------------------------------


def judge(*facts: Fact, override: PolicyPack | None = None) -> Verdict:
    return evaluate(CADRE, list(facts), Packs(BOOK, override=override))


def decided(verdict: Verdict, rule: int | None = None) -> list[Decision]:
    return [d for d in verdict.decisions if rule is None or d.rule == rule]


def keys(verdict: Verdict, rule: int | None = None) -> list[str]:
    return [d.key for d in decided(verdict, rule)]


def entries(verdict: Verdict, pool: str | None = None) -> list[PoolEntry]:
    return [e for e in verdict.entries if pool is None or e.pool == pool]


def only_entry(verdict: Verdict, pool: str) -> PoolEntry:
    found = entries(verdict, pool)
    assert len(found) == 1, found
    return found[0]


def evidence(*facts: Fact) -> tuple[str, ...]:
    return tuple(sorted(f.event_id for f in facts))


def recall_id(rule: int, key: str) -> str:
    return rules.decision_id(CADRE, rule, key)


def status(entry: PoolEntry) -> tuple[str, date | None, str | None, str | None]:
    return entry.status, entry.status_on, entry.status_reason, entry.status_evidence


ACTIVE = ("active", None, None, None)


def what_if(**decisions: object) -> PolicyPack:
    """The reference pack under another version, with some ``[decisions]`` fields changed."""
    base = BOOK.version(REFERENCE)
    return base.model_copy(
        update={
            "version": "what-if",
            "decisions": base.rules(DecisionPolicy).model_dump() | decisions,
        }
    )


# --- rule 1: short of the required days in consecutive closed months -----------------------


def test_rule1_two_consecutive_short_months_make_one_decision() -> None:
    march, april = close("2025-03", shortfall=2), close("2025-04", shortfall=1)
    verdict = judge(close("2025-02"), march, april, close("2025-05"))

    assert verdict.decisions == (
        Decision(
            decision_id=rules.decision_id(CADRE, 1, "2025-04"),
            cadre_id=CADRE,
            rule=1,
            key="2025-04",
            triggered_on=day("2025-04-30"),
            evidence=evidence(march, april),
            policy_version=REFERENCE,
            status="recommended",
            reason=verdict.decisions[0].reason,
            executed_by=None,
        ),
    )
    assert verdict.unresolved == ()


def test_rule1_decision_id_is_the_documented_uuid5() -> None:
    import uuid

    namespace = uuid.UUID("6f1c2a9e-7b4d-5e8f-9a10-3c2b1d0e4f5a")
    assert rules.decision_id(CADRE, 1, "2025-04") == str(
        uuid.uuid5(namespace, f"recall|{CADRE}|1|2025-04")
    )


def test_rule1_uses_the_pack_the_closes_recorded() -> None:
    verdict = judge(
        close("2025-03", shortfall=2, version=LIANGSHAN),
        close("2025-04", shortfall=1, version=LIANGSHAN),
    )
    assert [d.policy_version for d in verdict.decisions] == [LIANGSHAN]


def test_rule1_a_run_crosses_the_year_boundary() -> None:
    december, january = close("2024-12", shortfall=3), close("2025-01", shortfall=1)
    (decision,) = judge(december, january).decisions

    assert (decision.rule, decision.key, decision.triggered_on) == (1, "2025-01", day("2025-01-31"))
    assert decision.evidence == evidence(december, january)


def test_rule1_a_single_short_month_is_no_decision() -> None:
    assert judge(close("2025-03"), close("2025-04", shortfall=5), close("2025-05")).decisions == ()


@pytest.mark.parametrize(
    "gap",
    [[close("2025-04")], []],
    ids=["month closed without shortfall", "month not closed"],
)
def test_rule1_a_gap_month_breaks_the_run(gap: list[Fact]) -> None:
    verdict = judge(close("2025-03", shortfall=2), *gap, close("2025-05", shortfall=2))
    assert verdict.decisions == ()


def test_rule1_three_consecutive_short_months_make_one_decision() -> None:
    run = [close(f"2025-0{m}", shortfall=1) for m in (3, 4, 5)]
    verdict = judge(*run)

    assert keys(verdict) == ["2025-04"]
    assert verdict.decisions[0].evidence == evidence(run[0], run[1])


def test_rule1_four_consecutive_short_months_make_two_decisions() -> None:
    run = [close(f"2025-0{m}", shortfall=1) for m in (3, 4, 5, 6)]
    verdict = judge(*run)

    assert [(d.key, d.triggered_on, d.evidence) for d in verdict.decisions] == [
        ("2025-04", day("2025-04-30"), evidence(run[0], run[1])),
        ("2025-06", day("2025-06-30"), evidence(run[2], run[3])),
    ]
    assert len({d.decision_id for d in verdict.decisions}) == 2


# --- rule 2: more leave in a calendar year than the pack allows ----------------------------


def test_rule2_leave_exactly_at_the_limit_is_no_decision() -> None:
    verdict = judge(
        close("2025-01", leave=10), close("2025-02", leave=10), close("2025-03", leave=10)
    )
    assert verdict.decisions == ()


def test_rule2_leave_over_the_limit_triggers_on_the_month_the_sum_first_exceeds() -> None:
    january = close("2025-01", leave=10)
    february = close("2025-02")  # no leave: not evidence
    march = close("2025-03", leave=15)
    april = close("2025-04", leave=6)  # 31 > 30
    may = close("2025-05", leave=5)  # after the trigger: not evidence, no second decision
    verdict = judge(january, february, march, april, may)

    (decision,) = verdict.decisions
    assert decision.decision_id == recall_id(2, "2025")
    assert (decision.rule, decision.key, decision.triggered_on) == (2, "2025", day("2025-04-30"))
    assert decision.evidence == evidence(january, march, april)
    assert (decision.policy_version, decision.status) == (REFERENCE, "recommended")


def test_rule2_counts_per_calendar_year() -> None:
    verdict = judge(close("2024-12", leave=20), close("2025-01", leave=20))
    assert verdict.decisions == ()


def test_rule2_a_new_year_starts_over() -> None:
    verdict = judge(
        close("2024-05", leave=31),
        close("2024-06", leave=3),
        close("2025-02", leave=16),
        close("2025-03", leave=16),
    )
    assert [(d.key, d.triggered_on) for d in decided(verdict, 2)] == [
        ("2024", day("2024-05-31")),
        ("2025", day("2025-03-31")),
    ]


# --- rule 3: unexcused spot-check absences in a calendar year ------------------------------


def test_rule3_absences_reaching_three_over_several_months_trigger() -> None:
    february = close("2025-02", absences=1)
    may = close("2025-05", absences=1)
    september = close("2025-09", absences=1)
    verdict = judge(close("2025-01"), february, may, close("2025-06"), september)

    (decision,) = verdict.decisions
    assert decision.decision_id == recall_id(3, "2025")
    assert (decision.rule, decision.key, decision.triggered_on) == (3, "2025", day("2025-09-30"))
    assert decision.evidence == evidence(february, may, september)


def test_rule3_two_absences_are_no_decision() -> None:
    assert judge(close("2025-02", absences=1), close("2025-05", absences=1)).decisions == ()


def test_rule3_counts_per_calendar_year() -> None:
    verdict = judge(close("2024-12", absences=2), close("2025-01", absences=1))
    assert verdict.decisions == ()


def test_rule3_triggers_once_per_year() -> None:
    verdict = judge(
        close("2025-03", absences=3), close("2025-04", absences=1), close("2026-01", absences=3)
    )
    assert [(d.key, d.triggered_on) for d in verdict.decisions] == [
        ("2025", day("2025-03-31")),
        ("2026", day("2026-01-31")),
    ]


# --- rule 4: recalling grades ----------------------------------------------------------------


@pytest.mark.parametrize(("county", "version"), [(COUNTY, REFERENCE), (NINGYUAN, LIANGSHAN)])
def test_rule4_annual_incompetent_uses_the_pack_in_force_on_31_december(
    county: str, version: str
) -> None:
    grade = annual(2025, "incompetent", county=county)
    (decision,) = judge(grade).decisions

    assert decision.decision_id == recall_id(4, "annual:2025")
    assert (decision.rule, decision.key, decision.triggered_on) == (
        4,
        "annual:2025",
        day("2025-12-31"),
    )
    assert decision.evidence == evidence(grade)
    assert decision.policy_version == version


def test_rule4_term_incompetent() -> None:
    grade = term("a1", "2025-08-15", "incompetent")
    (decision,) = judge(grade).decisions

    assert decision.decision_id == recall_id(4, "term:a1")
    assert (decision.key, decision.triggered_on, decision.evidence) == (
        "term:a1",
        day("2025-08-15"),
        evidence(grade),
    )


def test_rule4_quarterly_poor() -> None:
    grade = quarterly("2025-Q2", "poor")
    (decision,) = judge(grade).decisions

    assert decision.decision_id == recall_id(4, "quarter:2025-Q2")
    assert (decision.key, decision.triggered_on, decision.evidence) == (
        "quarter:2025-Q2",
        day("2025-06-30"),
        evidence(grade),
    )


@pytest.mark.parametrize(
    "grade",
    [
        annual(2025, "competent"),
        annual(2025, "basically_competent"),
        annual(2025, "excellent"),
        term("a1", "2025-08-15", "competent"),
        term("a1", "2025-08-15", "basically_competent"),
        quarterly("2025-Q2", "average"),
        quarterly("2025-Q2", "fairly_good"),
        quarterly("2025-Q2", "good"),
    ],
    ids=lambda f: f"{f.kind} {f.grade}",
)
def test_rule4_other_grades_make_no_decision(grade: Fact) -> None:
    assert judge(grade).decisions == ()


# --- rule 5: 一般 in consecutive quarters ------------------------------------------------------


def test_rule5_average_in_two_consecutive_quarters() -> None:
    q1, q2 = quarterly("2025-Q1", "average"), quarterly("2025-Q2", "average")
    (decision,) = judge(q1, q2).decisions

    assert decision.decision_id == recall_id(5, "2025-Q2")
    assert (decision.rule, decision.key, decision.triggered_on) == (5, "2025-Q2", day("2025-06-30"))
    assert decision.evidence == evidence(q1, q2)
    assert decision.policy_version == REFERENCE


def test_rule5_a_run_crosses_the_year_boundary() -> None:
    q4, q1 = quarterly("2024-Q4", "average"), quarterly("2025-Q1", "average")
    (decision,) = judge(q4, q1).decisions
    assert (decision.key, decision.triggered_on, decision.evidence) == (
        "2025-Q1",
        day("2025-03-31"),
        evidence(q4, q1),
    )


def test_rule5_a_poor_quarter_between_breaks_the_run() -> None:
    verdict = judge(
        quarterly("2025-Q1", "average"),
        quarterly("2025-Q2", "poor"),
        quarterly("2025-Q3", "average"),
    )
    assert decided(verdict, 5) == []
    assert keys(verdict) == ["quarter:2025-Q2"]  # the poor grade itself is rule 4


def test_rule5_a_quarter_without_a_grade_breaks_the_run() -> None:
    verdict = judge(quarterly("2025-Q1", "average"), quarterly("2025-Q3", "average"))
    assert verdict.decisions == ()


def test_rule5_four_consecutive_average_quarters_make_two_decisions() -> None:
    verdict = judge(*(quarterly(f"2025-Q{n}", "average") for n in (1, 2, 3, 4)))
    assert [(d.key, d.triggered_on) for d in verdict.decisions] == [
        ("2025-Q2", day("2025-06-30")),
        ("2025-Q4", day("2025-12-31")),
    ]


# --- rule 6: a disciplinary sanction -----------------------------------------------------------


def test_rule6_a_sanction_makes_a_decision_keyed_by_its_id() -> None:
    fact = sanction("s-17", "2025-06-01")
    (decision,) = judge(fact).decisions

    assert decision.decision_id == recall_id(6, "s-17")
    assert (decision.rule, decision.key, decision.triggered_on) == (6, "s-17", day("2025-06-01"))
    assert decision.evidence == evidence(fact)
    assert (decision.policy_version, decision.status) == (REFERENCE, "recommended")


# --- decision status -------------------------------------------------------------------------


def test_a_recall_naming_the_decision_executes_it() -> None:
    decision_id = recall_id(6, "s-17")
    recalled = recall("2025-06-20", decision=decision_id)
    (decision,) = judge(sanction("s-17", "2025-06-01"), recalled).decisions

    assert decision.status == "executed"
    assert decision.executed_by == recalled


def test_a_recall_naming_another_decision_leaves_it_recommended() -> None:
    verdict = judge(sanction("s-17", "2025-06-01"), recall("2025-06-20", decision="other"))
    assert [(d.status, d.executed_by) for d in verdict.decisions] == [("recommended", None)]


def test_a_dismissal_naming_the_decision_dismisses_it() -> None:
    decision_id = recall_id(6, "s-17")
    verdict = judge(sanction("s-17", "2025-06-01"), dismissal(decision_id, "2025-06-10"))
    assert [(d.status, d.executed_by) for d in verdict.decisions] == [("dismissed", None)]


def test_executed_wins_over_dismissed() -> None:
    decision_id = recall_id(6, "s-17")
    recalled = recall("2025-06-20", decision=decision_id)
    verdict = judge(sanction("s-17", "2025-06-01"), dismissal(decision_id, "2025-06-10"), recalled)
    assert [(d.status, d.executed_by) for d in verdict.decisions] == [("executed", recalled)]


# --- pools: reserve ----------------------------------------------------------------------------


def test_reserve_annual_excellent_and_every_closed_month_compliant() -> None:
    grade = annual(2025, "excellent")
    months = compliant_year(2025, range(3, 13))
    entry = only_entry(judge(grade, *months, close("2024-06", shortfall=4)), "reserve")

    assert entry == PoolEntry(
        cadre_id=CADRE,
        pool="reserve",
        key="2025",
        county=COUNTY,
        qualified_on=day("2025-12-31"),
        evidence=evidence(grade, *months),
        policy_version=REFERENCE,
        status="active",
        status_on=None,
        status_reason=None,
        status_evidence=None,
        reason=entry.reason,
    )


def test_reserve_not_with_one_non_compliant_month() -> None:
    verdict = judge(
        annual(2025, "excellent"), *compliant_year(2025, range(1, 12)), close("2025-12", 1)
    )
    assert entries(verdict, "reserve") == []


def test_reserve_not_without_a_closed_month_that_year() -> None:
    verdict = judge(annual(2025, "excellent"), *compliant_year(2024))
    assert entries(verdict, "reserve") == []


def test_reserve_not_with_a_lesser_annual_grade() -> None:
    assert entries(judge(annual(2025, "competent"), *compliant_year(2025)), "reserve") == []


# --- pools: commend ----------------------------------------------------------------------------


def test_commend_annual_excellent_and_a_red_list_that_year() -> None:
    grade, listed = annual(2025, "excellent"), red("2025-Q2")
    entry = only_entry(judge(grade, listed, red("2024-Q4")), "commend")

    assert (entry.key, entry.county, entry.qualified_on) == ("2025", COUNTY, day("2025-12-31"))
    assert entry.evidence == evidence(grade, listed)
    assert (entry.policy_version, status(entry)) == (REFERENCE, ACTIVE)


def test_commend_not_with_a_red_list_of_the_year_before() -> None:
    assert entries(judge(annual(2025, "excellent"), red("2024-Q4")), "commend") == []


# --- pools: promote ----------------------------------------------------------------------------


def test_promote_term_excellent() -> None:
    grade = term("a1", "2025-12-31", "excellent")
    years = [annual(2023, "competent"), annual(2024, "excellent")]
    verdict = judge(
        assignment("a1", "2023-01-01", "2025-12-31"), grade, *years, annual(2022, "incompetent")
    )
    entry = only_entry(verdict, "promote")

    assert (entry.key, entry.county, entry.qualified_on) == ("term:a1", COUNTY, day("2025-12-31"))
    assert entry.evidence == evidence(grade, *years)
    assert (entry.policy_version, status(entry)) == (REFERENCE, ACTIVE)


def test_promote_not_after_a_recall_decision_within_the_term() -> None:
    verdict = judge(
        assignment("a1", "2023-01-01", "2025-12-31"),
        sanction("s-1", "2024-05-01"),
        term("a1", "2025-12-31", "excellent"),
    )
    assert keys(verdict) == ["s-1"]
    assert entries(verdict, "promote") == []


def test_promote_despite_a_dismissed_recall_decision_within_the_term() -> None:
    verdict = judge(
        assignment("a1", "2023-01-01", "2025-12-31"),
        sanction("s-1", "2024-05-01"),
        dismissal(recall_id(6, "s-1"), "2024-05-20"),
        term("a1", "2025-12-31", "excellent"),
    )
    assert status(only_entry(verdict, "promote")) == ACTIVE


def test_promote_despite_a_recall_decision_before_the_term() -> None:
    verdict = judge(
        sanction("s-1", "2022-05-01"),
        assignment("a1", "2023-01-01", "2025-12-31"),
        term("a1", "2025-12-31", "excellent"),
    )
    assert status(only_entry(verdict, "promote")) == ACTIVE


def test_promote_not_with_an_annual_basically_competent_within_the_term() -> None:
    verdict = judge(
        assignment("a1", "2023-01-01", "2025-12-31"),
        annual(2024, "basically_competent"),
        term("a1", "2025-12-31", "excellent"),
    )
    assert entries(verdict, "promote") == []


# --- pools: publicise ---------------------------------------------------------------------------


def test_publicise_two_red_lists_within_the_term() -> None:
    first, second = red("2024-Q3"), red("2025-Q2")
    verdict = judge(assignment("a1", "2024-01-01", "2025-12-31"), first, second, red("2025-Q3"))
    entry = only_entry(verdict, "publicise")

    assert (entry.key, entry.county, entry.qualified_on) == ("red:a1", COUNTY, day("2025-06-30"))
    assert entry.evidence == evidence(first, second)
    assert (entry.policy_version, status(entry)) == (REFERENCE, ACTIVE)


def test_publicise_not_with_one_red_list_in_the_term() -> None:
    verdict = judge(assignment("a1", "2024-01-01", "2025-12-31"), red("2025-Q2"))
    assert entries(verdict, "publicise") == []


def test_publicise_red_lists_outside_the_term_do_not_count() -> None:
    verdict = judge(
        red("2023-Q4"),
        assignment("a1", "2024-01-01", "2025-12-31"),
        red("2025-Q2"),
        red("2026-Q1"),
    )
    assert entries(verdict, "publicise") == []


@pytest.mark.parametrize(
    ("period", "qualified_on"), [("2025", "2025-12-31"), ("2025-Q1", "2025-03-31")]
)
def test_publicise_villager_satisfaction_95(period: str, qualified_on: str) -> None:
    evaluation = villagers(period, 95)
    entry = only_entry(judge(evaluation), "publicise")

    assert (entry.key, entry.county, entry.qualified_on) == (
        f"villagers:{period}",
        COUNTY,
        day(qualified_on),
    )
    assert entry.evidence == evidence(evaluation)
    assert (entry.policy_version, status(entry)) == (REFERENCE, ACTIVE)


def test_publicise_not_with_villager_satisfaction_94_9() -> None:
    assert entries(judge(villagers("2025", 94.9)), "publicise") == []


def test_publicise_one_villagers_entry_per_period() -> None:
    low = villagers("2025", 80, event_id="villagers-a")
    high = villagers("2025", 97, event_id="villagers-b")
    higher = villagers("2025", 99, event_id="villagers-c")
    entry = only_entry(judge(low, high, higher), "publicise")
    assert entry.evidence == evidence(high, higher)


def test_publicise_villagers_entry_takes_the_county_of_the_best_evaluation() -> None:
    below = villagers("2025", 80, county=COUNTY, event_id="villagers-a")
    qualifying = villagers("2025", 96, county=NINGYUAN, event_id="villagers-b")
    entry = only_entry(judge(below, qualifying), "publicise")

    assert (entry.county, entry.policy_version) == (NINGYUAN, LIANGSHAN)
    assert entry.evidence == evidence(qualifying)


# --- pool status: withdrawal -------------------------------------------------------------------


def reserve_2025() -> list[Fact]:
    """A reserve entry qualified on 2025-12-31 (reference pack)."""
    return [annual(2025, "excellent"), *compliant_year(2025)]


def test_withdrawn_by_a_later_recall_decision() -> None:
    entry = only_entry(judge(*reserve_2025(), sanction("s-9", "2026-03-10")), "reserve")
    assert status(entry) == (
        "withdrawn",
        day("2026-03-10"),
        "recall_decision",
        recall_id(6, "s-9"),
    )


def test_withdrawn_by_a_later_executed_recall_decision() -> None:
    decision_id = recall_id(6, "s-9")
    verdict = judge(
        *reserve_2025(),
        sanction("s-9", "2026-03-10"),
        recall("2026-03-20", decision=decision_id),
    )
    assert status(only_entry(verdict, "reserve")) == (
        "withdrawn",
        day("2026-03-10"),
        "recall_decision",
        decision_id,
    )


def test_not_withdrawn_by_a_later_dismissed_recall_decision() -> None:
    verdict = judge(
        *reserve_2025(),
        sanction("s-9", "2026-03-10"),
        dismissal(recall_id(6, "s-9"), "2026-03-12"),
    )
    assert status(only_entry(verdict, "reserve")) == ACTIVE


def test_withdrawn_by_a_later_annual_basically_competent() -> None:
    low = annual(2026, "basically_competent")
    entry = only_entry(judge(*reserve_2025(), low), "reserve")
    assert status(entry) == ("withdrawn", day("2026-12-31"), "low_grade", low.event_id)


def test_a_later_quarterly_poor_withdraws_naming_its_recall_decision_first() -> None:
    """The poor grade is both a rule-4 decision and a low grade on the same day: the tie
    names the recall decision."""
    entry = only_entry(judge(*reserve_2025(), quarterly("2026-Q1", "poor")), "reserve")
    assert status(entry) == (
        "withdrawn",
        day("2026-03-31"),
        "recall_decision",
        recall_id(4, "quarter:2026-Q1"),
    )


def test_a_later_quarterly_poor_is_a_low_grade_when_it_recalls_nobody() -> None:
    low = quarterly("2026-Q1", "poor")
    pack = what_if(recall_quarterly_grades=())
    verdict = judge(*reserve_2025(), low, override=pack)

    assert verdict.decisions == ()
    entry = only_entry(verdict, "reserve")
    assert entry.policy_version == "what-if"
    assert status(entry) == ("withdrawn", day("2026-03-31"), "low_grade", low.event_id)


def test_withdrawn_by_a_later_recall_by_dispatch() -> None:
    recalled = recall("2026-02-14")
    entry = only_entry(judge(*reserve_2025(), recalled), "reserve")
    assert status(entry) == ("withdrawn", day("2026-02-14"), "recalled", recalled.event_id)


def test_withdrawn_by_a_disqualifier_on_the_day_it_qualified() -> None:
    recalled = recall("2025-12-31")
    entry = only_entry(judge(*reserve_2025(), recalled), "reserve")
    assert status(entry) == ("withdrawn", day("2025-12-31"), "recalled", recalled.event_id)


def test_an_earlier_low_grade_does_not_withdraw() -> None:
    verdict = judge(
        annual(2024, "basically_competent"),
        quarterly("2025-Q1", "poor"),  # also an earlier recall decision
        *reserve_2025(),
    )
    assert keys(verdict) == ["quarter:2025-Q1"]
    assert status(only_entry(verdict, "reserve")) == ACTIVE


def test_withdrawal_names_the_earliest_disqualifier() -> None:
    low = term("a1", "2026-02-01", "basically_competent")
    entry = only_entry(judge(*reserve_2025(), sanction("s-9", "2026-05-10"), low), "reserve")
    assert status(entry) == ("withdrawn", day("2026-02-01"), "low_grade", low.event_id)


def test_withdrawal_tie_recall_decision_before_recalled() -> None:
    decision_id = recall_id(6, "s-9")
    verdict = judge(
        *reserve_2025(),
        sanction("s-9", "2026-05-10"),
        recall("2026-05-10", decision=decision_id, event_id="0-recall"),
    )
    assert status(only_entry(verdict, "reserve")) == (
        "withdrawn",
        day("2026-05-10"),
        "recall_decision",
        decision_id,
    )


def test_withdrawal_tie_recalled_before_low_grade() -> None:
    recalled = recall("2026-12-31", event_id="z-recall")
    low = annual(2026, "basically_competent", event_id="a-annual")
    entry = only_entry(judge(*reserve_2025(), low, recalled), "reserve")
    assert status(entry) == ("withdrawn", day("2026-12-31"), "recalled", recalled.event_id)


def test_withdrawal_tie_between_low_grades_names_the_smaller_evidence_id() -> None:
    first = term("a1", "2026-12-31", "basically_competent", event_id="low-a")
    second = annual(2026, "basically_competent", event_id="low-b")
    entry = only_entry(judge(*reserve_2025(), second, first), "reserve")
    assert status(entry) == ("withdrawn", day("2026-12-31"), "low_grade", "low-a")


# --- pool status: the ban after a recall -------------------------------------------------------


def test_a_reserve_qualification_within_three_years_of_a_recall_is_barred() -> None:
    decision_id = recall_id(6, "s-1")
    recalled = recall("2024-03-15", decision=decision_id)
    verdict = judge(sanction("s-1", "2024-03-01"), recalled, *reserve_2025())

    assert [d.status for d in verdict.decisions] == ["executed"]
    assert status(only_entry(verdict, "reserve")) == (
        "barred",
        day("2024-03-15"),
        "recall_ban",
        recalled.event_id,
    )


@pytest.mark.parametrize(
    ("recalled_on", "expected"),
    [
        ("2023-01-01", "barred"),  # 2025-12-31 < 2026-01-01
        ("2022-12-31", "active"),  # 2025-12-31 == R + 3 years
        ("2022-06-30", "active"),
    ],
)
def test_the_ban_ends_three_years_after_the_recall(recalled_on: str, expected: str) -> None:
    entry = only_entry(judge(recall(recalled_on), *reserve_2025()), "reserve")
    assert entry.status == expected


@pytest.mark.parametrize(
    ("term_end", "expected"), [("2027-02-27", "barred"), ("2027-02-28", "active")]
)
def test_a_ban_from_29_february_ends_on_28_february(term_end: str, expected: str) -> None:
    verdict = judge(
        recall("2024-02-29"),
        assignment("a2", "2024-06-01", term_end),
        term("a2", term_end, "excellent"),
    )
    assert only_entry(verdict, "promote").status == expected


def test_the_reference_pack_does_not_bar_publicise_or_commend_after_a_recall() -> None:
    verdict = judge(
        recall("2024-03-15"),
        villagers("2025", 96),
        annual(2025, "excellent"),
        red("2025-Q1"),
    )
    assert {e.pool: (e.policy_version, e.status) for e in verdict.entries} == {
        "publicise": (REFERENCE, "active"),
        "commend": (REFERENCE, "active"),
    }


def test_the_liangshan_pack_bars_publicise_and_commend_after_a_recall() -> None:
    recalled = recall("2024-03-15")
    verdict = judge(
        recalled,
        villagers("2025", 96, county=NINGYUAN),
        annual(2025, "excellent", county=NINGYUAN),
        red("2025-Q1", county=NINGYUAN),
    )
    barred = ("barred", day("2024-03-15"), "recall_ban", recalled.event_id)
    assert {e.pool: (e.policy_version, status(e)) for e in verdict.entries} == {
        "publicise": (LIANGSHAN, barred),
        "commend": (LIANGSHAN, barred),
    }


# --- a recall, then a reassignment -------------------------------------------------------------


def test_a_reassignment_keeps_the_first_decisions_and_makes_new_ones() -> None:
    first = recall_id(1, "2025-03")
    recalled = recall("2025-04-10", decision=first, assignment_id="a1")
    verdict = judge(
        assignment("a1", "2024-01-01", "2025-12-31"),
        close("2025-02", shortfall=5),
        close("2025-03", shortfall=8),
        recalled,
        assignment("a2", "2025-06-01", "2027-05-31"),
        close("2025-06"),
        close("2025-07", shortfall=3),
        close("2025-08", shortfall=2),
    )

    assert [(d.key, d.decision_id, d.status, d.executed_by) for d in verdict.decisions] == [
        ("2025-03", first, "executed", recalled),
        ("2025-08", recall_id(1, "2025-08"), "recommended", None),
    ]


# --- packs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("county", "decided_on", "version"),
    [
        (NINGYUAN, "2025-06-01", LIANGSHAN),
        (NINGYUAN, "2025-01-01", LIANGSHAN),
        (NINGYUAN, "2024-12-31", REFERENCE),
        (COUNTY, "2025-06-01", REFERENCE),
    ],
)
def test_a_sanction_applies_the_pack_in_force_for_its_county(
    county: str, decided_on: str, version: str
) -> None:
    (decision,) = judge(sanction("s-1", decided_on, county=county)).decisions
    assert decision.policy_version == version


def test_a_grade_applies_the_pack_it_recorded_not_the_one_in_force() -> None:
    grade = quarterly("2025-Q2", "poor", county=NINGYUAN, version=REFERENCE)
    assert [d.policy_version for d in judge(grade).decisions] == [REFERENCE]


def test_a_grade_recording_no_pack_applies_the_one_in_force() -> None:
    grade = quarterly("2025-Q2", "poor", county=NINGYUAN, version=None)
    assert [d.policy_version for d in judge(grade).decisions] == [LIANGSHAN]


def test_a_pool_entry_applies_the_pack_in_force_for_its_county() -> None:
    verdict = judge(annual(2025, "excellent", county=NINGYUAN), *compliant_year(2025))
    entry = only_entry(verdict, "reserve")
    assert (entry.county, entry.policy_version) == (NINGYUAN, LIANGSHAN)


def test_an_override_with_three_months_turns_a_two_month_run_into_no_decision() -> None:
    pack = what_if(recall_shortfall_consecutive_months=3)
    two = [close("2025-03", 1), close("2025-04", 1)]
    assert judge(*two).decisions != ()
    assert judge(*two, override=pack).decisions == ()

    (decision,) = judge(*two, close("2025-05", 1), override=pack).decisions
    assert (decision.key, decision.policy_version) == ("2025-05", "what-if")


def test_an_override_applies_to_every_decision_and_entry() -> None:
    verdict = judge(
        close("2025-03", 1, version=LIANGSHAN),
        close("2025-04", 1, version=LIANGSHAN),
        sanction("s-1", "2025-06-01", county=NINGYUAN),
        quarterly("2025-Q3", "poor", county=NINGYUAN, version=LIANGSHAN),
        annual(2024, "excellent", county=NINGYUAN),
        *compliant_year(2024),
        override=what_if(),
    )
    assert keys(verdict) == ["2025-04", "s-1", "quarter:2025-Q3"]
    assert {d.policy_version for d in verdict.decisions} == {"what-if"}
    assert [(e.pool, e.policy_version) for e in verdict.entries] == [("reserve", "what-if")]


def test_a_fact_with_an_unknown_pack_is_skipped_and_listed() -> None:
    unknown = close("2025-02", shortfall=1, version="unknown-1999")
    verdict = judge(close("2025-01", shortfall=1), unknown, close("2025-03", shortfall=1))

    assert verdict.decisions == ()  # the unresolved month does not join the run
    assert verdict.unresolved == (unknown.event_id,)


def test_facts_without_a_pack_in_force_are_skipped_and_listed() -> None:
    early = sanction("s-0", "2020-06-01")  # before any pack takes effect
    grade = quarterly("2025-Q2", "poor", version="unknown-1999")
    verdict = judge(early, grade, sanction("s-1", "2025-06-01"))

    assert keys(verdict) == ["s-1"]
    assert verdict.unresolved == evidence(early, grade)


# --- order independence --------------------------------------------------------------------------


def a_busy_cadre() -> list[Fact]:
    """Facts that make decisions of several rules and entries of every pool."""
    return [
        assignment("a1", "2022-01-01", "2023-12-31"),
        *compliant_year(2023),
        annual(2023, "excellent"),
        red("2023-Q2"),
        red("2023-Q4"),
        villagers("2023", 97),
        term("a1", "2023-12-31", "excellent"),
        annual(2024, "competent"),
        close("2024-01", leave=12),
        close("2024-02", leave=12),
        close("2024-03", leave=12, absences=1),
        close("2024-04", shortfall=2),
        close("2024-05", shortfall=1, absences=2),
        quarterly("2024-Q1", "average"),
        quarterly("2024-Q2", "average"),
        quarterly("2024-Q3", "good"),
        quarterly("2024-Q4", "poor"),
        sanction("s-1", "2024-07-01"),
        dismissal(recall_id(6, "s-1"), "2024-07-15"),
        recall("2025-01-20", decision=recall_id(4, "quarter:2024-Q4")),
        assignment("a2", "2025-03-01", "2027-02-28", county=NINGYUAN),
        annual(2025, "excellent", county=NINGYUAN),
        *compliant_year(2025, range(3, 13)),
        red("2025-Q2", county=NINGYUAN),
        red("2025-Q3", county=NINGYUAN),
        villagers("2025-Q4", 95, county=NINGYUAN),
        close("2026-01", shortfall=1, version=LIANGSHAN),
        close("2026-02", shortfall=1, version="unknown-1999"),
        villagers("2026", 96),
    ]


def test_the_busy_cadre_exercises_every_rule_and_pool() -> None:
    verdict = judge(*a_busy_cadre())
    assert {d.rule for d in verdict.decisions} == {1, 2, 3, 4, 5, 6}
    assert {e.pool for e in verdict.entries} == {"reserve", "promote", "publicise", "commend"}
    assert {e.status for e in verdict.entries} == {"active", "withdrawn", "barred"}
    assert {d.status for d in verdict.decisions} == {"recommended", "executed", "dismissed"}
    assert verdict.unresolved == ("close-2026-02",)


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5, 6, 7])
def test_a_shuffled_fact_list_gives_the_same_verdict(seed: int) -> None:
    facts = a_busy_cadre()
    expected = judge(*facts)
    shuffled = list(facts)
    random.Random(seed).shuffle(shuffled)
    assert judge(*shuffled) == expected


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_facts_delivered_twice_count_once(seed: int) -> None:
    facts = a_busy_cadre()
    expected = judge(*facts)
    twice = facts + random.Random(seed).sample(facts, k=len(facts) // 2)
    random.Random(seed).shuffle(twice)
    assert judge(*twice) == expected
