"""A simulated county's whole term through the running services over HTTP, and what reached
the topics: every cadre-month closed with the figures the scenario planned, every quarter
graded, the lists, the annual rounds and the term assessments.

The services decide on the wall clock (a quarter is assessed once over, check-ins from the
future are refused), so the scenario is generated as of today: the default start puts the
whole term in the past.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pytest

from zhucun.sim import Scenario, generate, run_http
from zhucun.sim.scenario import today_in_shanghai

if TYPE_CHECKING:
    from sim_system import KeyReader, RunningSystem

    from zhucun.shared.testing import PublishedEvent

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEED = 41
CADRES = 16
#: When each scenario started being sent.
STARTED: dict[int, datetime] = {}


async def published(
    read_keys: KeyReader, bootstrap: str, topic: str, scenario: Scenario
) -> list[PublishedEvent]:
    """The scenario's records on ``topic`` (the topic is shared by the whole session), as
    stored since the scenario started (a broker kept between sessions may hold an earlier
    run of the same seed)."""
    records = await read_keys(
        bootstrap, topic, prefix=f"{scenario.prefix}-", keys=frozenset(scenario.county_codes)
    )
    return [p for p in records if p.event.recorded_at >= STARTED[scenario.seed]]


async def wait_for(
    read_keys: KeyReader,
    bootstrap: str,
    topic: str,
    scenario: Scenario,
    event_type: str,
    count: int,
) -> list[PublishedEvent]:
    """The scenario's records once ``count`` of ``event_type`` are there (relays lag)."""
    deadline = time.monotonic() + 60
    while True:
        records = await published(read_keys, bootstrap, topic, scenario)
        have = sum(1 for p in records if p.event.event_type == event_type)
        if have >= count or time.monotonic() > deadline:
            return records
        await asyncio.sleep(0.5)


async def test_a_county_term_through_the_services(
    running_system: RunningSystem, key_reader: KeyReader
) -> None:
    today = today_in_shanghai()
    scenario = generate(SEED, CADRES, today=today)
    cal = scenario.calendar
    assert cal.term_over, "the default start puts the term in the past"

    STARTED[SEED] = datetime.now(UTC)
    report = await run_http(scenario, running_system.urls, concurrency=24)
    assert report.commands["assign_cadre"] == CADRES
    assert report.events["attendance.MonthClosed"] == CADRES * len(cal.months)

    bootstrap = running_system.kafka_bootstrap
    months = cal.months
    closes = [
        p.event
        for p in await wait_for(
            key_reader,
            bootstrap,
            "attendance.events.v1",
            scenario,
            "attendance.MonthClosed",
            CADRES * len(months),
        )
        if p.event.event_type == "attendance.MonthClosed"
    ]
    got = {(e.data["cadre_id"], e.data["month"]): e.data for e in closes}
    assert set(got) == {(c, m) for c in scenario.cadre_ids for m in months}
    for (cadre_id, month), data in got.items():
        figures = scenario.month_plan(cadre_id, month).figures
        assert figures is not None
        assert {k: data[k] for k in dataclasses.asdict(figures)} == dataclasses.asdict(figures), (
            cadre_id,
            month,
        )

    quarters = cal.quarters()
    rounds = cal.round_years()
    expected_results = CADRES * len(rounds)
    records = await wait_for(
        key_reader, bootstrap, "assessment.events.v1", scenario, "assessment.TermAssessed", CADRES
    )
    by_type = Counter(p.event.event_type for p in records)
    assert by_type["assessment.QuarterlyAssessed"] == CADRES * len(quarters)
    assert by_type["assessment.RedBlueListsPublished"] == len(quarters)
    assert by_type["assessment.AnnualResultIssued"] == expected_results
    assert by_type["assessment.TermAssessed"] == CADRES
    assert (
        by_type["assessment.AdmonitionTalksCompleted"]
        == by_type["assessment.AdmonitionTalksRequired"]
    )
    assert by_type["assessment.SanctionRecorded"] >= 1

    for p in records:
        data = p.event.data
        match p.event.event_type:
            case "assessment.QuarterlyAssessed":
                expected = scenario.quarter_result(data["cadre_id"], data["quarter"])
                assert (data["score"], data["grade"]) == (expected.score, expected.grade.value)
            case "assessment.RedBlueListsPublished":
                red, blue = scenario.lists(data["county"], data["quarter"])
                assert [e["cadre_id"] for e in data["red"]] == red
                assert [e["cadre_id"] for e in data["blue"]] == blue
            case "assessment.AnnualResultIssued":
                proposals = {
                    x.cadre_id: x for x in scenario.annual_proposals(data["county"], data["year"])
                }
                assert data["grade"] == proposals[data["cadre_id"]].grade.value
            case "assessment.TermAssessed":
                _, grade, _ = scenario.term_result(data["cadre_id"])
                assert data["grade"] == grade.value

    dispatch = await published(key_reader, bootstrap, "dispatch.events.v1", scenario)
    ended = [p for p in dispatch if p.event.event_type == "dispatch.AssignmentEnded"]
    assert len(ended) == CADRES

    # Running the same seed again is safe: every command is recognised as done. (A few
    # phases of each kind, not the whole term again: the suite has a time budget.)
    phases = list(scenario.phases())
    names = ("dispatch", "replicas", f"{months[0]} activity", f"{months[0]} close")
    sample = [p for p in phases if p.name.startswith(names) or p.name.startswith("term end")]
    sample += [p for p in phases if p.name.startswith(f"{quarters[0]} ")]
    sample += [p for p in phases if p.name.startswith(f"{rounds[0]} annual")] if rounds else []
    again = await run_http(scenario, running_system.urls, concurrency=24, phases=sample)
    assert sum(again.events.values()) == 0, again.events
    assert again.duplicates >= sum(len(p.actions) for p in sample[2:]) // 2
