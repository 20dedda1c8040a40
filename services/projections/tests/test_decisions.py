"""Recall decisions end to end, against the real Kafka and PostgreSQL with the real dispatch
and attendance services upstream: two months closed short make a rule-1 decision, published
on ``decisions.events.v1``; dispatch's recall citing it moves it to executed; an org_admin
dismisses another; the refusals of the dismissal command."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from zhucun.attendance.app import create_app as create_attendance
from zhucun.cli.main import app as cli
from zhucun.dispatch.app import create_app as create_dispatch
from zhucun.projections.app import create_app as create_projections
from zhucun.projections.decisions.projection import DecisionsProjection
from zhucun.projections.decisions.queries import DecisionsReader, PoolEntry
from zhucun.projections.domain.rules import decision_id
from zhucun.shared.testing import (
    StaffedCounty,
    bearer,
    read_topic,
    service_settings,
    transaction,
    wait_for,
)

pytestmark = pytest.mark.integration

POLICIES = Path(__file__).resolve().parents[3] / "policies"


def caught_up(read: Callable[[], Any], ready: Callable[[Any], bool]) -> Any:
    """Poll a read until the projections have caught up (they follow Kafka)."""
    return wait_for(read, ready, seconds=40, interval=0.3, what="the read model catching up")


@pytest.fixture
def projections_dsn(make_database: Callable[[], str]) -> str:
    return make_database()


@pytest.fixture
def system(
    kafka_bootstrap: str, make_database: Callable[[], str], projections_dsn: str
) -> Iterator[tuple[TestClient, TestClient, TestClient]]:
    with (
        TestClient(
            create_dispatch(service_settings("dispatch", kafka_bootstrap, make_database()))
        ) as d,
        TestClient(
            create_attendance(service_settings("attendance", kafka_bootstrap, make_database()))
        ) as a,
        TestClient(
            create_projections(service_settings("projections", kafka_bootstrap, projections_dsn))
        ) as p,
    ):
        yield d, a, p


def test_recall_decisions_recommended_executed_and_dismissed_then_what_if(
    system: tuple[TestClient, TestClient, TestClient],
    kafka_bootstrap: str,
    projections_dsn: str,
    tmp_path: Path,
) -> None:
    dispatch, attendance, projections = system
    staffed = StaffedCounty(dispatch).register()
    county, cadres = staffed.code, staffed.cadres
    admin = bearer("org_admin", county=county)

    def post(client: TestClient, path: str, body: dict[str, Any] | None = None) -> Any:
        response = client.post(path, json=body, headers=admin)
        assert response.status_code in (200, 201), response.text
        return response.json()

    # Nobody reported any presence in January and February: both closes are short of the
    # required days (rule 1, two consecutive months), once attendance's replica knows them.
    def close(month: str) -> Any:
        response = attendance.post(f"/counties/{county}/months/{month}/close", headers=admin)
        return response.json() if response.status_code == 200 else {"cadres": []}

    for month in ("2025-01", "2025-02"):
        result = caught_up(
            partial(close, month), lambda r: r.get("closed", 0) + r.get("already_closed", 0) == 3
        )
        assert result["refused"] == 0

    def decisions_of(cadre_id: str) -> Any:
        response = projections.get(f"/cadres/{cadre_id}/decisions", headers=admin)
        return response.json() if response.status_code == 200 else {"decisions": []}

    first, second, third = cadres
    expected = decision_id(first, 1, "2025-02")
    view = caught_up(lambda: decisions_of(first), lambda v: len(v["decisions"]) == 1)
    (decision,) = view["decisions"]
    assert decision["decision_id"] == expected
    assert (decision["rule"], decision["key"], decision["status"]) == (1, "2025-02", "recommended")
    assert decision["triggered_on"] == "2025-02-28"
    assert decision["policy_version"] == "reference-2021"
    assert decision["county"] == county
    assert [e["period"] for e in decision["evidence"]] == ["2025-01", "2025-02"]
    assert all(e["kind"] == "month_close" and e["shortfall"] > 0 for e in decision["evidence"])
    assert "2 consecutive closed months" in decision["reason"]

    # The county's open decisions list all three.
    listed = caught_up(
        lambda: projections.get(f"/counties/{county}/decisions", headers=admin).json(),
        lambda body: len(body["items"]) == 3,
    )
    assert {d["cadre_id"] for d in listed["items"]} == set(cadres)
    # A page at a time, in the order of the decisions' ids; `next` is the next `after`.
    walked, after, pages = [], None, 0
    while True:
        params: dict[str, Any] = {"limit": 1} | ({"after": after} if after else {})
        page = projections.get(f"/counties/{county}/decisions", params=params, headers=admin)
        assert page.status_code == 200, page.text
        walked += [d["decision_id"] for d in page.json()["items"]]
        after, pages = page.json()["next"], pages + 1
        if after is None:
            break
    assert walked == sorted(d["decision_id"] for d in listed["items"])
    assert pages == 3

    # Dispatch recalls the first cadre citing the decision: the decision becomes executed.
    post(
        dispatch,
        f"/counties/{county}/assignments/a-{first}/recall",
        {
            "assignment_id": f"a-{first}",
            "reason": "two months short",
            "decision_id": expected,
            "recalled_on": "2025-03-05",
        },
    )
    view = caught_up(
        lambda: decisions_of(first), lambda v: v["decisions"][0]["status"] == "executed"
    )
    assert view["decisions"][0]["status_on"] == "2025-03-05"

    # An org_admin dismisses the second cadre's decision after review.
    dismissed_id = decision_id(second, 1, "2025-02")
    response = projections.post(
        f"/decisions/{dismissed_id}/dismiss", json={"reason": "hospitalised"}, headers=admin
    )
    assert response.status_code == 200, response.text
    assert response.json()["duplicate"] is False
    view = caught_up(
        lambda: decisions_of(second), lambda v: v["decisions"][0]["status"] == "dismissed"
    )
    assert view["decisions"][0]["dismissal_reason"] == "hospitalised"
    # The same dismissal again changes nothing; another reason, or an executed one, is refused.
    again = projections.post(
        f"/decisions/{dismissed_id}/dismiss", json={"reason": "hospitalised"}, headers=admin
    )
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    other = projections.post(
        f"/decisions/{dismissed_id}/dismiss", json={"reason": "changed mind"}, headers=admin
    )
    assert other.status_code == 409
    assert other.json()["type"].endswith("decisions/already-dismissed")
    executed = projections.post(
        f"/decisions/{expected}/dismiss", json={"reason": "too late"}, headers=admin
    )
    assert executed.status_code == 409
    assert executed.json()["type"].endswith("decisions/already-executed")
    # Outside the county, or as an auditor: refused; unknown decision: 404; no reason: 422.
    elsewhere = bearer("org_admin", county="530000")
    third_id = decision_id(third, 1, "2025-02")
    assert (
        projections.post(
            f"/decisions/{third_id}/dismiss", json={"reason": "x"}, headers=elsewhere
        ).status_code
        == 403
    )
    auditor = bearer("auditor")
    assert (
        projections.post(
            f"/decisions/{third_id}/dismiss", json={"reason": "x"}, headers=auditor
        ).status_code
        == 403
    )
    assert projections.get(f"/decisions/{third_id}", headers=auditor).status_code == 200
    assert (
        projections.post("/decisions/nope/dismiss", json={"reason": "x"}, headers=admin).status_code
        == 404
    )
    assert (
        projections.post(f"/decisions/{third_id}/dismiss", json={}, headers=admin).status_code
        == 422
    )
    open_now = projections.get(f"/counties/{county}/decisions", headers=admin).json()
    assert [d["cadre_id"] for d in open_now["items"]] == [third]

    # What downstream systems see on decisions.events.v1: each decision recommended once,
    # the execution and the dismissal, keyed by cadre, with the evidence ids.
    def published() -> list[Any]:
        records = asyncio.run(read_topic(kafka_bootstrap, "decisions.events.v1"))
        return [r for r in records if r.event.data.get("cadre_id") in cadres]

    records = caught_up(published, lambda rs: len(rs) == 5)
    types = sorted((r.event.data["cadre_id"], r.event.event_type) for r in records)
    assert types == sorted(
        [
            (first, "decisions.RecallRecommended"),
            (first, "decisions.RecallExecuted"),
            (second, "decisions.RecallRecommended"),
            (second, "decisions.RecallDismissed"),
            (third, "decisions.RecallRecommended"),
        ]
    )
    assert all(r.key == r.event.data["cadre_id"].encode() for r in records)
    recommended = next(
        r
        for r in records
        if r.event.event_type == "decisions.RecallRecommended" and r.event.data["cadre_id"] == first
    )
    assert recommended.event.data["decision_id"] == expected
    assert sorted(recommended.event.data["evidence"]) == sorted(
        e["event_id"] for e in decision["evidence"]
    )

    # What-if: the same history under a pack that wants 3 short months in a row. None of the
    # three would have been recalled; the live model is untouched.
    reference = (POLICIES / "reference-2021.toml").read_text()
    stricter = reference.replace('version = "reference-2021"', 'version = "what-if-3"').replace(
        "recall_shortfall_consecutive_months = 2", "recall_shortfall_consecutive_months = 3"
    )
    policy = tmp_path / "what-if-3.toml"
    policy.write_text(stricter)
    out = tmp_path / "report.json"
    result = CliRunner().invoke(
        cli,
        [
            "what-if",
            "--policy",
            str(policy),
            "--dsn",
            projections_dsn,
            "--bootstrap",
            kafka_bootstrap,
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["pack"] == "what-if-3"
    mine = [d for d in report["decisions"] if d["cadre_id"] in cadres]
    assert sorted((d["change"], d["cadre_id"], d["live"], d["what_if"]) for d in mine) == [
        ("removed", first, "executed", None),
        ("removed", second, "dismissed", None),
        ("removed", third, "recommended", None),
    ]
    assert "Recall decisions that differ" in result.output
    live = projections.get(f"/counties/{county}/decisions", headers=admin).json()
    assert [d["cadre_id"] for d in live["items"]] == [third]
    # A broken pack is refused with the file and the field.
    broken = tmp_path / "broken.toml"
    broken.write_text(stricter.replace("recall_ban_years = 3", "recall_ban_years = -3"))
    refused = CliRunner().invoke(
        cli,
        [
            "what-if",
            "--policy",
            str(broken),
            "--dsn",
            projections_dsn,
            "--bootstrap",
            kafka_bootstrap,
        ],
    )
    assert refused.exit_code != 0
    assert "recall_ban_years" in refused.output


async def test_a_pool_is_read_a_page_at_a_time_in_the_order_of_its_entries_ids(
    fresh_pool: asyncpg.Pool,
) -> None:
    projection = DecisionsProjection("pages")
    async with transaction(fresh_pool) as conn:
        await projection.migrate(conn)
        await conn.executemany(
            f"""
            INSERT INTO {projection.entries} (cadre_id, pool, key, county, qualified_on,
                evidence, policy_version, status, reason)
            VALUES ($1, $2, $3, $4, $5, '{{}}', 'reference-2021', 'active', 'excellent')
            """,
            [
                ("c1", "reserve", "2025", "530102", date(2025, 12, 31)),
                ("c1", "reserve", "2026", "530102", date(2026, 12, 31)),
                ("c2", "reserve", "2025", "530102", date(2025, 12, 31)),
                ("c3", "reserve", "term:" + "a" * 128, "530102", date(2026, 2, 28)),
                ("c4", "reserve", "2025", "530103", date(2025, 12, 31)),  # another county
                ("c5", "promote", "2025", "530102", date(2025, 12, 31)),  # another pool
            ],
        )
    reader = DecisionsReader(fresh_pool, "pages")
    walked: list[PoolEntry] = []
    after: str | None = None
    while True:
        page = await reader.pool_entries("530102", "reserve", "all", 3, after)
        walked += page.items
        after = page.next
        if after is None:
            break
    # The entry id digests the cadre, pool and key: an id whatever the key's length.
    expected = {
        hashlib.md5(f"{c}|reserve|{k}".encode(), usedforsecurity=False).hexdigest(): (c, k)
        for c, k in [("c1", "2025"), ("c1", "2026"), ("c2", "2025"), ("c3", "term:" + "a" * 128)]
    }
    assert [e.entry_id for e in walked] == sorted(expected)
    assert [(e.cadre_id, e.key) for e in walked] == [expected[i] for i in sorted(expected)]
    first = await reader.pool_entries("530102", "reserve", "all", 3, None)
    assert (len(first.items), first.next) == (3, first.items[-1].entry_id)
    cadre = await reader.cadre("c1")
    assert {e.entry_id for e in cadre.pool_entries} <= set(expected)
