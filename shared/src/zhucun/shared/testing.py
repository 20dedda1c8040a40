"""Helpers for tests of Zhucun services (not used in production code paths; kept in the
library so every service's tests share one version): bearer tokens, the settings of a
service under test, a county staffed in dispatch, polling until something happened, a
projection's transaction, and reading what a topic holds."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from zhucun.shared.auth import mint_token
from zhucun.shared.envelope import RecordedEvent, from_kafka
from zhucun.shared.events import EventRegistry
from zhucun.shared.service import service_runtime
from zhucun.shared.settings import AuthSettings, KafkaSettings, PostgresSettings, ServiceSettings

if TYPE_CHECKING:
    import httpx
    from anyio.from_thread import BlockingPortal
    from fastapi.testclient import TestClient

T = TypeVar("T")

#: The auth settings of every service under test: the defaults (HS256, the development
#: secret), so a token minted here is accepted by any of them.
TEST_AUTH = AuthSettings()


def token(
    role: str,
    *,
    subject: str | None = None,
    county: str | None = None,
    township: str | None = None,
    cadre: str | None = None,
) -> str:
    """A bearer token of ``role`` with these jurisdiction claims; its subject is
    ``<role>-<random>`` unless given (so two callers of one role are two actors)."""
    return mint_token(
        TEST_AUTH,
        subject=subject or f"{role}-{uuid.uuid4().hex[:6]}",
        role=role,
        county=county,
        township=township,
        cadre=cadre,
    )


def authorization(value: str) -> dict[str, str]:
    """The ``Authorization`` header of a bearer token."""
    return {"Authorization": f"Bearer {value}"}


def bearer(
    role: str,
    *,
    subject: str | None = None,
    county: str | None = None,
    township: str | None = None,
    cadre: str | None = None,
) -> dict[str, str]:
    """The ``Authorization`` header of a new :func:`token`."""
    return authorization(
        token(role, subject=subject, county=county, township=township, cadre=cadre)
    )


def assert_committed(path: Path, generated: str) -> None:
    """A committed document (an OpenAPI or AsyncAPI ``.json``) is the one the code generates
    now; if not, the failure names it and the command that rewrites it."""
    assert path.read_text(encoding="utf-8") == generated, (
        f"{path} is stale: run `uv run zhucun contracts write`"
    )


def documented_events(document: Mapping[str, Any], registry: EventRegistry) -> set[str]:
    """The event types an AsyncAPI ``document`` describes, once checked to be exactly the
    ``registry``'s and each described (a class without a docstring has no summary)."""
    messages: Mapping[str, Mapping[str, Any]] = document["components"]["messages"]
    assert set(messages) == {cls.event_type for cls in registry.classes()}
    assert all(m["summary"] for m in messages.values()), "every event needs a docstring"
    return set(messages)


def service_settings(name: str, kafka_bootstrap: str, dsn: str) -> ServiceSettings:
    """The settings of service ``name`` under test: the broker and the database given,
    topics of two partitions (so per-key ordering is exercised), everything else default."""
    return ServiceSettings(
        service_name=name,
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=2),
        postgres=PostgresSettings(dsn=SecretStr(dsn)),
    )


def wait_for(
    read: Callable[[], T],
    ready: Callable[[T], object] = bool,
    *,
    seconds: float = 30,
    interval: float = 0.2,
    what: str = "the condition",
) -> T:
    """Poll ``read`` until ``ready`` holds for what it returns (by default: until it is
    truthy) and return that; an ``AssertionError`` naming ``what`` and the last value read
    after ``seconds``. For what other processes or tasks do: a replica catching up, a relay
    publishing."""
    deadline = time.monotonic() + seconds
    value = read()
    while not ready(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {seconds:g} s; last: {value!r}")
        time.sleep(interval)
        value = read()
    return value


class StaffedCounty:
    """A county staffed in dispatch through its HTTP API (a ``TestClient`` of the app, or an
    ``httpx.Client`` of a running service), for the tests of the services that
    learn dispatch's facts from its topic: one village in township ``t1``, a round, a team
    of the village, and ``cadres`` cadres assigned to the team from ``term_start`` (the first
    as first secretary), besides ``unassigned`` cadres only registered. The county code and
    every id are new per instance: a test session's topics are shared by its tests."""

    def __init__(
        self,
        dispatch: httpx.Client,
        *,
        cadres: int = 3,
        unassigned: int = 0,
        opened_on: str = "2025-01-01",
        formed_on: str = "2025-01-01",
        term_start: str = "2025-01-01",
        households: int = 120,
        categories: Sequence[str] = ("key_assistance",),
    ) -> None:
        self.dispatch = dispatch
        self.code = f"53{random.randint(1000, 9999)}"
        suffix = uuid.uuid4().hex[:8]
        self.village = f"v-{suffix}"
        self.team = f"team-{suffix}"
        self.cadres = [f"c{n}-{suffix}" for n in range(1, cadres + 1)]
        self.unassigned = [f"u{n}-{suffix}" for n in range(1, unassigned + 1)]
        self.admin = bearer("org_admin", county=self.code)
        self._dates = {"opened_on": opened_on, "formed_on": formed_on, "term_start": term_start}
        self._village = {"households": households, "categories": list(categories)}

    def post(self, path: str, body: dict[str, object]) -> None:
        """``POST /counties/{code}{path}`` as the county's org_admin; it must succeed."""
        response = self.dispatch.post(f"/counties/{self.code}{path}", json=body, headers=self.admin)
        assert response.status_code in (200, 201), response.text

    def register(self) -> StaffedCounty:
        """Register the village and the cadres, open the round, form the team, assign."""
        dates = self._dates
        self.post(
            "/villages",
            {
                "village_id": self.village,
                "name": "村",
                "township": "t1",
                "geofence": {"latitude": 25.04, "longitude": 102.71, "radius_m": 1000},
                "monitored_population": 10,
                **self._village,
            },
        )
        for cadre_id in [*self.cadres, *self.unassigned]:
            self.post(
                "/cadres",
                {
                    "cadre_id": cadre_id,
                    "sending_unit": "市农业农村局",
                    "unit_kind": "line_department",
                    "unit_level": "city",
                    "birth_year": 1984,
                    "party_member_since": "2008-07-01",
                    "rural_experience_years": 2,
                    "skills": [],
                },
            )
        self.post("/rounds", {"round_id": "r", "name": "2025", "opened_on": dates["opened_on"]})
        self.post(
            "/teams",
            {
                "team_id": self.team,
                "round_id": "r",
                "village_id": self.village,
                "formed_on": dates["formed_on"],
            },
        )
        for n, cadre_id in enumerate(self.cadres):
            self.post(
                "/assignments",
                {
                    "assignment_id": f"a-{cadre_id}",
                    "team_id": self.team,
                    "cadre_id": cadre_id,
                    "role": "first_secretary" if n == 0 else "member",
                    "term_start": dates["term_start"],
                },
            )
        return self


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of ``pool`` inside a transaction, as the projection runtime hands one to
    a projection's ``migrate`` and ``apply`` (a test applying a batch directly)."""
    async with pool.acquire() as conn, conn.transaction():
        # The pool's proxy forwards every call to the connection it wraps.
        yield cast(asyncpg.Connection, conn)


def portal(client: TestClient) -> BlockingPortal:
    """The event loop of the app under test (``TestClient`` opens it in ``with``), to call
    its runtime's coroutines: ``portal(client).call(store.read_all)``."""
    assert client.portal is not None, "outside `with TestClient(app)`"
    return client.portal


def wait_until_published(client: TestClient, *, seconds: float = 20) -> None:
    """Wait until the relay of the service app in ``client`` (a running ``TestClient``) has
    published every event its store holds."""
    relay = service_runtime(client.app).relay
    assert relay is not None, "the service publishes nothing (no relay)"
    loop = portal(client)
    wait_for(
        lambda: loop.call(relay.lag),
        lambda lag: lag == 0,
        seconds=seconds,
        interval=0.05,
        what="the relay publishing everything stored",
    )


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    partition: int
    offset: int
    key: bytes | None
    source: str
    event: RecordedEvent


async def read_topic(
    bootstrap: str, topic: str, *, source: str | None = None
) -> list[PublishedEvent]:
    """Every record on ``topic`` up to its current end, parsed as a CloudEvent, in partition
    then offset order; only those of ``source`` when given (a topic shared by several tests
    of one session)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        records: list[PublishedEvent] = []

        async def behind() -> bool:
            return any([await consumer.position(tp) < end[tp] for tp in partitions])

        while await behind():
            for tp, batch in (await consumer.getmany(timeout_ms=1000)).items():
                for r in batch:
                    event, origin = from_kafka(r.headers, r.value)
                    if source is None or origin == source:
                        records.append(PublishedEvent(tp.partition, r.offset, r.key, origin, event))
        records.sort(key=lambda p: (p.partition, p.offset))
        return records
    finally:
        await consumer.stop()


def unbounded(schema: Mapping[str, Any], where: str = "") -> list[str]:
    """Where a JSON schema leaves a value unbounded (``docs/domain.md``, "Bounds of the
    contracts"): a string without a length, pattern, format or enum, a number without a
    minimum and a maximum, an array without ``maxItems``; ``where`` names the path."""
    found: list[str] = []
    for option in schema.get("anyOf", ()):
        found += unbounded(option, where)
    kind = schema.get("type")
    if kind == "string" and not (
        "enum" in schema or "format" in schema or "pattern" in schema or "maxLength" in schema
    ):
        found.append(where)
    keys = set(schema)
    lower, upper = {"minimum", "exclusiveMinimum"} & keys, {"maximum", "exclusiveMaximum"} & keys
    if kind in {"integer", "number"} and not (lower and upper):
        found.append(where)
    if kind == "array":
        if "maxItems" not in schema:
            found.append(where)
        found += unbounded(schema.get("items", {}), f"{where}[]")
    for name, member in schema.get("properties", {}).items():
        found += unbounded(member, f"{where}.{name}")
    return found
