"""The read side equals the reference model: a simulated county's whole term through the
running services (real Kafka and PostgreSQL), for several seeds. The ``decisions``
projection's recall decisions and pool entries must be exactly what the independent
reference model (``zhucun.reference``) derives from the same topics, in the normal form of
docs/decisions.md; an org_admin's dismissal then moves both the same way.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx
import pytest

from zhucun.reference import Packs, reference_model
from zhucun.shared.auth import mint_token
from zhucun.shared.settings import AuthSettings
from zhucun.shared.testing import read_topic
from zhucun.sim import Scenario, generate, run_http
from zhucun.sim.scenario import today_in_shanghai

if TYPE_CHECKING:
    from sim_system import RunningSystem

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

POLICIES = Path(__file__).resolve().parents[3] / "policies"
TOPICS = (
    "dispatch.events.v1",
    "attendance.events.v1",
    "assessment.events.v1",
    "decisions.events.v1",
)
CADRES = 12
#: How long the read side may take to catch up with the topics.
CATCH_UP_SECONDS = 90.0

Rows = set[tuple[Any, ...]]


async def read_model(dsn: str, cadres: frozenset[str]) -> tuple[Rows, Rows]:
    """The projection's decisions and pool entries of ``cadres``, in the normal form."""
    conn = await asyncpg.connect(dsn)
    try:
        decisions = await conn.fetch(
            """
            SELECT decision_id, cadre_id, rule, key, triggered_on, evidence, policy_version, status
            FROM decisions.recall_decisions WHERE cadre_id = ANY($1::text[])
            """,
            sorted(cadres),
        )
        entries = await conn.fetch(
            """
            SELECT cadre_id, pool, key, county, qualified_on, evidence, policy_version, status,
                   status_on, status_reason, status_evidence
            FROM decisions.pool_entries WHERE cadre_id = ANY($1::text[])
            """,
            sorted(cadres),
        )
    finally:
        await conn.close()

    def normal(row: asyncpg.Record) -> tuple[Any, ...]:
        return tuple(tuple(sorted(v)) if isinstance(v, list) else v for v in row.values())

    return {normal(r) for r in decisions}, {normal(r) for r in entries}


async def reference(bootstrap: str, scenario: Scenario) -> tuple[Rows, Rows]:
    """What the reference model derives from the scenario's records on the topics (shared
    with the rest of the session): those about its cadres, and its counties' lists."""
    cadres = scenario.cadre_ids
    records = [
        p
        for topic in TOPICS
        for p in await read_topic(bootstrap, topic)
        if p.event.data.get("cadre_id") in cadres
        or p.event.data.get("county") in scenario.county_codes
    ]
    decisions, entries = reference_model(records, Packs.load(POLICIES))
    return (
        {d for d in decisions if d[1] in cadres},
        {e for e in entries if e[0] in cadres},
    )


async def converged(system: RunningSystem, scenario: Scenario) -> tuple[Rows, Rows]:
    """Poll until the read model equals the reference model of what is on the topics (the
    relays and the projection follow with a lag), and return it; the last difference
    otherwise."""
    deadline = time.monotonic() + CATCH_UP_SECONDS
    while True:
        expected = await reference(system.kafka_bootstrap, scenario)
        actual = await read_model(system.dsns["projections"], scenario.cadre_ids)
        if actual == expected or time.monotonic() > deadline:
            assert actual[0] == expected[0], sorted(actual[0] ^ expected[0])
            assert actual[1] == expected[1], sorted(actual[1] ^ expected[1])
            return actual
        await asyncio.sleep(2.0)


@pytest.mark.parametrize("seed", [3, 17])
async def test_the_read_models_equal_the_reference_model(
    running_system: RunningSystem, seed: int
) -> None:
    running_system.require("projections")
    scenario = generate(seed, CADRES, today=today_in_shanghai())
    await run_http(scenario, running_system.urls, concurrency=24)

    decisions, entries = await converged(running_system, scenario)
    # The scenario exercised the rules: recall decisions of several rules, pool entries.
    assert len({d[2] for d in decisions}) >= 2, decisions
    assert entries, "no pool entry at all"

    # An org_admin dismisses an open decision after review: both models follow.
    county = scenario.county_codes[0]
    token = mint_token(AuthSettings(), subject="reviewer", role="org_admin", county=county)
    open_ = sorted(d for d in decisions if d[7] == "recommended")
    in_county = [d for d in open_ if scenario.plans[d[1]].cadre.county == county]
    if in_county:
        decision_id = in_county[0][0]
        async with httpx.AsyncClient(base_url=running_system.urls["projections"]) as client:
            response = await client.post(
                f"/decisions/{decision_id}/dismiss",
                json={"reason": "reviewed: leave was approved late"},
                headers={"Authorization": f"Bearer {token}"},
            )
        assert response.status_code == 200, response.text
        decisions, _ = await converged(running_system, scenario)
        assert next(d for d in decisions if d[0] == decision_id)[7] == "dismissed"
