"""The audit trail (一人一档).

Unit: a summary for every event type of the three contracts, without names or free text;
the union registry. Integration (PostgreSQL): the projection attributes a handover's events
to both cadres, whatever the split into batches, and applies each event once. Integration
(Kafka and PostgreSQL): the real dispatch, attendance and assessment services drive one
cadre's scripted history, and the projections service's file of that cadre holds exactly
the events they published, in order, filtered, as of a moment, paginated, exported as CSV
and JSON, behind roles and jurisdiction.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import types
import typing
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from functools import partial
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter, ValidationError

from zhucun.assessment.app import create_app as create_assessment
from zhucun.attendance.app import create_app as create_attendance
from zhucun.contracts.assessment import SOURCE as ASSESSMENT_SOURCE
from zhucun.contracts.assessment import TOPIC as ASSESSMENT_TOPIC
from zhucun.contracts.assessment import events as assessment
from zhucun.contracts.attendance import SOURCE as ATTENDANCE_SOURCE
from zhucun.contracts.attendance import TOPIC as ATTENDANCE_TOPIC
from zhucun.contracts.attendance import events as attendance
from zhucun.contracts.decisions import events as decisions
from zhucun.contracts.dispatch import SOURCE as DISPATCH_SOURCE
from zhucun.contracts.dispatch import TOPIC as DISPATCH_TOPIC
from zhucun.contracts.dispatch import events as dispatch
from zhucun.dispatch.app import create_app as create_dispatch
from zhucun.projections.app import create_app as create_projections
from zhucun.projections.audit import (
    COLUMNS,
    AuditTrail,
    AuditTrailReader,
    has_summary,
    summarize,
)
from zhucun.projections.sources import SHANGHAI, union_registry
from zhucun.shared.envelope import RecordedEvent
from zhucun.shared.events import DomainEvent
from zhucun.shared.projection import Delivery
from zhucun.shared.testing import (
    PublishedEvent,
    StaffedCounty,
    bearer,
    read_topic,
    service_settings,
    transaction,
    wait_for,
    wait_until_published,
)

INSIDE = {"latitude": 25.045, "longitude": 102.71}  # ~556 m north of the centre
REGISTRIES = [dispatch.registry, attendance.registry, assessment.registry, decisions.registry]


# --- unit: summaries -----------------------------------------------------------------------

#: Values of constrained fields; every other field gets a generic value of its type.
_VALUES: dict[str, Any] = {
    "month": "2025-04",
    "quarter": "2025-Q2",
    "period": "2025",
    "year": 2025,
    "birth_year": 1985,
    "days_in_month": 30,
}
#: Free-text and name fields: their sample values must never reach a summary.
_FREE_TEXT = {"name", "findings", "note", "text", "reason", "purpose", "authority", "kind"}


def _accepted(annotation: Any, metadata: Sequence[Any], value: Any) -> bool:
    """Whether ``value`` is within the field's type and bounds."""
    bounded: Any = typing.Annotated[annotation, *metadata] if metadata else annotation
    try:
        TypeAdapter[Any](bounded).validate_python(value)
    except ValidationError:
        return False
    return True


def _candidates(name: str, annotation: Any) -> list[Any]:
    """Values to try for a field, the most telling first (a string field's own sentinel)."""
    if isinstance(annotation, type) and issubclass(annotation, bool):
        return [False]
    if isinstance(annotation, type) and issubclass(annotation, int):
        return [3, 1]
    if isinstance(annotation, type) and issubclass(annotation, float):
        return [50.0]
    if isinstance(annotation, type) and issubclass(annotation, str):
        return [f"{name}-SENTINEL", f"{name}_sentinel".lower(), "530102", "2025"]
    return [datetime(2025, 4, 2, 1, tzinfo=UTC), date(2025, 4, 2)]


def _sample_value(name: str, annotation: Any, metadata: Sequence[Any] = ()) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        return _sample_value(name, annotation.__origin__, (*annotation.__metadata__, *metadata))
    if name in _VALUES:
        return _VALUES[name]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        return None  # optional fields are left out
    if origin is tuple:
        return (_sample_value(name, args[0]),)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return next(iter(annotation))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return sample(annotation)
    for value in _candidates(name, annotation):
        if _accepted(annotation, metadata, value):
            return value
    raise AssertionError(f"no sample for {name}: {annotation!r}")


M = typing.TypeVar("M", bound=BaseModel)


def sample(cls: type[M], **values: Any) -> M:
    fields = {
        name: _sample_value(name, info.annotation, info.metadata)
        for name, info in cls.model_fields.items()
        if name not in values
    }
    return cls(**fields, **values)


def all_event_classes() -> list[type[DomainEvent]]:
    return [cls for registry in REGISTRIES for cls in registry.classes()]


@pytest.mark.unit
@pytest.mark.parametrize("cls", all_event_classes(), ids=lambda cls: cls.event_type)
def test_every_event_type_has_a_summary_without_free_text(cls: type[DomainEvent]) -> None:
    event = sample(cls)
    text = summarize(event)
    assert has_summary(cls.event_type)
    assert text
    assert text != cls.event_type
    assert not any(f"{field}-SENTINEL" in text for field in _FREE_TEXT), text
    assert "latitude" not in text
    assert "longitude" not in text


@pytest.mark.unit
def test_summaries_read_like_sentences() -> None:
    check_in = sample(
        attendance.CheckInRecorded,
        day=date(2025, 4, 2),
        location=attendance.LocationEvidence(inside_geofence=True, distance_m=560),
    )
    assert summarize(check_in) == "Checked in on 2025-04-02 inside the geofence (560 m)"
    assert summarize(sample(attendance.CheckInRecorded, day=date(2025, 4, 2))) == (
        "Checked in on 2025-04-02 without a location (own statement)"
    )
    assigned = sample(
        dispatch.CadreAssigned,
        village_id="v1",
        role=dispatch.Role.FIRST_SECRETARY,
        kind=dispatch.AssignmentKind.INITIAL,
        term_start=date(2025, 4, 1),
        warnings=(),
    )
    assert summarize(assigned) == "Assigned to village v1 as first_secretary from 2025-04-01"
    cap = assessment.GradeCap(
        unexcused_absences=2,
        best_allowed=assessment.AnnualGrade.COMPETENT,
        reason="reason-SENTINEL",
    )
    result = sample(
        assessment.AnnualResultIssued,
        year=2025,
        grade=assessment.AnnualGrade.COMPETENT,
        cap=cap,
    )
    assert summarize(result) == "Annual grade for 2025: competent (capped: 2 unexcused absences)"
    absent = sample(
        attendance.SpotCheckRecorded,
        day=date(2025, 4, 10),
        result=attendance.SpotCheckResult.ABSENT,
    )
    assert summarize(absent) == "Spot check on 2025-04-10: absent, unexcused"
    quarterly = sample(
        assessment.QuarterlyAssessed, grade=assessment.QuarterlyGrade.FAIRLY_GOOD, score=81.5
    )
    assert summarize(quarterly) == "Quarterly grade for 2025-Q2: fairly good (score 81.5)"


@pytest.mark.unit
def test_an_unknown_type_falls_back_to_its_name() -> None:
    class Newer(DomainEvent):
        event_type: typing.ClassVar[str] = "dispatch.SomethingNew"
        key_field: typing.ClassVar[str] = "cadre_id"
        cadre_id: str

    assert not has_summary("dispatch.SomethingNew")
    assert summarize(Newer(cadre_id="c1")) == "dispatch.SomethingNew"


@pytest.mark.unit
def test_the_union_registry_decodes_all_three_contracts() -> None:
    registry = union_registry()
    names = {cls.event_type for cls in all_event_classes()}
    assert {cls.event_type for cls in registry.classes()} == names
    event = sample(assessment.QuarterlyAssessed)
    decoded = registry.decode(event.event_type, 1, event.to_data())
    assert decoded == event
    assert AuditTrail("s").registry.classes() == registry.classes()


# --- integration (PostgreSQL): the projection itself -----------------------------------------


@dataclass
class Feed:
    """Deliveries as the runtime would hand them to the projection."""

    offset: int = 0
    position: int = 0

    def deliver(self, event: DomainEvent, *, topic: str = DISPATCH_TOPIC) -> Delivery:
        self.offset += 1
        self.position += 1
        now = datetime.now(UTC)
        recorded = RecordedEvent(
            event_id=uuid.uuid4(),
            stream_id="s",
            stream_version=self.position,
            global_position=self.position,
            event_type=event.event_type,
            schema_version=1,
            key=event.kafka_key(),
            data=event.to_data(),
            occurred_at=now,
            recorded_at=now + timedelta(microseconds=self.position),
            correlation_id=uuid.uuid4(),
            causation_id=None,
            actor="tester:org_admin",
            prev_hash="0" * 64,
            hash="f" * 64,
        )
        source = "/zhucun/" + topic.split(".")[0]
        return Delivery(topic, 0, self.offset, recorded, source, event)


async def _apply(pool: asyncpg.Pool, projection: AuditTrail, batch: list[Delivery]) -> None:
    async with transaction(pool) as conn:
        await projection.apply(conn, batch)


@pytest.mark.integration
@pytest.mark.parametrize("split", [1, 2, 4])
async def test_a_handover_is_in_both_files_whatever_the_batches(
    fresh_pool: asyncpg.Pool, split: int
) -> None:
    projection = AuditTrail("audit_unit")
    async with transaction(fresh_pool) as conn:
        await projection.migrate(conn)
    feed = Feed()
    deliveries = [
        feed.deliver(
            sample(
                dispatch.HandoverOpened,
                handover_id="h1",
                predecessor_cadre_id="old",
                successor_cadre_id="new",
            )
        ),
        feed.deliver(sample(dispatch.HandoverItemCompleted, handover_id="h1")),
        feed.deliver(sample(dispatch.HandoverCompleted, handover_id="h1")),
        feed.deliver(sample(dispatch.HandoverCompleted, handover_id="unknown")),
        feed.deliver(sample(dispatch.RoundOpened)),  # about no cadre
        feed.deliver(sample(attendance.SpotCheckRecorded, cadre_id="new"), topic=ATTENDANCE_TOPIC),
    ]
    size = -(-len(deliveries) // split)
    for start in range(0, len(deliveries), size):
        await _apply(fresh_pool, projection, deliveries[start : start + size])
    await _apply(fresh_pool, projection, deliveries)  # again: nothing changes

    reader = AuditTrailReader(fresh_pool, "audit_unit")
    old = (await reader.cadre_file("old")).items
    new = (await reader.cadre_file("new")).items
    handover = ["HandoverOpened", "HandoverItemCompleted", "HandoverCompleted"]
    assert [e.event_type.split(".")[1] for e in old] == handover
    assert [e.event_type.split(".")[1] for e in new] == [*handover, "SpotCheckRecorded"]
    assert [e.event_id for e in old] == [d.event.event_id for d in deliveries[:3]]
    assert new[-1].source == "attendance"
    assert new[-1].topic == ATTENDANCE_TOPIC
    assert await fresh_pool.fetchval('SELECT count(*) FROM "audit_unit".audit_trail') == 7


# --- integration (Kafka and PostgreSQL): the four services ----------------------------------


class History:
    """One cadre's scripted history across dispatch, attendance and assessment; ids are
    unique per test (the session's topics are shared)."""

    def __init__(self, clients: dict[str, TestClient], kafka_bootstrap: str) -> None:
        self.clients = clients
        self.kafka_bootstrap = kafka_bootstrap
        # One cadre, first secretary of a team of one from 1 April.
        self.staffed = StaffedCounty(
            clients["dispatch"],
            cadres=1,
            opened_on="2025-03-01",
            formed_on="2025-03-15",
            term_start="2025-04-01",
        )
        self.county = self.staffed.code
        self.village = self.staffed.village
        (self.cadre,) = self.staffed.cadres
        self.admin = bearer("org_admin", county=self.county)
        self.township = bearer("township", county=self.county, township="t1")
        self.auditor = bearer("auditor")

    def call(self, service: str, method: str, path: str, body: Any, headers: Any) -> Any:
        response = self.clients[service].request(method, path, json=body, headers=headers)
        assert response.status_code in (200, 201), response.text
        return response.json()

    def run_dispatch(self) -> None:
        self.staffed.register()
        # The other services learn the assignment from Kafka.
        for service, path in (("attendance", "leave"), ("assessment", "record")):
            client = self.clients[service]
            url = f"/cadres/{self.cadre}/{path}"
            wait_for(
                partial(client.get, url, headers=self.admin),
                lambda response: response.status_code == 200,
                what=f"{service} knowing the assignment",
            )

    def run_attendance(self) -> None:
        me = bearer("cadre", county=self.county, cadre=self.cadre)
        check_in = {
            "check_in_id": "ci-1",
            "occurred_at": "2025-04-02T01:00:00Z",
            "location": INSIDE,
        }
        self.call("attendance", "POST", f"/cadres/{self.cadre}/check-ins", check_in, me)
        spot_check = {"spot_check_id": "sc-1", "day": "2025-04-10", "result": "absent"}
        self.call(
            "attendance", "POST", f"/cadres/{self.cadre}/spot-checks", spot_check, self.township
        )

    def run_assessment(self) -> None:
        # 一般 (average): the quarterly assessment also opens the 双约谈.
        scores = {"township_score": 70, "villager_score": 60, "county_panel_score": 60}
        answer = self.call(
            "assessment", "PUT", f"/cadres/{self.cadre}/quarters/2025-Q2", scores, self.township
        )
        assert answer["event_types"] == [
            "assessment.QuarterlyAssessed",
            "assessment.AdmonitionTalksRequired",
        ]

    def published(self) -> list[PublishedEvent]:
        """What the three services published about the cadre, once their relays are idle,
        in file order."""
        for name in ("dispatch", "attendance", "assessment"):
            wait_until_published(self.clients[name])
        found: list[PublishedEvent] = []
        for topic, source in (
            (DISPATCH_TOPIC, DISPATCH_SOURCE),
            (ATTENDANCE_TOPIC, ATTENDANCE_SOURCE),
            (ASSESSMENT_TOPIC, ASSESSMENT_SOURCE),
        ):
            records = asyncio.run(read_topic(self.kafka_bootstrap, topic, source=source))
            found += [p for p in records if p.event.data.get("cadre_id") == self.cadre]
        return sorted(
            found,
            key=lambda p: (p.event.recorded_at, _service(p.source), p.event.global_position),
        )

    def caught_up(self, count: int) -> list[dict[str, Any]]:
        """The cadre's whole file, once it holds ``count`` events."""

        def items() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = self.file(limit=500)["items"]
            return found

        return wait_for(items, lambda found: len(found) >= count, what="the trail catching up")

    def file(self, headers: Any = None, **params: Any) -> Any:
        response = self.clients["projections"].get(
            f"/cadres/{self.cadre}/file", params=params, headers=headers or self.auditor
        )
        assert response.status_code == 200, response.text
        return response.json()


def _service(source: str) -> str:
    return source.rsplit("/", 1)[-1]


@pytest.fixture
def history(kafka_bootstrap: str, make_database: Callable[[], str]) -> Iterator[History]:
    apps = {
        name: create(service_settings(name, kafka_bootstrap, make_database()))
        for name, create in (
            ("dispatch", create_dispatch),
            ("attendance", create_attendance),
            ("assessment", create_assessment),
            ("projections", create_projections),
        )
    }
    with (
        TestClient(apps["dispatch"]) as d,
        TestClient(apps["attendance"]) as at,
        TestClient(apps["assessment"]) as asm,
        TestClient(apps["projections"]) as p,
    ):
        history = History(
            {"dispatch": d, "attendance": at, "assessment": asm, "projections": p},
            kafka_bootstrap,
        )
        history.run_dispatch()
        history.run_attendance()
        history.run_assessment()
        yield history


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.integration
def test_the_file_holds_every_published_event_once_in_order(history: History) -> None:
    published = history.published()
    assert [p.event.event_type for p in published] == [
        "dispatch.CadreRegistered",
        "dispatch.CadreAssigned",
        "attendance.CheckInRecorded",
        "attendance.SpotCheckRecorded",
        "assessment.QuarterlyAssessed",
        "assessment.AdmonitionTalksRequired",
    ]
    items = history.caught_up(len(published))
    assert [i["event_id"] for i in items] == [str(p.event.event_id) for p in published]
    topics = {"dispatch": DISPATCH_TOPIC, "attendance": ATTENDANCE_TOPIC}
    for item, p in zip(items, published, strict=True):
        event = p.event
        assert item["cadre_id"] == history.cadre
        assert item["source"] == _service(p.source)
        assert item["topic"] == topics.get(item["source"], ASSESSMENT_TOPIC)
        assert (item["partition"], item["offset"]) == (p.partition, p.offset)
        assert item["event_type"] == event.event_type
        assert (item["stream_id"], item["stream_version"]) == (
            event.stream_id,
            event.stream_version,
        )
        assert item["global_position"] == event.global_position
        assert _instant(item["occurred_at"]) == event.occurred_at
        assert _instant(item["recorded_at"]) == event.recorded_at
        assert item["actor"]
        assert item["actor"] == event.actor
        assert item["correlation_id"] == str(event.correlation_id)
        assert item["hash"] == event.hash
        assert item["data"] == event.data
        assert item["summary"]
        assert item["summary"] != event.event_type
    summaries = [i["summary"] for i in items]
    assert (
        summaries[1].split(";")[0]  # the soft-rule warnings of a one-person team follow
        == f"Assigned to village {history.village} as first_secretary from 2025-04-01"
    )
    assert summaries[2] == "Checked in on 2025-04-02 inside the geofence (560 m)"
    assert summaries[3] == "Spot check on 2025-04-10: absent, unexcused"
    assert summaries[4].startswith("Quarterly grade for 2025-Q2: average")
    # One command, one correlation: the quarterly assessment and the talks it requires.
    assert items[4]["correlation_id"] == items[5]["correlation_id"]
    assert "latitude" not in json.dumps(items)

    # Filters: event types, a period of business time.
    only = history.file(type=["attendance.CheckInRecorded", "assessment.QuarterlyAssessed"])
    assert [i["event_id"] for i in only["items"]] == [items[2]["event_id"], items[4]["event_id"]]
    days = sorted({_instant(i["occurred_at"]).astimezone(SHANGHAI).date() for i in items})
    first, last = days[0], days[-1]
    everything = history.file(since=first.isoformat(), until=last.isoformat())
    assert [i["event_id"] for i in everything["items"]] == [i["event_id"] for i in items]
    on_first = history.file(since=first.isoformat(), until=first.isoformat())
    assert [i["event_id"] for i in on_first["items"]] == [
        i["event_id"]
        for i in items
        if _instant(i["occurred_at"]).astimezone(SHANGHAI).date() == first
    ]
    before = history.file(until=(first - timedelta(days=1)).isoformat())
    assert before == {"items": [], "next_cursor": None}
    refused = history.clients["projections"].get(
        f"/cadres/{history.cadre}/file",
        params={"since": "2025-05-02", "until": "2025-05-01"},
        headers=history.auditor,
    )
    assert refused.status_code == 422
    # The window's edges are read (the day after the last is a day of the calendar too);
    # beyond them a 422 names the filter (issue 15: 0001-01-01 to 9999-12-31 was a 500).
    widest = {"since": "2000-01-01", "until": "2099-12-31", "as_of": "2099-12-31"}
    assert history.file(**widest)["items"] == items
    beyond = history.clients["projections"].get(
        f"/cadres/{history.cadre}/file",
        params={"since": "0001-01-01", "until": "9999-12-31"},
        headers=history.auditor,
    )
    assert beyond.status_code == 422
    assert [e["location"] for e in beyond.json()["errors"]] == [
        ["query", "since"],
        ["query", "until"],
    ]

    # As of the spot check: the assessment had not been recorded yet.
    as_of = items[3]["recorded_at"]
    then = history.file(as_of=as_of)
    assert [i["event_id"] for i in then["items"]] == [i["event_id"] for i in items[:4]]
    # One append, one recorded time: the talks required arrive with the quarterly grade.
    assert items[4]["recorded_at"] == items[5]["recorded_at"]
    assert history.file(as_of=items[4]["recorded_at"])["items"] == items

    # Pagination: two at a time walks the whole file.
    pages, cursor, walked = 0, None, []
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = history.file(**params)
        pages += 1
        walked += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == items
    assert pages == 3
    bad_cursor = history.clients["projections"].get(
        f"/cadres/{history.cadre}/file", params={"cursor": "nonsense"}, headers=history.auditor
    )
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["type"].endswith("/audit/invalid-cursor")
    too_many = history.clients["projections"].get(
        f"/cadres/{history.cadre}/file", params={"limit": 501}, headers=history.auditor
    )
    assert too_many.status_code == 422


@pytest.mark.integration
def test_the_file_exports_as_csv_and_json(history: History) -> None:
    published = history.published()
    items = history.caught_up(len(published))
    client = history.clients["projections"]
    path = f"/cadres/{history.cadre}/file/export"

    as_csv = client.get(path, params={"format": "csv"}, headers=history.auditor)
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert "attachment" in as_csv.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert list(rows[0]) == list(COLUMNS)
    assert [r["event_id"] for r in rows] == [i["event_id"] for i in items]
    assert [json.loads(r["data"]) for r in rows] == [i["data"] for i in items]
    assert [r["summary"] for r in rows] == [i["summary"] for i in items]
    assert [r["causation_id"] for r in rows] == ["" for _ in items]

    as_json = client.get(path, params={"format": "json"}, headers=history.auditor)
    assert as_json.status_code == 200, as_json.text
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json() == items

    as_of = client.get(path, params={"as_of": items[3]["recorded_at"]}, headers=history.auditor)
    assert as_of.json() == items[:4]

    unknown = client.get("/cadres/nobody-at-all/file/export", headers=history.auditor)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("/audit/unknown-cadre")
    assert client.get("/cadres/nobody-at-all/file", headers=history.auditor).status_code == 404


@pytest.mark.integration
def test_only_auditors_and_the_county_read_a_file(history: History) -> None:
    wait_for(lambda: history.file()["items"], what="the audit trail having the cadre")
    client = history.clients["projections"]
    file, export = f"/cadres/{history.cadre}/file", f"/cadres/{history.cadre}/file/export"
    refused = {
        "township": history.township,
        "cadre": bearer("cadre", county=history.county, cadre=history.cadre),
        "another county": bearer("org_admin", county="539999"),
        "an auditor of another county": bearer("auditor", county="539999"),
    }
    for who, headers in refused.items():
        for path in (file, export):
            response = client.get(path, headers=headers)
            assert response.status_code == 403, (who, path, response.text)
            assert response.headers["content-type"].startswith("application/problem+json")
    for headers in (history.admin, history.auditor, bearer("auditor", county=history.county)):
        assert client.get(file, headers=headers).status_code == 200
        assert client.get(export, headers=headers).status_code == 200
    assert client.get(file).status_code == 401
