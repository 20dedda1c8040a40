"""The projection's rules and the reference model agree on random histories.

Both implement docs/decisions.md independently: ``zhucun.projections.domain.rules`` (fed
through the projection's own event-to-fact mapping, ``facts_of``) and ``zhucun.reference``
(plain loops over the events' JSON). Here they judge a few hundred random cadre histories,
dense with edges (runs across year ends, gaps, leave around the limit, grades that recall or
withdraw, red lists, recalls citing decisions, dismissals, both policy packs); every
decision and pool entry must be the same, in the normal form of the document.
"""

from __future__ import annotations

import calendar
import random
import uuid
from datetime import date
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from zhucun.contracts.assessment import events as assessment
from zhucun.contracts.attendance import events as attendance
from zhucun.contracts.decisions import events as decisions
from zhucun.contracts.dispatch import events as dispatch
from zhucun.projections.decisions.projection import facts_of
from zhucun.projections.domain.rules import Packs, Verdict, evaluate
from zhucun.reference import Packs as ReferencePacks
from zhucun.reference import reference_model
from zhucun.shared.events import DomainEvent
from zhucun.shared.policy import PolicyBook

pytestmark = pytest.mark.unit

POLICIES = Path(__file__).resolve().parents[3] / "policies"
YUNNAN, LIANGSHAN = "530326", "513427"
CADRE = "c-1"


def version_for(county: str, on: date) -> str:
    return "liangshan-2025" if county == LIANGSHAN and on >= date(2025, 1, 1) else "reference-2021"


def month_close(
    month: str, county: str, rng: random.Random, diligent: bool
) -> attendance.MonthClosed:
    year, number = int(month[:4]), int(month[5:])
    days = calendar.monthrange(year, number)[1]
    shortfall = 0 if diligent or rng.random() < 0.55 else rng.randint(1, 8)
    personal, sick = rng.choice([0, 0, 0, 2, 5, 9, 14]), rng.choice([0, 0, 1, 4])
    if diligent:
        personal, sick = rng.choice([0, 0, 2]), 0
    return attendance.MonthClosed(
        cadre_id=CADRE,
        month=month,
        assignment_ids=("a-1",),
        village_id="v-1",
        days_in_month=days,
        days_in_post=days,
        presence_days=10,
        business_days=0,
        in_village_days=10,
        personal_leave_days=personal,
        sick_leave_days=sick,
        eligible_days=days,
        required_days=20,
        shortfall=shortfall,
        spot_checks=2,
        unexcused_absences=rng.choice([0, 0, 0, 1, 2]),
        policy_version=version_for(county, date(year, number, days)),
    )


def history(rng: random.Random) -> list[DomainEvent]:
    """One cadre's random two-and-a-half years in one county; a third of them diligent (no
    shortfall, absence or low grade: the pools' side)."""
    county = rng.choice([YUNNAN, LIANGSHAN])
    diligent = rng.random() < 0.35
    events: list[DomainEvent] = [
        dispatch.CadreAssigned(
            assignment_id="a-1",
            cadre_id=CADRE,
            team_id="t-1",
            round_id="r-1",
            county=county,
            village_id="v-1",
            role=dispatch.Role.MEMBER,
            kind=dispatch.AssignmentKind.INITIAL,
            term_start=date(2024, 7, 1),
            term_end=date(2026, 6, 30),
            policy_version="reference-2021",
        )
    ]
    months = [f"{y}-{m:02d}" for y in (2024, 2025, 2026) for m in range(1, 13)]
    events += [month_close(m, county, rng, diligent) for m in months if rng.random() < 0.8]
    quarterly = [assessment.QuarterlyGrade.AVERAGE] * 3 + list(assessment.QuarterlyGrade)
    if diligent:
        quarterly = [assessment.QuarterlyGrade.GOOD, assessment.QuarterlyGrade.FAIRLY_GOOD]
    for year in (2024, 2025, 2026):
        for number in range(1, 5):
            quarter = f"{year}-Q{number}"
            if rng.random() < 0.8:
                end = date(year, 3 * number, calendar.monthrange(year, 3 * number)[1])
                events.append(
                    assessment.QuarterlyAssessed(
                        cadre_id=CADRE,
                        county=county,
                        township="t",
                        quarter=quarter,
                        township_score=80,
                        villager_score=80,
                        county_panel_score=80,
                        score=80,
                        grade=rng.choice(quarterly),
                        policy_version=version_for(county, end),
                    )
                )
            if rng.random() < 0.3:
                events.append(
                    assessment.RedBlueListsPublished(
                        list_id=f"l-{quarter}-{rng.randint(1, 3)}",
                        county=county,
                        quarter=quarter,
                        cadres_ranked=10,
                        published_on=date(year, 12, 31),
                        red=(assessment.ListEntry(rank=1, cadre_id=CADRE, score=95),),
                        blue=(),
                        policy_version="reference-2021",
                    )
                )
        if rng.random() < 0.85:
            grades = [assessment.AnnualGrade.EXCELLENT] * 3 + list(assessment.AnnualGrade)
            if diligent:
                grades = [assessment.AnnualGrade.EXCELLENT, assessment.AnnualGrade.COMPETENT]
            events.append(
                assessment.AnnualResultIssued(
                    round_id=f"r-{year}",
                    county=county,
                    year=year,
                    cadre_id=CADRE,
                    grade=rng.choice(grades),
                )
            )
        for period in (str(year), f"{year}-Q{rng.randint(1, 4)}"):
            if rng.random() < 0.4:
                events.append(
                    assessment.VillagerEvaluationRecorded(
                        evaluation_id=f"e-{period}-{rng.random()}",
                        cadre_id=CADRE,
                        county=county,
                        period=period,
                        satisfaction=rng.choice([90, 94.9, 95, 99]),
                        respondents=30,
                    )
                )
    if rng.random() < 0.8:
        grade = rng.choice(
            [assessment.AnnualGrade.EXCELLENT] * (6 if diligent else 3)
            + list(assessment.AnnualGrade)
        )
        events.append(
            assessment.TermAssessed(
                assignment_id="a-1",
                cadre_id=CADRE,
                county=county,
                term_end=date(2026, 6, 30),
                proposed_grade=grade,
                grade=grade,
                policy_version=version_for(county, date(2026, 6, 30)),
            )
        )
    if not diligent and rng.random() < 0.2:
        events.append(
            assessment.SanctionRecorded(
                sanction_id=f"s-{rng.randint(1, 9)}",
                cadre_id=CADRE,
                county=county,
                kind="warning",
                decided_on=date(2025, rng.randint(1, 12), 15),
                authority="纪委",
            )
        )
    return events


def deliveries(events: list[DomainEvent]) -> list[tuple[str, DomainEvent]]:
    return [(str(uuid.uuid5(uuid.NAMESPACE_OID, repr(e))), e) for e in events]


def projection_verdict(identified: list[tuple[str, DomainEvent]], packs: Packs) -> Verdict:
    facts = [
        fact
        for event_id, event in identified
        for fact, _ in facts_of(
            # The two fields of a Delivery that facts_of reads.
            SimpleNamespace(payload=event, event=SimpleNamespace(event_id=event_id))  # type: ignore[arg-type]
        )
    ]
    return evaluate(CADRE, facts, packs)


def normal_form(verdict: Verdict) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    return (
        {
            (
                d.decision_id,
                d.cadre_id,
                d.rule,
                d.key,
                d.triggered_on,
                d.evidence,
                d.policy_version,
                d.status,
            )
            for d in verdict.decisions
        },
        {
            (
                e.cadre_id,
                e.pool,
                e.key,
                e.county,
                e.qualified_on,
                e.evidence,
                e.policy_version,
                e.status,
                e.status_on,
                e.status_reason,
                e.status_evidence,
            )
            for e in verdict.entries
        },
    )


def with_recalls_and_dismissals(
    identified: list[tuple[str, DomainEvent]], verdict: Verdict, rng: random.Random
) -> list[tuple[str, DomainEvent]]:
    """Execute some of the decisions (dispatch's recall citing them, at a random date) and
    dismiss others, as people would."""
    more = list(identified)
    for decision in verdict.decisions:
        roll = rng.random()
        if roll < 0.3:
            recall = dispatch.CadreRecalled(
                assignment_id="a-1",
                cadre_id=CADRE,
                team_id="t-1",
                village_id="v-1",
                recalled_on=date(rng.choice([2024, 2025, 2026]), rng.randint(1, 12), 28),
                reason="recall",
                decision_id=decision.decision_id,
            )
            more.append((str(uuid.uuid4()), recall))
        elif roll < 0.5:
            dismissal = decisions.RecallDismissed(
                decision_id=decision.decision_id,
                cadre_id=CADRE,
                dismissed_on=date(2026, 8, 1),
                reason="reviewed",
            )
            more.append((str(uuid.uuid4()), dismissal))
    return more


@pytest.mark.parametrize("seed", range(300))
def test_the_projection_rules_equal_the_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    book = PolicyBook.load(POLICIES)
    reference_packs = ReferencePacks.load(POLICIES)
    identified = deliveries(history(rng))
    first = projection_verdict(identified, Packs(book))
    identified = with_recalls_and_dismissals(identified, first, rng)
    ours = normal_form(projection_verdict(identified, Packs(book)))
    theirs = reference_model(
        [(event_id, e.event_type, e.to_data()) for event_id, e in identified], reference_packs
    )
    assert ours[0] == theirs[0], ours[0] ^ theirs[0]
    assert ours[1] == theirs[1], ours[1] ^ theirs[1]
