"""The simulator's generator, pure: determinism, the mix, and that a default-size county
triggers every rule of docs/decisions.md (each recall rule and each pool), with commands the
services' own deciders accept."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from datetime import date
from itertools import pairwise

import pytest

from zhucun.assessment.domain.policy import AssessmentPolicy
from zhucun.assessment.domain.rules import excellent_cap
from zhucun.contracts.assessment.events import AnnualGrade, QuarterlyGrade
from zhucun.contracts.dispatch.events import Role, UnitKind, UnitLevel
from zhucun.sim import Behaviour, Mix, MixError, Scenario, generate
from zhucun.sim import actions as a
from zhucun.sim.scenario import default_start
from zhucun.sim.world import county_codes

pytestmark = pytest.mark.unit

#: A fixed "today", so the tests do not depend on the day they run.
TODAY = date(2025, 11, 23)


def flat(scenario: Scenario) -> list[object]:
    """Every action of the timeline, with the check-ins spelled out."""
    out: list[object] = []
    for phase in scenario.phases():
        out.append(phase.name)
        out.extend(phase.barriers)
        for action in phase.actions:
            out.append(action)
            if isinstance(action, a.CheckInBatch):
                out.append(action.items())
    return out


@pytest.fixture(scope="module")
def county() -> Scenario:
    """A default-size county (500 cadres, the default mix)."""
    return generate(7, 500, today=TODAY)


def test_same_seed_same_commands_and_ids() -> None:
    first = generate(3, 40, today=TODAY)
    second = generate(3, 40, today=TODAY)
    assert first.cadre_ids == second.cadre_ids
    assert first.county_codes == second.county_codes
    assert flat(first) == flat(second)


def test_different_seeds_never_share_ids_or_counties() -> None:
    one = generate(3, 40, today=TODAY)
    other = generate(4, 40, today=TODAY)
    assert not one.cadre_ids & other.cadre_ids
    assert not set(one.county_codes) & set(other.county_codes)
    assert all(c.startswith("s3-") for c in one.cadre_ids)
    # Several seeds and counties on one shared system: codes never repeat.
    codes = [c for seed in range(100) for c in county_codes(seed, 5)]
    assert len(codes) == len(set(codes))
    assert all(c.startswith("53") and len(c) == 6 for c in codes)


def test_mix_proportions() -> None:
    scenario = generate(5, 200, mix="diligent=0.5,absentee=0.25,mediocre=0.25", today=TODAY)
    assert scenario.behaviour_counts() == {
        "diligent": 100,
        "absentee": 50,
        "mediocre": 50,
        "excellent": 0,
    }
    assert Mix.parse("diligent=3,absentee=1").counts(8) == {
        Behaviour.DILIGENT: 6,
        Behaviour.ABSENTEE: 2,
        Behaviour.MEDIOCRE: 0,
        Behaviour.EXCELLENT: 0,
    }
    counts = Mix.parse("diligent=0.6,absentee=0.15,mediocre=0.15,excellent=0.1").counts(499)
    assert sum(counts.values()) == 499
    for text in ("lazy=1", "diligent", "diligent=-1", "diligent=0"):
        with pytest.raises(MixError):
            Mix.parse(text)


def test_the_term_lies_in_the_past() -> None:
    assert default_start(date(2025, 11, 23)) == date(2023, 9, 1)
    scenario = generate(1, 20, today=TODAY)
    cal = scenario.calendar
    assert cal.term_start == date(2023, 9, 1)
    assert cal.term_end == date(2025, 9, 1)
    assert cal.term_over
    assert cal.round_years() == (2023, 2024)  # 2025 is not over
    for phase in scenario.phases():
        for action in phase.actions:
            assert action.at.date() <= TODAY
            if isinstance(action, a.CheckInBatch):
                assert all(day < TODAY for day, _ in action.days)


def test_the_world_respects_dispatchs_rules(county: Scenario) -> None:
    cadres = list(county.cadres)
    assert len(cadres) == 500 == len(county.cadre_ids)
    kinds = {c.unit_kind for c in cadres}
    levels = {c.unit_level for c in cadres}
    assert kinds == set(UnitKind)
    assert levels == set(UnitLevel)
    for c in county.counties:
        for team in c.teams:
            assert 3 <= len(team.cadre_ids) <= 5
        weak = [v for v in c.villages if "weak_party_branch" in v.categories]
        assert weak
        assert all(v.team_id is not None for v in weak)
    secretaries = [c for c in cadres if c.role is Role.FIRST_SECRETARY]
    assert all(c.party_member_since is not None for c in secretaries)


def months_of(scenario: Scenario, cadre_id: str) -> list[tuple[str, int, int, int, int]]:
    """(month, shortfall, leave days, unexcused absences, spot checks) of each closed month."""
    out = []
    for month in scenario.calendar.months:
        figures = scenario.month_plan(cadre_id, month).figures
        if figures is not None:
            out.append(
                (
                    month,
                    figures.shortfall,
                    figures.personal_leave_days + figures.sick_leave_days,
                    figures.unexcused_absences,
                    figures.spot_checks,
                )
            )
    return out


def consecutive(earlier: str, later: str) -> bool:
    y1, m1 = map(int, earlier.split("-"))
    y2, m2 = map(int, later.split("-"))
    return (y2 * 12 + m2) - (y1 * 12 + m1) == 1


def test_every_rule_is_triggered_in_a_default_county(county: Scenario) -> None:
    cal = county.calendar
    by_behaviour: dict[str, set[str]] = defaultdict(set)
    rule = defaultdict(set)
    yearly_ok: dict[tuple[str, int], bool] = {}
    for cadre in county.cadres:
        cid = cadre.cadre_id
        by_behaviour[cadre.behaviour.value].add(cid)
        closes = months_of(county, cid)
        leave: dict[int, int] = defaultdict(int)
        absences: dict[int, int] = defaultdict(int)
        for (m1, s1, *_), (m2, s2, *_) in pairwise(closes):
            if s1 and s2 and consecutive(m1, m2):
                rule[1].add(cid)
        for month, shortfall, days, unexcused, _ in closes:
            leave[int(month[:4])] += days
            absences[int(month[:4])] += unexcused
            key = (cid, int(month[:4]))
            yearly_ok[key] = yearly_ok.get(key, True) and shortfall == 0
        if any(total > 30 for total in leave.values()):
            rule[2].add(cid)
        if any(total >= 3 for total in absences.values()):
            rule[3].add(cid)
        grades = [county.quarter_result(cid, q).grade for q in cal.quarters()]
        if QuarterlyGrade.POOR in grades:
            rule[4].add(cid)
        if any(g1 is g2 is QuarterlyGrade.AVERAGE for g1, g2 in pairwise(grades)):
            rule[5].add(cid)
        if county.plans[cid].sanction_on is not None:
            rule[6].add(cid)
        if county.term_result(cid)[1] is AnnualGrade.INCOMPETENT:
            rule[4].add(cid)

    annual = {}
    for code in county.county_codes:
        for year in cal.round_years():
            proposals = county.annual_proposals(code, year)
            rules = county.pack(code, date(year, 12, 31)).rules(AssessmentPolicy)
            excellent = [p for p in proposals if p.grade is AnnualGrade.EXCELLENT]
            assert len(excellent) <= excellent_cap(len(proposals), rules)
            for p in proposals:
                annual[(p.cadre_id, year)] = p.grade
                if p.grade is AnnualGrade.INCOMPETENT:
                    rule[4].add(p.cadre_id)
            capped = [p for p in proposals if p.grade is not p.proposed]
            assert capped, "some proposals are capped by unexcused absences"

    red: dict[str, list[str]] = defaultdict(list)
    for code in county.county_codes:
        for quarter in cal.quarters():
            for cid in county.lists(code, quarter)[0]:
                red[cid].append(quarter)

    for number in range(1, 7):
        assert rule[number], f"recall rule {number} is never triggered"
    # The behaviours trigger what they are built for.
    assert rule[1] <= by_behaviour["absentee"]
    assert rule[2] <= by_behaviour["absentee"]
    assert rule[3] <= by_behaviour["absentee"]
    assert by_behaviour["mediocre"] & rule[5]
    assert not by_behaviour["diligent"] & (rule[1] | rule[2] | rule[3] | rule[4] | rule[6])

    excellent_years = [key for key, grade in annual.items() if grade is AnnualGrade.EXCELLENT]
    assert excellent_years, "someone is graded 优秀"
    assert {cid for cid, _ in excellent_years} <= by_behaviour["excellent"]
    # Pools: reserve (优秀, every month compliant), commend (优秀 and a red list that year),
    # publicise (red twice in the term; villagers at 95 or more), promote (term 优秀).
    assert any(yearly_ok.get(key) for key in excellent_years)
    assert any(any(q.startswith(f"{year}-") for q in red[cid]) for cid, year in excellent_years)
    assert any(len(quarters) >= 2 for quarters in red.values())
    assert any(
        s >= 95
        for cid in by_behaviour["excellent"]
        for s in county.plans[cid].satisfaction.values()
    )
    assert not any(
        s >= 95
        for b in ("diligent", "mediocre", "absentee")
        for cid in by_behaviour[b]
        for s in county.plans[cid].satisfaction.values()
    )
    promoted = [
        cid
        for cid in by_behaviour["excellent"]
        if county.term_result(cid)[1] is AnnualGrade.EXCELLENT
        and all(annual[(cid, y)] is not AnnualGrade.BASICALLY_COMPETENT for y in cal.round_years())
    ]
    assert promoted


def test_a_small_county_still_has_every_trait() -> None:
    """The traits are dealt in turn, so 15-20 cadres (the integration tests' size) have an
    absentee of each kind, a mediocre of each kind and a sanction."""
    scenario = generate(41, 16, today=TODAY)
    traits = {(p.cadre.behaviour.value, p.cadre.trait) for p in scenario.plans.values()}
    assert ("absentee", "three_absences") in traits
    assert ("mediocre", "consecutive_average") in traits
    assert any(p.sanction_on for p in scenario.plans.values())


def test_several_counties_split_the_cadres() -> None:
    scenario = generate(9, 1_203, today=TODAY)
    assert len(scenario.counties) == 3
    assert sorted(len(c.cadres) for c in scenario.counties) == [401, 401, 401]
    only = scenario.county_codes[1]
    actions = [x for phase in scenario.phases(only=[only]) for x in phase.actions[:50]]
    assert actions
    assert all(getattr(x, "county", only) == only for x in actions)


def test_month_figures_follow_the_pack() -> None:
    """Liangshan (5134) counts 200 days a year, prorated at each close."""
    scenario = generate(11, 12, codes=["513427"], start=date(2025, 1, 1), today=date(2026, 3, 1))
    plan = scenario.month_plan(next(iter(sorted(scenario.cadre_ids))), "2025-03")
    assert plan.figures is not None
    eligible = plan.figures.eligible_days
    assert plan.figures.required_days == -(-200 * eligible // 365)
    assert dataclasses.asdict(plan.figures)["days_in_month"] == 31
