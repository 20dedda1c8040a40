"""The reference model of docs/decisions.md, rule by rule, on hand-built events.

Events are built with the services' own event classes (so field names and values are the
published contract's) and fed to the model as ``(event id, event type, JSON data)`` facts.
"""

from __future__ import annotations

import calendar
import dataclasses
import itertools
from datetime import UTC, date, datetime
from pathlib import Path
from uuid import UUID, uuid5

import pytest

from zhucun.contracts.assessment.events import (
    AnnualResultIssued,
    ListEntry,
    QuarterlyAssessed,
    RedBlueListsPublished,
    SanctionRecorded,
    TermAssessed,
    VillagerEvaluationRecorded,
)
from zhucun.contracts.attendance.events import MonthClosed
from zhucun.contracts.dispatch.events import AssignmentKind, CadreAssigned, CadreRecalled, Role
from zhucun.reference import (
    AmbiguousFacts,
    DecisionRow,
    Fact,
    Packs,
    PoolRow,
    decision_id,
    read_pack,
    reference_decisions,
    reference_model,
    reference_pools,
)
from zhucun.reference.model import add_years
from zhucun.shared.envelope import RecordedEvent
from zhucun.shared.events import DomainEvent
from zhucun.shared.testing import PublishedEvent

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
PACKS = Packs.load(POLICIES)
REFERENCE = "reference-2021"
LIANGSHAN = "liangshan-2025"
KUNMING = "530102"  # a district of Kunming, Yunnan: only the reference pack covers it
NINGYUAN = "513427"  # Ningyuan county, under Liangshan (5134)
CADRE = "cadre-1"

_counter = itertools.count(1)


def new_id() -> str:
    return str(UUID(int=next(_counter)))


def fact(event: DomainEvent, event_id: str | None = None) -> Fact:
    return Fact(event_id or new_id(), event.event_type, event.to_data())


# --- builders -------------------------------------------------------------------------------


def month(
    ym: str,
    *,
    shortfall: int = 0,
    personal: int = 0,
    sick: int = 0,
    absences: int = 0,
    version: str = REFERENCE,
    cadre: str = CADRE,
) -> Fact:
    year, mon = (int(part) for part in ym.split("-"))
    days = calendar.monthrange(year, mon)[1]
    eligible = days - personal - sick
    required = min(20, eligible)
    in_village = max(0, required - shortfall)
    return fact(
        MonthClosed(
            cadre_id=cadre,
            month=ym,
            assignment_ids=("a-1",),
            village_id="v-1",
            days_in_month=days,
            days_in_post=days,
            presence_days=in_village,
            business_days=0,
            in_village_days=in_village,
            personal_leave_days=personal,
            sick_leave_days=sick,
            eligible_days=eligible,
            required_days=required,
            shortfall=shortfall,
            spot_checks=absences,
            unexcused_absences=absences,
            policy_version=version,
        )
    )


def quarterly(
    quarter: str,
    grade: str,
    *,
    county: str = KUNMING,
    version: str = REFERENCE,
    cadre: str = CADRE,
    event_id: str | None = None,
) -> Fact:
    score = {"good": 92.0, "fairly_good": 85.0, "average": 70.0, "poor": 50.0}[grade]
    return fact(
        QuarterlyAssessed(
            cadre_id=cadre,
            county=county,
            township="t-1",
            quarter=quarter,
            township_score=score,
            villager_score=score,
            county_panel_score=score,
            score=score,
            grade=grade,
            policy_version=version,
        ),
        event_id,
    )


def annual(year: int, grade: str, *, county: str = KUNMING, cadre: str = CADRE) -> Fact:
    return fact(
        AnnualResultIssued(
            round_id=f"round-{county}-{year}",
            county=county,
            year=year,
            cadre_id=cadre,
            grade=grade,
        )
    )


def term(
    assignment: str,
    term_end: date,
    grade: str,
    *,
    county: str = KUNMING,
    version: str = REFERENCE,
    cadre: str = CADRE,
) -> Fact:
    return fact(
        TermAssessed(
            assignment_id=assignment,
            cadre_id=cadre,
            county=county,
            term_end=term_end,
            proposed_grade=grade,
            grade=grade,
            policy_version=version,
        )
    )


def sanction(
    sanction_id: str, decided_on: date, *, county: str = KUNMING, cadre: str = CADRE
) -> Fact:
    return fact(
        SanctionRecorded(
            sanction_id=sanction_id,
            cadre_id=cadre,
            county=county,
            kind="警告",
            decided_on=decided_on,
            authority="县纪委",
        )
    )


def red_list(quarter: str, *cadres: str, county: str = KUNMING, version: str = REFERENCE) -> Fact:
    red = tuple(ListEntry(rank=i + 1, cadre_id=c, score=95.0 - i) for i, c in enumerate(cadres))
    return fact(
        RedBlueListsPublished(
            list_id=new_id(),
            county=county,
            quarter=quarter,
            red=red,
            blue=(ListEntry(rank=1, cadre_id="someone-else", score=40.0),),
            cadres_ranked=20,
            published_on=date(2030, 1, 1),
            policy_version=version,
        )
    )


def evaluation(
    period: str, satisfaction: float, *, county: str = KUNMING, cadre: str = CADRE
) -> Fact:
    return fact(
        VillagerEvaluationRecorded(
            evaluation_id=new_id(),
            cadre_id=cadre,
            county=county,
            period=period,
            satisfaction=satisfaction,
            respondents=40,
        )
    )


def assigned(
    assignment: str, start: date, end: date, *, county: str = KUNMING, cadre: str = CADRE
) -> Fact:
    return fact(
        CadreAssigned(
            assignment_id=assignment,
            cadre_id=cadre,
            team_id="team-1",
            round_id="round-1",
            county=county,
            village_id="v-1",
            role=Role.MEMBER,
            kind=AssignmentKind.INITIAL,
            term_start=start,
            term_end=end,
            policy_version=REFERENCE,
        )
    )


def recalled(
    on: date,
    *,
    decision: str | None = None,
    assignment: str = "a-1",
    cadre: str = CADRE,
    event_id: str | None = None,
) -> Fact:
    return fact(
        CadreRecalled(
            assignment_id=assignment,
            cadre_id=cadre,
            team_id="team-1",
            village_id="v-1",
            recalled_on=on,
            reason="召回",
            decision_id=decision,
        ),
        event_id,
    )


def dismissed(decision: str, *, cadre: str = CADRE) -> Fact:
    data = {"decision_id": decision, "cadre_id": cadre, "reason": "reviewed: a hospital stay"}
    return Fact(new_id(), "decisions.RecallDismissed", data)


# --- helpers --------------------------------------------------------------------------------


def decisions(*facts: Fact, packs: Packs = PACKS) -> list[DecisionRow]:
    return sorted(reference_decisions(facts, packs), key=lambda row: (row[2], row[4], row[3]))


def pools(*facts: Fact, packs: Packs = PACKS) -> list[PoolRow]:
    return sorted(reference_pools(facts, packs), key=lambda row: (row[1], row[4], row[2]))


def ids(*facts: Fact) -> tuple[str, ...]:
    return tuple(sorted(f.event_id for f in facts))


def rule_keys(rows: list[DecisionRow], rule: int) -> list[str]:
    return [row[3] for row in rows if row[2] == rule]


def status(row: PoolRow) -> tuple[object, ...]:
    return row[7:]


def only(rows: list[PoolRow], pool: str) -> PoolRow:
    (row,) = [r for r in rows if r[1] == pool]
    return row


ACTIVE = ("active", None, None, None)


# --- rule 1: shortfall in consecutive closed months -----------------------------------------


def test_rule_1_two_consecutive_short_months() -> None:
    jan, feb = month("2025-01", shortfall=3), month("2025-02", shortfall=1)
    assert decisions(month("2024-12"), jan, feb) == [
        (
            decision_id(CADRE, 1, "2025-02"),
            CADRE,
            1,
            "2025-02",
            date(2025, 2, 28),
            ids(jan, feb),
            REFERENCE,
            "recommended",
        )
    ]


def test_decision_id_is_the_documented_uuid5() -> None:
    namespace = UUID("6f1c2a9e-7b4d-5e8f-9a10-3c2b1d0e4f5a")
    assert decision_id("c", 1, "2025-04") == str(uuid5(namespace, "recall|c|1|2025-04"))


def test_rule_1_run_crosses_the_year_boundary() -> None:
    dec, jan = month("2024-12", shortfall=2), month("2025-01", shortfall=2)
    (row,) = decisions(dec, jan)
    assert row[3:6] == ("2025-01", date(2025, 1, 31), ids(dec, jan))


def test_rule_1_a_month_without_a_close_breaks_the_run() -> None:
    assert decisions(month("2025-01", shortfall=2), month("2025-03", shortfall=2)) == []


def test_rule_1_a_compliant_month_breaks_the_run() -> None:
    facts = [month("2025-01", shortfall=2), month("2025-02"), month("2025-03", shortfall=2)]
    assert decisions(*facts) == []


def test_rule_1_the_run_restarts_after_a_trigger() -> None:
    jan, feb, mar, apr, may = (month(f"2025-0{m}", shortfall=1) for m in range(1, 6))
    rows = decisions(jan, feb, mar, apr, may)
    assert [(r[3], r[5]) for r in rows] == [("2025-02", ids(jan, feb)), ("2025-04", ids(mar, apr))]


def test_rule_1_uses_the_month_close_pack() -> None:
    facts = [month("2025-01", shortfall=1, version=LIANGSHAN), month("2025-02", shortfall=1)]
    (row,) = decisions(*reversed(facts))  # and the order of delivery does not matter
    assert row[6] == REFERENCE  # the trigger month's recorded pack


# --- rule 2: leave ----------------------------------------------------------------------------


def test_rule_2_leave_exactly_at_the_limit_is_no_recall() -> None:
    facts = [month("2025-03", personal=20), month("2025-04"), month("2025-05", sick=10)]
    assert decisions(*facts) == []


def test_rule_2_one_day_over_the_limit_is_a_recall_once_a_year() -> None:
    mar, apr, may = month("2025-03", personal=20), month("2025-04"), month("2025-05", sick=11)
    later = month("2025-06", personal=5)
    next_year = month("2026-01", personal=31)
    rows = decisions(mar, apr, may, later, next_year)
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        (2, "2025", date(2025, 5, 31), ids(mar, may)),  # closes with leave only
        (2, "2026", date(2026, 1, 31), ids(next_year)),
    ]


def test_rule_2_the_year_is_the_calendar_year() -> None:
    assert decisions(month("2024-12", personal=20), month("2025-01", personal=20)) == []


# --- rule 3: unexcused absences ---------------------------------------------------------------


def test_rule_3_absences_reaching_three_in_a_year() -> None:
    jan, feb, mar = month("2025-01", absences=1), month("2025-02"), month("2025-03", absences=2)
    (row,) = decisions(jan, feb, mar, month("2025-04", absences=5))
    assert row[2:7] == (3, "2025", date(2025, 3, 31), ids(jan, mar), REFERENCE)


def test_rule_3_two_absences_are_no_recall() -> None:
    assert decisions(month("2025-01", absences=1), month("2025-11", absences=1)) == []


def test_rule_3_absences_do_not_add_up_across_years() -> None:
    assert decisions(month("2024-12", absences=2), month("2025-01", absences=2)) == []


# --- rule 4: grades ---------------------------------------------------------------------------


def test_rule_4_annual_term_and_quarterly_grades() -> None:
    year = annual(2025, "incompetent")
    end = term("a-7", date(2026, 8, 31), "incompetent")
    poor = quarterly("2025-Q2", "poor")
    harmless = [annual(2024, "basically_competent"), quarterly("2025-Q1", "average")]
    rows = decisions(year, end, poor, *harmless)
    assert {(r[3], r[4], r[5], r[6]) for r in rows} == {
        ("annual:2025", date(2025, 12, 31), ids(year), REFERENCE),
        ("term:a-7", date(2026, 8, 31), ids(end), REFERENCE),
        ("quarter:2025-Q2", date(2025, 6, 30), ids(poor), REFERENCE),
    }
    assert {r[2] for r in rows} == {4}


# --- rule 5: 一般 in consecutive quarters -----------------------------------------------------


def test_rule_5_two_averages_across_q4_and_q1() -> None:
    q4, q1 = quarterly("2024-Q4", "average"), quarterly("2025-Q1", "average")
    (row,) = decisions(q4, q1)
    assert row[2:6] == (5, "2025-Q1", date(2025, 3, 31), ids(q4, q1))


def test_rule_5_average_poor_average_is_no_rule_5() -> None:
    facts = [
        quarterly("2025-Q1", "average"),
        quarterly("2025-Q2", "poor"),
        quarterly("2025-Q3", "average"),
    ]
    rows = decisions(*facts)
    assert rule_keys(rows, 5) == []
    assert rule_keys(rows, 4) == ["quarter:2025-Q2"]


def test_rule_5_a_quarter_without_a_grade_breaks_the_run() -> None:
    assert decisions(quarterly("2025-Q1", "average"), quarterly("2025-Q3", "average")) == []


def test_rule_5_the_run_restarts_after_a_trigger() -> None:
    facts = [quarterly(f"2025-Q{q}", "average") for q in range(1, 5)]
    assert rule_keys(decisions(*facts), 5) == ["2025-Q2", "2025-Q4"]


# --- rule 6: sanctions ------------------------------------------------------------------------


def test_rule_6_a_sanction() -> None:
    recorded = sanction("s-42", date(2025, 7, 3))
    (row,) = decisions(recorded)
    assert row[2:7] == (6, "s-42", date(2025, 7, 3), ids(recorded), REFERENCE)


# --- decision status --------------------------------------------------------------------------


def test_a_decision_is_executed_by_a_recall_citing_it() -> None:
    the_id = decision_id(CADRE, 6, "s-1")
    facts = [sanction("s-1", date(2025, 7, 3)), recalled(date(2025, 7, 20), decision=the_id)]
    (row,) = decisions(*facts)
    assert (row[0], row[7]) == (the_id, "executed")


def test_a_decision_is_dismissed_and_execution_wins_over_dismissal() -> None:
    the_id = decision_id(CADRE, 6, "s-1")
    dismissal = dismissed(the_id)
    (row,) = decisions(sanction("s-1", date(2025, 7, 3)), dismissal)
    assert row[7] == "dismissed"
    recall = recalled(date(2025, 8, 1), decision=the_id)
    (row,) = decisions(sanction("s-1", date(2025, 7, 3)), dismissal, recall)
    assert row[7] == "executed"


def test_a_recall_citing_nothing_leaves_decisions_recommended() -> None:
    (row,) = decisions(sanction("s-1", date(2025, 7, 3)), recalled(date(2025, 7, 20)))
    assert row[7] == "recommended"


# --- input ------------------------------------------------------------------------------------


def test_events_are_taken_once_per_event_id_and_unused_types_ignored() -> None:
    jan, feb = month("2025-01", shortfall=1), month("2025-02", shortfall=1)
    noise = Fact(new_id(), "attendance.CheckInRecorded", {"cadre_id": CADRE})
    assert decisions(jan, feb, jan, feb, noise) == decisions(jan, feb)


def test_two_different_closes_of_one_month_are_refused() -> None:
    with pytest.raises(AmbiguousFacts):
        decisions(month("2025-01", shortfall=1), month("2025-01"))


def test_published_and_recorded_events_are_read() -> None:
    jan, feb = month("2025-01", shortfall=1), month("2025-02", shortfall=1)
    now = datetime(2025, 3, 1, tzinfo=UTC)

    def recorded(f: Fact, position: int) -> RecordedEvent:
        return RecordedEvent(
            event_id=UUID(f.event_id),
            stream_id=f"attendance-month-{CADRE}-x",
            stream_version=position,
            global_position=position,
            event_type=f.event_type,
            schema_version=1,
            key=CADRE,
            data=dict(f.data),
            occurred_at=now,
            recorded_at=now,
            correlation_id=UUID(int=0),
            causation_id=None,
            actor=None,
            prev_hash="0" * 64,
            hash="0" * 64,
        )

    published = PublishedEvent(0, 0, CADRE.encode(), "attendance", recorded(jan, 1))
    assert reference_decisions([published, recorded(feb, 2)], PACKS) == set(decisions(jan, feb))
    as_tuples = [(UUID(f.event_id), f.event_type, f.data) for f in (jan, feb)]
    assert reference_decisions(as_tuples, PACKS) == set(decisions(jan, feb))


# --- pools ------------------------------------------------------------------------------------


def test_reserve_excellent_with_every_close_compliant() -> None:
    grade = annual(2025, "excellent")
    closes = [month(f"2025-{m:02d}") for m in range(1, 13)]
    assert pools(grade, *closes, month("2024-12", shortfall=5)) == [
        (
            CADRE,
            "reserve",
            "2025",
            KUNMING,
            date(2025, 12, 31),
            ids(grade, *closes),
            REFERENCE,
            "active",
            None,
            None,
            None,
        )
    ]


def test_no_reserve_with_a_short_month_or_without_any_close() -> None:
    assert pools(annual(2025, "excellent"), month("2025-01"), month("2025-02", shortfall=1)) == []
    assert pools(annual(2025, "excellent")) == []
    assert pools(annual(2025, "competent"), month("2025-01")) == []


def test_promote_excellent_term_with_its_annual_grades() -> None:
    start = assigned("a-1", date(2024, 3, 1), date(2026, 2, 28))
    grades = [annual(2024, "competent"), annual(2025, "excellent"), annual(2026, "excellent")]
    before = annual(2023, "incompetent")  # before the term: no bar (but a rule-4 decision)
    end = term("a-1", date(2026, 2, 28), "excellent")
    row = only(pools(start, before, *grades, end), "promote")
    assert row[:7] == (
        CADRE,
        "promote",
        "term:a-1",
        KUNMING,
        date(2026, 2, 28),
        ids(end, *grades),
        REFERENCE,
    )
    assert status(row) == ACTIVE


def test_no_promote_with_a_low_annual_grade_or_a_decision_in_the_term() -> None:
    start = assigned("a-1", date(2024, 3, 1), date(2026, 2, 28))
    end = term("a-1", date(2026, 2, 28), "excellent")
    assert pools(start, end, annual(2024, "basically_competent")) == []
    short = [month("2025-05", shortfall=1), month("2025-06", shortfall=1)]
    assert pools(start, end, *short) == []
    # The decision dismissed: promoted after all.
    the_id = decision_id(CADRE, 1, "2025-06")
    assert [r[1] for r in pools(start, end, *short, dismissed(the_id))] == ["promote"]


def test_promote_without_a_known_assignment_has_no_lower_bound() -> None:
    end = term("a-9", date(2026, 2, 28), "excellent")
    assert pools(end, sanction("s-1", date(2021, 1, 1))) == []
    assert pools(end, annual(2021, "basically_competent")) == []
    assert [r[1] for r in pools(end, annual(2021, "competent"))] == ["promote"]


def test_publicise_on_the_red_list_twice_in_the_term() -> None:
    start = assigned("a-1", date(2024, 3, 1), date(2026, 2, 28))
    before = red_list("2024-Q1", CADRE)  # ends 2024-03-31: inside the term
    earlier = red_list("2023-Q4", CADRE)  # outside
    second = red_list("2024-Q3", "other", CADRE)
    third = red_list("2025-Q1", CADRE)
    row = only(pools(start, earlier, before, second, third), "publicise")
    assert row[2:7] == ("red:a-1", KUNMING, date(2024, 9, 30), ids(before, second), REFERENCE)
    assert status(row) == ACTIVE
    assert pools(start, earlier, before) == []


def test_publicise_on_villagers_satisfaction() -> None:
    good = evaluation("2025-Q1", 95.0)
    also = evaluation("2025-Q1", 97.5)
    rows = pools(good, also, evaluation("2025-Q2", 94.9), evaluation("2025", 80.0))
    assert [r[1:8] for r in rows] == [
        (
            "publicise",
            "villagers:2025-Q1",
            KUNMING,
            date(2025, 3, 31),
            ids(good, also),
            REFERENCE,
            "active",
        )
    ]


def test_commend_excellent_and_red_listed_that_year() -> None:
    grade = annual(2025, "excellent")
    red = red_list("2025-Q2", CADRE)
    row = only(pools(grade, red, red_list("2024-Q4", CADRE)), "commend")
    assert row[1:8] == (
        "commend",
        "2025",
        KUNMING,
        date(2025, 12, 31),
        ids(grade, red),
        REFERENCE,
        "active",
    )
    assert pools(grade, red_list("2024-Q4", CADRE)) == []


# --- withdrawn and barred ---------------------------------------------------------------------


def reserve_2024() -> list[Fact]:
    return [annual(2024, "excellent"), *(month(f"2024-{m:02d}") for m in range(1, 13))]


def test_an_entry_is_withdrawn_by_a_later_recall_decision() -> None:
    facts = [*reserve_2024(), month("2025-03", shortfall=1), month("2025-04", shortfall=1)]
    (row,) = pools(*facts)
    the_id = decision_id(CADRE, 1, "2025-04")
    assert status(row) == ("withdrawn", date(2025, 4, 30), "recall_decision", the_id)
    # Dismissed, the decision no longer withdraws anything.
    (row,) = pools(*facts, dismissed(the_id))
    assert status(row) == ACTIVE


def test_an_entry_is_withdrawn_by_a_later_low_grade() -> None:
    low = annual(2025, "basically_competent")
    (row,) = pools(*reserve_2024(), low)
    assert status(row) == ("withdrawn", date(2025, 12, 31), "low_grade", low.event_id)


def test_withdrawal_names_the_earliest_with_the_documented_ties() -> None:
    poor = quarterly("2025-Q2", "poor")  # a low grade and a rule-4 decision, same day
    recall = recalled(date(2025, 6, 30))  # a recall by dispatch, same day
    facts = [*reserve_2024(), poor, recall, quarterly("2025-Q1", "fairly_good")]
    (row,) = pools(*facts)
    the_id = decision_id(CADRE, 4, "quarter:2025-Q2")
    assert status(row) == ("withdrawn", date(2025, 6, 30), "recall_decision", the_id)
    (row,) = pools(*facts, dismissed(the_id))
    assert status(row) == ("withdrawn", date(2025, 6, 30), "recalled", recall.event_id)
    (row,) = pools(*reserve_2024(), poor, dismissed(the_id))
    assert status(row) == ("withdrawn", date(2025, 6, 30), "low_grade", poor.event_id)
    # Earlier than all of them: a recall on 2025-05-01.
    early = recalled(date(2025, 5, 1))
    (row,) = pools(*facts, early)
    assert status(row) == ("withdrawn", date(2025, 5, 1), "recalled", early.event_id)


def test_a_disqualifier_before_the_qualifying_day_does_not_withdraw() -> None:
    # A quarterly 差 in Q1 2024 is a recall decision of 2024-03-31, before 31 Dec 2024.
    (row,) = pools(*reserve_2024(), quarterly("2024-Q1", "poor"))
    assert status(row) == ACTIVE


def test_a_recall_bars_reserve_within_the_ban_and_not_after_it() -> None:
    reserve = [annual(2025, "excellent"), month("2025-06")]
    recall = recalled(date(2023, 1, 1))
    (row,) = pools(recall, *reserve)
    assert status(row) == ("barred", date(2023, 1, 1), "recall_ban", recall.event_id)
    # Recalled on 31 Dec 2022: the ban ends on 31 Dec 2025, the day the entry qualifies.
    (row,) = pools(recalled(date(2022, 12, 31)), *reserve)
    assert status(row) == ACTIVE
    (row,) = pools(recalled(date(2022, 12, 30)), *reserve)
    assert status(row) == ACTIVE


def test_the_ban_from_29_february() -> None:
    assert add_years(date(2024, 2, 29), 3) == date(2027, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)
    recall = recalled(date(2024, 2, 29))
    start = assigned("a-2", date(2025, 3, 1), date(2027, 2, 28))
    (row,) = pools(recall, start, term("a-2", date(2027, 2, 28), "excellent"))
    assert status(row) == ACTIVE  # Q = R + 3 years
    start = assigned("a-2", date(2025, 3, 1), date(2027, 2, 27))
    (row,) = pools(recall, start, term("a-2", date(2027, 2, 27), "excellent"))
    assert status(row)[:3] == ("barred", date(2024, 2, 29), "recall_ban")


def test_the_earliest_of_several_banning_recalls_is_named() -> None:
    first, second = recalled(date(2023, 5, 1)), recalled(date(2024, 5, 1))
    (row,) = pools(second, first, annual(2025, "excellent"), month("2025-06"))
    assert status(row) == ("barred", date(2023, 5, 1), "recall_ban", first.event_id)


def test_a_recall_followed_by_a_reassignment() -> None:
    praised = evaluation("2023-Q4", 98.0)  # an entry before everything below
    first = assigned("a-1", date(2024, 1, 1), date(2025, 12, 31))
    jan, feb = month("2024-01", shortfall=4), month("2024-02", shortfall=4)
    the_id = decision_id(CADRE, 1, "2024-02")
    recall = recalled(date(2024, 3, 10), decision=the_id, assignment="a-1")
    second = assigned("a-2", date(2024, 6, 1), date(2026, 5, 31))
    reds = [red_list("2024-Q3", CADRE), red_list("2024-Q4", CADRE)]
    end = term("a-2", date(2026, 5, 31), "excellent")
    history = [praised, first, jan, feb, recall, second, *reds, end]
    decided, pooled = reference_model(history, PACKS)

    (decision,) = decided
    assert (decision[0], decision[7]) == (the_id, "executed")
    by_key = {row[2]: row for row in pooled}
    assert set(by_key) == {"villagers:2023-Q4", "red:a-1", "red:a-2", "term:a-2"}
    # The earlier entry is withdrawn by the decision (dated before the recall itself).
    assert status(by_key["villagers:2023-Q4"]) == (
        "withdrawn",
        date(2024, 2, 29),
        "recall_decision",
        the_id,
    )
    # The decision is before a-2's term, so it does not stop the promotion, but the recall
    # bars promote (a barred pool of the reference pack) for 3 years; publicise is not barred.
    # The red lists fall in a-1's planned term too (it ran to 2025-12-31 on paper).
    assert status(by_key["red:a-1"]) == ACTIVE
    assert status(by_key["red:a-2"]) == ACTIVE
    assert status(by_key["term:a-2"]) == (
        "barred",
        date(2024, 3, 10),
        "recall_ban",
        recall.event_id,
    )


# --- packs ------------------------------------------------------------------------------------


def test_the_liangshan_pack_in_force_under_5134() -> None:
    assert PACKS.in_force(NINGYUAN, date(2025, 1, 1)).version == LIANGSHAN
    assert PACKS.in_force(NINGYUAN, date(2024, 12, 31)).version == REFERENCE
    assert PACKS.in_force(KUNMING, date(2025, 6, 1)).version == REFERENCE
    rows = decisions(
        annual(2025, "incompetent", county=NINGYUAN),
        annual(2024, "incompetent", county=NINGYUAN),
        sanction("s-1", date(2025, 2, 1), county=NINGYUAN),
        sanction("s-2", date(2025, 2, 1), county=KUNMING),
    )
    assert {(r[3], r[6]) for r in rows} == {
        ("annual:2025", LIANGSHAN),
        ("annual:2024", REFERENCE),
        ("s-1", LIANGSHAN),
        ("s-2", REFERENCE),
    }


def test_the_liangshan_pack_bars_every_pool_after_a_recall() -> None:
    recall = recalled(date(2024, 11, 1))
    for county, expected in [(NINGYUAN, "barred"), (KUNMING, "active")]:
        facts = [recall, evaluation("2025-Q2", 99.0, county=county)]
        (row,) = pools(*facts)
        assert (row[3], row[6], row[7]) == (
            county,
            LIANGSHAN if county == NINGYUAN else REFERENCE,
            expected,
        )


def test_pack_in_force_prefers_the_most_specific_then_the_latest() -> None:
    reference = read_pack(POLICIES / "reference-2021.toml")
    kunming = dataclasses.replace(
        reference, version="kunming-2023", jurisdiction="530100", effective_from=date(2023, 1, 1)
    )
    yunnan = dataclasses.replace(
        reference, version="yunnan-2024", jurisdiction="53", effective_from=date(2024, 1, 1)
    )
    kunming_later = dataclasses.replace(
        kunming, version="kunming-2024", effective_from=date(2024, 6, 1)
    )
    packs = Packs([reference, kunming, yunnan, kunming_later])
    assert packs.in_force("530102", date(2022, 12, 31)).version == REFERENCE
    assert packs.in_force("530102", date(2024, 3, 1)).version == "kunming-2023"
    assert packs.in_force("530102", date(2024, 6, 1)).version == "kunming-2024"
    assert packs.in_force("530302", date(2024, 3, 1)).version == "yunnan-2024"
    assert packs.in_force("513427", date(2024, 3, 1)).version == REFERENCE


# --- what-if ----------------------------------------------------------------------------------


def test_an_override_pack_changes_the_outcome() -> None:
    reference = read_pack(POLICIES / "reference-2021.toml")
    what_if = dataclasses.replace(
        reference,
        version="what-if",
        recall_shortfall_consecutive_months=3,
        annual_leave_limit_days=40,
        publicise_villager_satisfaction_min=90,
    )
    overridden = Packs.load(POLICIES, override=what_if)
    facts = [
        month("2025-01", shortfall=1, personal=20),
        month("2025-02", shortfall=1, personal=11, version=LIANGSHAN),
        evaluation("2025-Q1", 92.0, county=NINGYUAN),
    ]
    assert [(r[2], r[6]) for r in decisions(*facts)] == [(1, LIANGSHAN), (2, LIANGSHAN)]
    assert pools(*facts) == []
    assert decisions(*facts, packs=overridden) == []
    (row,) = pools(*facts, packs=overridden)
    assert (row[2], row[6]) == ("villagers:2025-Q1", "what-if")
    third = month("2025-03", shortfall=1)
    assert [(r[3], r[6]) for r in decisions(*facts, third, packs=overridden)] == [
        ("2025-03", "what-if")
    ]
