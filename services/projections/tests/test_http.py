"""The HTTP edge without PostgreSQL or Kafka: the app's use cases wired to in-memory stand-ins
(the lifespan never runs), to check what a refusal looks like on the wire: each read model's
problem types (``audit/...``, ``decisions/...``), their status, ``code`` and ``retryable``,
and the accepted dismissal's body. The real readers are exercised by ``test_audit.py`` and
``test_decisions.py``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from zhucun.contracts.decisions.events import RecallRecommended, decision_stream, registry
from zhucun.projections.app import create_app
from zhucun.projections.application import ReadSide
from zhucun.projections.audit import FileEntry, FilePage
from zhucun.projections.decisions.queries import (
    CadreDecisions,
    DecisionFilter,
    EntryFilter,
    PoolEntry,
    PoolName,
    RecallDecision,
)
from zhucun.projections.domain.errors import InvalidCursor
from zhucun.shared.commands import CommandPath, StateCache
from zhucun.shared.envelope import EventMetadata, NewEvent
from zhucun.shared.http import provide_use_cases
from zhucun.shared.memory_store import InMemoryEventStore
from zhucun.shared.pages import Page, paginate
from zhucun.shared.problems import PROBLEM_TYPE_BASE
from zhucun.shared.settings import ServiceSettings
from zhucun.shared.store import NO_STREAM
from zhucun.shared.testing import bearer

pytestmark = pytest.mark.unit

COUNTY = "530102"
DECISION = "d-1"


class NoFiles:
    """An audit trail without any file; a cursor is always one it did not issue."""

    async def presence(self, cadre_id: str, county: str | None) -> tuple[bool, bool]:
        return cadre_id == "known", False

    async def cadre_file(
        self,
        cadre_id: str,
        *,
        since: date | None = None,
        until: date | None = None,
        types: Sequence[str] | None = None,
        as_of: datetime | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> FilePage:
        if after is not None:
            raise InvalidCursor()
        return FilePage(items=[], next_cursor=None)

    async def export_rows(
        self, cadre_id: str, as_of: datetime | None = None
    ) -> AsyncIterator[FileEntry]:
        entries: list[FileEntry] = []
        for entry in entries:
            yield entry


class OneDecision:
    """A decisions read model that knows one open decision of ``COUNTY``."""

    decision_ = RecallDecision(
        decision_id=DECISION,
        cadre_id="c-1",
        county=COUNTY,
        rule=1,
        key="2025-02",
        triggered_on=date(2025, 2, 28),
        reason="short",
        policy_version="reference-2021",
        status="recommended",
        status_on=None,
        status_event_id=None,
        dismissal_reason=None,
        evidence_event_ids=[],
    )

    async def decision(self, decision_id: str) -> RecallDecision | None:
        return self.decision_ if decision_id == DECISION else None

    async def county_decisions(
        self, county: str, status: DecisionFilter, limit: int, after: str | None
    ) -> Page[RecallDecision]:
        found = [self.decision_] if county == COUNTY else []
        return paginate(found, lambda d: d.decision_id, after, limit)

    async def cadre(self, cadre_id: str) -> CadreDecisions:
        return CadreDecisions(cadre_id=cadre_id, county=None, decisions=[], pool_entries=[])

    async def pool_entries(
        self, county: str, pool: PoolName, status: EntryFilter, limit: int, after: str | None
    ) -> Page[PoolEntry]:
        return Page[PoolEntry](items=(), next=None)


ADMIN = bearer("org_admin", county=COUNTY)
AUDITOR = bearer("auditor")


@pytest.fixture
async def store() -> InMemoryEventStore:
    store = InMemoryEventStore()
    recommended = RecallRecommended(
        decision_id=DECISION,
        cadre_id="c-1",
        rule=1,
        rule_name="attendance",
        key="2025-02",
        triggered_on=date(2025, 2, 28),
        reason="short",
        evidence=["e-1"],
        policy_version="reference-2021",
    )
    meta = EventMetadata(occurred_at=datetime(2025, 3, 1, tzinfo=UTC))
    await store.append(
        decision_stream(DECISION), [NewEvent(recommended, meta)], expected_version=NO_STREAM
    )
    return store


@pytest.fixture
def client(store: InMemoryEventStore) -> TestClient:
    app = create_app(ServiceSettings(service_name="projections"))
    commands = CommandPath(store, registry, StateCache())
    provide_use_cases(app, lambda: ReadSide.over(NoFiles(), OneDecision(), commands))
    return TestClient(app)  # not entered: no lifespan, no database


def problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM_TYPE_BASE + slug
    return body


def test_the_audit_trails_refusals_keep_their_problem_types(client: TestClient) -> None:
    unknown = problem(
        client.get("/cadres/nobody/file", headers=AUDITOR), 404, "audit/unknown-cadre"
    )
    assert (unknown["code"], unknown["retryable"], unknown["cadre_id"]) == (
        "unknown_cadre",
        False,
        "nobody",
    )
    problem(client.get("/cadres/nobody/file/export", headers=AUDITOR), 404, "audit/unknown-cadre")
    period = {"since": "2025-05-02", "until": "2025-05-01"}
    backwards = client.get("/cadres/known/file", params=period, headers=AUDITOR)
    assert problem(backwards, 422, "audit/invalid-period")["code"] == "invalid_period"
    alien = client.get("/cadres/known/file", params={"cursor": "x"}, headers=AUDITOR)
    problem(alien, 422, "audit/invalid-cursor")
    outside = client.get("/cadres/known/file", headers=ADMIN)
    problem(outside, 403, "forbidden-jurisdiction")
    assert client.get("/cadres/known/file", headers=AUDITOR).json() == {
        "items": [],
        "next_cursor": None,
    }


def test_the_decisions_refusals_keep_their_problem_types(client: TestClient) -> None:
    problem(client.get("/decisions/nope", headers=AUDITOR), 404, "decisions/unknown-decision")
    problem(client.get("/cadres/nobody/decisions", headers=AUDITOR), 404, "decisions/unknown-cadre")
    elsewhere = bearer("org_admin", county="530103")
    problem(client.get(f"/decisions/{DECISION}", headers=elsewhere), 403, "forbidden-jurisdiction")
    listed = client.get(f"/counties/{COUNTY}/decisions", headers=ADMIN)
    assert [d["decision_id"] for d in listed.json()["items"]] == [DECISION]


def test_a_dismissal_answers_the_shared_command_body(client: TestClient) -> None:
    path = f"/decisions/{DECISION}/dismiss"
    accepted = client.post(path, json={"reason": "hospitalised"}, headers=ADMIN)
    assert accepted.status_code == 200, accepted.text
    body = accepted.json()
    assert (body["decision_id"], body["status"], body["duplicate"]) == (
        DECISION,
        "dismissed",
        False,
    )
    assert body["stream_id"] == decision_stream(DECISION)
    assert body["event_types"] == ["decisions.RecallDismissed"]
    assert [str(uuid.UUID(e)) for e in body["event_ids"]] == body["event_ids"]
    again = client.post(path, json={"reason": "hospitalised"}, headers=ADMIN).json()
    assert (again["duplicate"], again["event_ids"]) == (True, [])
    other = client.post(path, json={"reason": "changed mind"}, headers=ADMIN)
    refused = problem(other, 409, "decisions/already-dismissed")
    assert (refused["code"], refused["decision_id"]) == ("already_dismissed", DECISION)
    problem(
        client.post("/decisions/nope/dismiss", json={"reason": "x"}, headers=ADMIN),
        404,
        "decisions/unknown-decision",
    )
    assert client.post(path, json={"reason": "x"}, headers=AUDITOR).status_code == 403


@pytest.mark.parametrize(
    ("path", "params", "location"),
    [
        # Issue 15: the file's filters at the edge of the calendar answered 500.
        ("/cadres/known/file", {"since": "0001-01-01"}, ["query", "since"]),
        ("/cadres/known/file", {"until": "9999-12-31"}, ["query", "until"]),
        ("/cadres/known/file", {"until": "2100-01-01"}, ["query", "until"]),
        ("/cadres/known/file", {"as_of": "9999-12-31"}, ["query", "as_of"]),
        ("/cadres/known/file", {"as_of": "9999-12-31T23:59:59Z"}, ["query", "as_of"]),
        ("/cadres/known/file/export", {"as_of": "0001-01-01"}, ["query", "as_of"]),
        ("/cadres/known/file", {"limit": 0}, ["query", "limit"]),
        ("/cadres/known/file", {"limit": 501}, ["query", "limit"]),
        ("/cadres/known/file", {"cursor": "a=b"}, ["query", "cursor"]),
        ("/cadres/known/file", {"type": "assessment.Quarterly\x00"}, ["query", "type", 0]),
        ("/cadres/=x/file", {}, ["path", "cadre_id"]),
        ("/decisions/=HYPERLINK(1)", {}, ["path", "decision_id"]),
        (f"/counties/{COUNTY}/decisions", {"after": "-x"}, ["query", "after"]),
        (f"/counties/{COUNTY}/decisions", {"limit": 501}, ["query", "limit"]),
        (f"/counties/{COUNTY}/pools/reserve", {"after": "x" * 129}, ["query", "after"]),
        (f"/counties/{COUNTY}/pools/reserve", {"status": "gone"}, ["query", "status"]),
    ],
)
def test_a_query_value_out_of_its_bounds_is_a_422_naming_it(
    client: TestClient, path: str, params: dict[str, Any], location: list[str | int]
) -> None:
    body = problem(client.get(path, params=params, headers=AUDITOR), 422, "validation-error")
    # An instant or a day (``as_of``): each alternative names itself after the parameter.
    locations = [error["location"][: len(location)] for error in body["errors"]]
    assert set(map(tuple, locations)) == {tuple(location)}


def test_the_files_filters_at_the_windows_edges_are_read(client: TestClient) -> None:
    edges = {"since": "2000-01-01", "until": "2099-12-31", "as_of": "2099-12-31"}
    assert client.get("/cadres/known/file", params=edges, headers=AUDITOR).json() == {
        "items": [],
        "next_cursor": None,
    }
    instant = {"as_of": "2099-12-31T23:59:59Z", "type": ["attendance.CheckInRecorded"] * 2}
    assert client.get("/cadres/known/file", params=instant, headers=AUDITOR).status_code == 200
    export = client.get(
        "/cadres/known/file/export", params={"as_of": "2000-01-01"}, headers=AUDITOR
    )
    assert export.status_code == 200


def test_a_countys_decisions_are_a_page(client: TestClient) -> None:
    page = client.get(f"/counties/{COUNTY}/decisions", params={"limit": 1}, headers=ADMIN).json()
    assert ([d["decision_id"] for d in page["items"]], page["next"]) == ([DECISION], None)
    after = {"after": DECISION}
    assert client.get(f"/counties/{COUNTY}/decisions", params=after, headers=ADMIN).json() == {
        "items": [],
        "next": None,
    }
    pool = client.get(f"/counties/{COUNTY}/pools/reserve", headers=ADMIN).json()
    assert pool == {"items": [], "next": None}
